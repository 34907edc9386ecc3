"""The ``linear`` probe: logistic regression and ridge regression on standardised embeddings, in torch.

Classes, and binned values (over their bins): logistic regression with an L2
penalty on features standardised with the training mean and population std (std 0 -> 1), the
objective of scikit-learn's ``StandardScaler`` + ``LogisticRegression(C)``:
``mean_i log-loss_i + ||W||² / (2·C·n)``, intercept unpenalised, a softmax over more than two
classes and one sigmoid logit for two. Only the classes present in the training rows are fitted
(as scikit-learn does); absent classes get probability 0. Solved by full-batch L-BFGS (history
20, strong-Wolfe line search) and stopped, like scikit-learn's lbfgs, as soon as the largest
entry of the gradient of that objective is <= ``tol`` (1e-4), when the loss no longer changes
at machine precision, or after ``max_iter`` (1000) iterations. When it pays (many classes: the redshift bins), L-BFGS runs in a PCA-whitened basis
of the features (``W = V·diag(λ_j + 1/(C·n))^-1/2·W'``): a change of variables, so the minimiser
and the stopping test (taken in the original coordinates) are unchanged, with 2-3x fewer
iterations (directions without variance, e.g. dead features, are left out: the minimiser is 0
there). Values without bins: ridge regression (``StandardScaler`` + ``Ridge(alpha)``),
closed form in float64.

Agreement with scikit-learn (``tests/tasks/test_probes.py``): solved tightly (``tol=1e-8``, float64)
the linear probe's test probabilities are those of ``StandardScaler`` + ``LogisticRegression``
(``tol=1e-10``) within 1e-5 (measured 1e-7 to 6e-6); at the defaults of both (float32 here) within
0.03 (measured up to 0.016), with the same predicted class for >= 99% of objects and accuracies
within 0.5 percentage points (a gradient tolerance of 1e-4 leaves a flat valley in which the two
solvers stop at different points). Ridge agrees within 1e-6.
"""

from __future__ import annotations

import math
from typing import Any, ClassVar

import numpy as np
import torch

from astrobench.registry import register_probe
from astrobench.tasks.probes import (
    ROW_CHUNK, BINNED, CLASSES, VALUES, FittedProbe, Prediction, Probe, Standardiser, Target, full_probabilities,
    present_classes,
)


def _gram(xs: torch.Tensor) -> torch.Tensor:
    """xs^T xs in float64, accumulated over row blocks."""
    return sum(block.double().T @ block.double() for block in xs.split(ROW_CHUNK))


# -- linear --------------------------------------------------------------------------------------


class _Converged(Exception):
    """Raised inside the L-BFGS closure at the first point that meets the gradient tolerance."""


