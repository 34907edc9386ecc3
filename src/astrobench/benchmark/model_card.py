"""What model a result row is: backbone, parameter count, embedding size, images seen in pretraining.

The runner stores these in every result as ``model`` ({backbone, parameters, embedding_dim,
images_seen}); results written before that field existed give what their provenance holds (the
backbone from the method options, images seen = pretraining steps x global batch) and leave the
rest unknown (None, shown as ``–``), never guessed.
"""

from __future__ import annotations

import math
import re
from typing import Any

CARD_FIELDS = ("backbone", "parameters", "embedding_dim", "images_seen")
CARD_HEADERS = {"backbone": "backbone", "parameters": "params", "embedding_dim": "dim", "images_seen": "images seen"}


def model_card(record: dict[str, Any]) -> dict[str, Any]:
    """{backbone, parameters, embedding_dim, images_seen} of one result; None where unknown."""
    stored = record.get("model") if isinstance(record.get("model"), dict) else {}
    options = (record.get("method_config") or {}).get("options") or {}
    pretrain = record.get("pretrain") if isinstance(record.get("pretrain"), dict) else {}
    images_seen = None
    if isinstance(pretrain.get("steps"), int) and isinstance(pretrain.get("global_batch"), int):
        images_seen = pretrain["steps"] * pretrain["global_batch"]
    derived = {"backbone": options.get("backbone"), "parameters": None, "embedding_dim": None, "images_seen": images_seen}
    return {k: stored.get(k, derived[k]) if stored.get(k) is not None else derived[k] for k in CARD_FIELDS}


def card_of_model(model: Any, backbone: str | None, embedding_dim: int, pretrain_stats: dict[str, Any]) -> dict[str, Any]:
    """The card the runner stores: the architecture and parameters of the method's ``backbone``
    module (the encoder that embeds; for baselines without one, ``backbone`` as given and no
    parameter count), images seen = steps x global batch (0 when untrained)."""
    encoder = getattr(model, "backbone", None)
    parameters = int(sum(p.numel() for p in encoder.parameters())) if encoder is not None else None
    backbone = architecture(encoder) if encoder is not None else backbone
    steps, batch = pretrain_stats.get("steps") or 0, pretrain_stats.get("global_batch") or 0
    return {"backbone": backbone, "parameters": parameters, "embedding_dim": int(embedding_dim),
            "images_seen": int(steps) * int(batch)}


def architecture(module: Any) -> str:
    """A timm model's architecture name (``resnet10t``); any other module's class name. A ViT built
    with another patch size, image size or depth than its timm name says is named as built
    (``vit_tiny_patch16_224`` at patch 8, 64 px, 6 blocks -> ``vit_tiny_patch8_64-d6``): rows that
    differ in what they are must not share a name."""
    config = getattr(module, "pretrained_cfg", None) or {}
    name = str(config.get("architecture") or type(module).__name__)
    patch_embed, blocks = getattr(module, "patch_embed", None), getattr(module, "blocks", None)
    if patch_embed is None or blocks is None:
        return name
    patch, image = _first(getattr(patch_embed, "patch_size", None)), _first(getattr(patch_embed, "img_size", None))
    if patch is not None and image is not None:
        name = re.sub(r"patch\d+_\d+", f"patch{patch}_{image}", name)
    return f"{name}-d{len(blocks)}"


def _first(size: Any) -> int | None:
    if isinstance(size, (tuple, list)):
        return int(size[0]) if size else None
    return int(size) if isinstance(size, int) else None


def compact_count(n: Any) -> str:
    """11_234_567 -> ``11.2M``, 16_000 -> ``16.0k``, 512 -> ``512``; unknown -> ``–``."""
    if n is None or (isinstance(n, float) and math.isnan(n)):
        return "–"
    n = int(n)
    for unit, size in (("G", 10**9), ("M", 10**6), ("k", 10**3)):
        if abs(n) >= size:
            return f"{n / size:.1f}{unit}"
    return str(n)


def card_texts(card: dict[str, Any] | None) -> list[str]:
    """The card's four cells as text, in ``CARD_FIELDS`` order."""
    card = card or {}
    backbone = card.get("backbone")
    return [str(backbone) if backbone else "–", compact_count(card.get("parameters")),
            compact_count(card.get("embedding_dim")), compact_count(card.get("images_seen"))]
