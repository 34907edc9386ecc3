"""A --plugin file for tests: an MLP probe, registered as protocol ``mlp``.

What a new probe takes: this one file and its one registration. It fits classes and binned
values (so it runs on ``dwarfs`` and ``redshift``, and on ``morphology`` with ``vote_fractions=()``),
on the device the embeddings are on, seeded per (seed, draw) by the task.
"""

from __future__ import annotations

import torch
from torch import nn

from astrobench import register_probe
from astrobench.tasks.probes import (
    BINNED,
    CLASSES,
    FittedProbe,
    Prediction,
    Probe,
    Standardiser,
    Target,
    full_probabilities,
    present_classes,
)


class FittedMLP(FittedProbe):
    def __init__(self, scaler: Standardiser, net: nn.Module, present, n_classes: int, final_loss: float):
        self.scaler, self.net, self.present, self.n_classes = scaler, net, present, n_classes
        self.info = {"final_loss": final_loss}

    def predict(self, x: torch.Tensor) -> Prediction:
        with torch.no_grad():
            probabilities = torch.softmax(self.net(self.scaler(x, torch.float32)), dim=1)
        return Prediction(probabilities=full_probabilities(probabilities, self.present, self.n_classes))


@register_probe("mlp")
class MLPProbe(Probe):
    """One hidden ReLU layer, full-batch AdamW on the cross-entropy, standardised features."""

    handles = frozenset({CLASSES, BINNED})

    def __init__(self, hidden: int = 64, steps: int = 200, lr: float = 1e-2, weight_decay: float = 1e-3):
        self.hidden, self.steps, self.lr, self.weight_decay = hidden, steps, lr, weight_decay

    def fit(self, x: torch.Tensor, target: Target, *, seed: int = 0) -> FittedProbe:
        present, index = present_classes(target)  # bins absent from the draw are not classes
        scaler = Standardiser.fit(x)
        features = scaler(x, torch.float32)
        # the initialisation is drawn from the probe's seed without touching the global generator
        with torch.random.fork_rng(devices=[x.device] if x.device.type == "cuda" else []):
            torch.manual_seed(seed)
            net = nn.Sequential(nn.Linear(x.shape[1], self.hidden), nn.ReLU(), nn.Linear(self.hidden, present.size))
        net = net.to(x.device)
        optimizer = torch.optim.AdamW(net.parameters(), lr=self.lr, weight_decay=self.weight_decay)
        y = torch.as_tensor(index, device=x.device)
        for _ in range(self.steps):
            loss = nn.functional.cross_entropy(net(features), y)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        return FittedMLP(scaler, net.eval(), present, int(target.n_classes), float(loss.detach()))