def fit_logistic(
    xs: torch.Tensor, y: np.ndarray, n_classes: int, *, C: float, tol: float, max_iter: int,
    history_size: int = 20, precondition: bool | None = None,
) -> tuple[torch.Tensor, torch.Tensor, dict[str, Any]]:
    """Minimise mean_i log-loss_i + ||W||² / (2·C·n) on standardised ``xs`` (n, d); ``y`` in [0, n_classes).

    Two classes: one logit (W (d, 1), sigmoid); more: softmax (W (d, K)). Returns (W, b, info).
    Stops at the first evaluated point whose gradient has no entry above ``tol`` (scikit-learn's
    lbfgs criterion on the same objective), when the loss stops changing at machine precision (as
    scipy's ``ftol``), or after ``max_iter`` iterations: ``info["stop"]`` says which, and
    ``info["converged"]`` is False only for the last (scikit-learn's ConvergenceWarning case).
    ``precondition=None`` decides by cost: whitening costs about n·d² + 4·d³, saves ~half of a few
    hundred evaluations of 2·n·d·K each; it pays for many classes, not for one logit.
    """
    n, d = xs.shape
    dtype, device = xs.dtype, xs.device
    n_out = 1 if n_classes == 2 else n_classes
    lam = 1.0 / (C * n)
    if precondition is None:
        precondition = d * (1 + 4 * d / n) < 100 * n_out
    if precondition:
        evals, evecs = torch.linalg.eigh(_gram(xs) / n)
        # directions without variance (dead or linearly dependent features) carry no data: there the
        # gradient is 0 and the penalty keeps W at 0, so they are left out of the iteration
        keep = evals > 1e-10 * evals.max()
        keep[-1] = True
        evals, evecs = evals[keep], evecs[:, keep]
        curvature = evals + lam  # per principal direction: data variance + penalty
        to_w = (evecs * curvature.rsqrt()).to(dtype)  # W = to_w @ V
        grad_to_w = (evecs * curvature.sqrt()).to(dtype)  # dF/dW = grad_to_w @ dF/dV
        features = xs @ to_w
        penalty = (1.0 / curvature).to(dtype)[:, None]  # ||W||² = Σ_j V_j² / curvature_j
    else:
        to_w = grad_to_w = penalty = None
        features = xs
    v = torch.zeros(features.shape[1], n_out, dtype=dtype, device=device)
    b = torch.zeros(n_out, dtype=dtype, device=device)
    target = torch.as_tensor(y, device=device)
    if n_out == 1:
        target = target.to(dtype)[:, None]
    else:
        target = target[:, None]
        minus_one = torch.full((n, 1), -1.0, dtype=dtype, device=device)
    state: dict[str, Any] = {"evaluations": 0}

    def closure() -> float:
        with torch.no_grad():
            z = torch.addmm(b, features, v)
            if n_out == 1:
                per_object = torch.nn.functional.softplus(z) - target * z
                residual = torch.sigmoid(z) - target
            else:
                top = z.amax(1, keepdim=True)
                e = torch.exp(z - top)
                total = e.sum(1, keepdim=True)
                per_object = top + torch.log(total) - z.gather(1, target)
                residual = e.div_(total).scatter_add_(1, target, minus_one)  # softmax − one-hot
            weighted = v if penalty is None else v * penalty
            loss = per_object.sum(dtype=torch.float64) / n + 0.5 * lam * (v * weighted).sum(dtype=torch.float64)
            grad_v = torch.addmm(weighted, features.T, residual, beta=lam, alpha=1.0 / n)
            grad_b = residual.sum(0) / n
            v.grad, b.grad = grad_v, grad_b
            grad_w = grad_v if grad_to_w is None else grad_to_w @ grad_v
            worst = torch.maximum(grad_w.abs().amax(), grad_b.abs().amax())
            loss_value, worst_value = torch.stack([loss, worst.double()]).tolist()  # one host sync
        state["evaluations"] += 1
        state["grad_max"] = worst_value
        if not math.isfinite(loss_value):
            raise FloatingPointError(f"linear probe: non-finite loss after {state['evaluations']} evaluations")
        if worst_value <= tol:
            state["solution"] = (v.clone(), b.clone())
            raise _Converged
        return loss_value

    optimizer = torch.optim.LBFGS(
        [v, b], lr=1.0, max_iter=max_iter, max_eval=2 * max_iter, history_size=history_size,
        # stopping is the closure's gradient test; these two only end a run that cannot progress
        tolerance_grad=0.0, tolerance_change=64 * float(np.finfo(np.float64).eps),
        line_search_fn="strong_wolfe",
    )
    try:
        optimizer.step(closure)
        closure()  # the gradient test at the final iterate
        solution = (v, b)
        n_iter = int(optimizer.state[v].get("n_iter", 0))
        stop = "max_iter" if n_iter >= max_iter or state["evaluations"] > 2 * max_iter else "no progress"
    except _Converged:
        solution, stop = state["solution"], "gradient"
        n_iter = int(optimizer.state[v].get("n_iter", 0))
    v_final, b_final = solution
    weight = v_final if to_w is None else to_w @ v_final
    info = {
        "n_iter": n_iter,
        "n_evaluations": state["evaluations"],
        "grad_max": state["grad_max"],
        "stop": stop,
        "converged": stop != "max_iter",
        "preconditioned": bool(precondition),
    }
    return weight, b_final, info


class _FittedLogistic(FittedProbe):
    def __init__(self, scaler: Standardiser, dtype: torch.dtype, weight: torch.Tensor, bias: torch.Tensor,
                 present: np.ndarray, n_classes: int, info: dict[str, Any]):
        self.scaler, self.dtype, self.weight, self.bias = scaler, dtype, weight, bias
        self.present, self.n_classes, self.info = present, n_classes, info

    def predict(self, x: torch.Tensor) -> Prediction:
        with torch.no_grad():
            z = torch.addmm(self.bias, self.scaler(x, self.dtype), self.weight)
            if z.shape[1] == 1:
                positive = torch.sigmoid(z)
                probabilities = torch.cat([1.0 - positive, positive], dim=1)
            else:
                probabilities = torch.softmax(z, dim=1)
        return Prediction(probabilities=full_probabilities(probabilities, self.present, self.n_classes))


class _FittedRidge(FittedProbe):
    def __init__(self, scaler: Standardiser, coef: torch.Tensor, intercept: float):
        self.scaler, self.coef, self.intercept = scaler, coef, intercept
        self.info: dict[str, Any] = {}

    def predict(self, x: torch.Tensor) -> Prediction:
        with torch.no_grad():
            values = self.scaler(x, torch.float64) @ self.coef + self.intercept
        return Prediction(values=values.cpu().numpy())


@register_probe("linear")
class LinearProbe(Probe):
    """Logistic regression for classes and binned values, ridge regression for values (module docstring)."""

    handles: ClassVar[frozenset[str]] = frozenset({CLASSES, BINNED, VALUES})

    def __init__(self, C: float = 1.0, ridge_alpha: float = 1.0, max_iter: int = 1000, tol: float = 1e-4,
                 history_size: int = 20, dtype: str = "float32", precondition: bool | None = None):
        if not C > 0:
            raise ValueError(f"linear probe: C must be > 0, got {C}")
        if not ridge_alpha > 0:
            raise ValueError(f"linear probe: ridge_alpha must be > 0, got {ridge_alpha}")
        if max_iter < 1 or not tol > 0 or history_size < 1:
            raise ValueError(f"linear probe: max_iter ({max_iter}) and history_size ({history_size}) must be >= 1, tol ({tol}) > 0")
        if dtype not in ("float32", "float64"):
            raise ValueError(f"linear probe: dtype must be 'float32' or 'float64', got {dtype!r}")
        self.C, self.ridge_alpha, self.max_iter, self.tol = float(C), float(ridge_alpha), int(max_iter), float(tol)
        self.history_size, self.dtype, self.precondition = int(history_size), dtype, precondition

    def fit(self, x: torch.Tensor, target: Target, *, seed: int = 0) -> FittedProbe:
        scaler = Standardiser.fit(x)
        if target.kind == VALUES:
            return self._ridge(x, scaler, target.values)
        present, index = present_classes(target)
        dtype = getattr(torch, self.dtype)
        weight, bias, info = fit_logistic(
            scaler(x, dtype), index, present.size, C=self.C, tol=self.tol, max_iter=self.max_iter,
            history_size=self.history_size, precondition=self.precondition,
        )
        return _FittedLogistic(scaler, dtype, weight, bias, present, int(target.n_classes), info)

    def _ridge(self, x: torch.Tensor, scaler: Standardiser, values: np.ndarray) -> FittedProbe:
        # min ||y − Xs·w − b||² + alpha·||w||²: Xs is centred, so b = mean(y) and w solves the normal equations
        xs = scaler(x, torch.float64)
        y = torch.as_tensor(values, dtype=torch.float64, device=x.device)
        intercept = y.mean()
        system = _gram(xs) + self.ridge_alpha * torch.eye(xs.shape[1], dtype=torch.float64, device=x.device)
        coef = torch.linalg.solve(system, xs.T @ (y - intercept))
        return _FittedRidge(scaler, coef, float(intercept))
