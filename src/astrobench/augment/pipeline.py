"""A view pipeline: registered ops by code, then normalisation, then a fixed output size."""

from __future__ import annotations

import functools
from typing import Any, Callable, Sequence, TypeVar

import torch

from astrobench.augment.base import Augmentation, AugBatch
from astrobench.augment.functional import may_be_true
from astrobench.augment.ops import GeometricAugmentation, PlaneScaleAugmentation, apply_geometry, scale_planes
from astrobench.augment.normalize import Normalizer
from astrobench.registry import AUGMENTATIONS


_F = TypeVar("_F", bound=Callable[..., Any])


def _outside_autocast(method: _F) -> _F:
    """Run a pipeline method in the batch's own precision, even inside a training step's autocast:
    the augmentations are flux arithmetic (noise levels, resampling weights), not matrix work that
    bf16 speeds up, and autocast would hand their ops operands of mixed dtypes."""

    @functools.wraps(method)
    def wrapper(self: "ViewPipeline", batch: AugBatch, *args: Any, **kwargs: Any) -> Any:
        with torch.autocast(device_type=batch["image"].device.type, enabled=False):
            return method(self, batch, *args, **kwargs)

    return wrapper  # type: ignore[return-value]


class ViewPipeline:
    """Makes random views (training) and the deterministic view (embedding) of a batch.

    ``codes`` are registered augmentation names, ``params`` their constructor arguments by code.
    Photometric ops run before geometric ones; the normaliser runs last, then a centre crop to
    ``out_size`` (the size jitter-crop produces), so training and evaluation see the same shape.

    Geometric ops that provide a sampling matrix (``ops.GeometricAugmentation``: RR, JC, FL) are
    composed per image and applied as **one** bilinear resampling straight to the ``out_size``
    centre crop of their output (the same pixels as resampling, then ``centre_crop``); any other
    geometric op (a plugin) runs on its own between them. Plane-scale ops
    (``ops.PlaneScaleAugmentation``: GR) give per-plane factors, which travel past the ops that
    commute with them (``commutes_with_plane_scale``: PS, MK, the geometric ones) and are applied
    by that resampling, without a pass of their own; an op that does not commute gets them applied
    first.
    """

    def __init__(
        self,
        codes: Sequence[str],
        params: dict[str, dict[str, Any]] | None,
        normalizer: Normalizer,
        out_size: int,
    ):
        params = dict(params or {})
        unknown = sorted(set(params) - set(codes))
        if unknown:
            raise ValueError(f"augmentation parameters given for {unknown}, which are not in the views {list(codes)}")
        ops: list[Augmentation] = []
        for code in codes:
            cls = AUGMENTATIONS.get(code)
            op = cls(**params.get(code, {}))
            if op.needs_flux and not normalizer.is_flux:
                raise ValueError(f"augmentation {code} needs flux images; this dataset holds RGB composites")
            ops.append(op)
        self.codes = tuple(codes)
        self.ops = [op for op in ops if not op.geometric] + [op for op in ops if op.geometric]
        self.normalizer = normalizer
        self.out_size = int(out_size)

    def config(self) -> dict[str, Any]:
        return {
            "codes": list(self.codes),
            "params": {op.code: op.params() for op in self.ops},
            "out_size": self.out_size,
        }

    @property
    def needs_ivar(self) -> bool:
        """Whether any op reads the inverse variance: a batch for views needs none otherwise."""
        return any(op.reads_ivar for op in self.ops)

    @_outside_autocast
    def __call__(self, batch: AugBatch, generator: torch.Generator | None = None) -> torch.Tensor:
        """A random view: (B, C, out_size, out_size) normalised images."""
        batch = self.augment(batch, generator, keep_ivar=False)
        if self.ops and isinstance(self.ops[-1], GeometricAugmentation):
            # the final resampling left 0 in every invalid pixel, and the normaliser maps 0 to 0:
            # masking again would cost a pass over the batch for nothing
            return self.normalizer(centre_crop(batch["image"], self.out_size))
        return self.finish(batch)

    def augment(self, batch: AugBatch, generator: torch.Generator | None = None, keep_ivar: bool = True) -> AugBatch:
        """The augmented batch in flux space (image, mask, ivar, psf_fwhm, ebv updated), cropped to
        ``out_size`` when the pipeline has composable geometric ops (else at the input size).

        ``keep_ivar=False`` drops ``ivar`` after the last op that reads it (``reads_ivar``), which gets
        ``batch["keep_ivar"] = False`` so it may skip its own update: the views need only image and
        mask, and later ops would only update it (resampling ivar would double the cost of the
        geometric stage).
        """
        pending: list[torch.Tensor] = []  # sampling matrices of consecutive composable ops
        height, width = batch["image"].shape[-2:]
        # a mask with nothing invalid (the usual case) leaves the batch here, checked once: every op
        # would otherwise test it again (a pass over the batch each); an all-False mask comes back
        # at the end if no op made a new one
        empty_mask = batch.get("mask") is not None and not may_be_true(batch["mask"])
        if empty_mask:
            batch = {key: value for key, value in batch.items() if key != "mask"}  # type: ignore[assignment]
        last_reader = max((i for i, op in enumerate(self.ops) if op.reads_ivar), default=-1)
        plane_scale: torch.Tensor | None = None  # (B, C) factors of plane-scale ops, not yet applied
        for i, op in enumerate(self.ops):
            if not keep_ivar and i > last_reader:
                batch = _without_ivar(batch)
            if isinstance(op, GeometricAugmentation):
                pending.append(op.sampling_matrix(batch, generator))
                height, width = op.output_size(height, width)
                continue
            if pending:  # a geometric op outside the contract: resample what came before it
                batch = apply_geometry(batch, _compose(pending), (height, width), plane_scale=plane_scale)
                pending, plane_scale = [], None
            if isinstance(op, PlaneScaleAugmentation):
                factors, batch = op.plane_factors(batch, generator)
                plane_scale = factors if plane_scale is None else plane_scale * factors
                continue
            if plane_scale is not None and not op.commutes_with_plane_scale:
                batch, plane_scale = scale_planes(batch, plane_scale), None
            if not keep_ivar and i == last_reader:
                batch = op({**batch, "keep_ivar": False}, generator)  # type: ignore[typeddict-item]
                batch = _without_ivar(batch)
            else:
                batch = op(batch, generator)
            height, width = batch["image"].shape[-2:]
        if not keep_ivar:
            batch = _without_ivar(batch)
        if pending:
            batch = self._resample_to_crop(batch, _compose(pending), (height, width), plane_scale)
        elif plane_scale is not None:
            batch = scale_planes(batch, plane_scale)
        if empty_mask and batch.get("mask") is None:
            batch = {**batch, "mask": torch.zeros(batch["image"].shape, dtype=torch.bool, device=batch["image"].device)}  # type: ignore[typeddict-item]
        return batch

    def _resample_to_crop(self, batch: AugBatch, matrix: torch.Tensor, size: tuple[int, int], plane_scale: torch.Tensor | None) -> AugBatch:
        height, width = size
        if self.out_size > min(height, width):
            raise ValueError(
                f"the geometric augmentations {[op.code for op in self.ops if op.geometric]} produce "
                f"{height}x{width} images, smaller than the view size {self.out_size}"
            )
        # centre_crop keeps rows top..top+out of the op chain's output: its centre lies
        # top + out/2 - height/2 px (0 or -1/2) from the chain's centre
        offset = [((n - self.out_size) // 2) + self.out_size / 2 - n / 2 for n in (width, height)]
        # filled on the device: a tensor made from host numbers is a copy the host waits for
        extra = torch.empty(matrix.shape[0], 2, dtype=torch.float32, device=matrix.device)
        extra[:, 0], extra[:, 1] = offset
        return apply_geometry(batch, matrix, (self.out_size, self.out_size), extra_offset=extra, plane_scale=plane_scale)

    @_outside_autocast
    def eval_view(self, batch: AugBatch) -> torch.Tensor:
        """The deterministic view for embedding: normalised, centre-cropped, no augmentation."""
        return self.finish(batch)

    def finish(self, batch: AugBatch) -> torch.Tensor:
        """Flux batch -> encoder input: centre-crop to ``out_size``, then normalise (per pixel, so
        cropping first gives the same values for less work)."""
        mask = batch.get("mask")
        image = centre_crop(batch["image"], self.out_size)
        return self.normalizer(image, None if mask is None else centre_crop(mask, self.out_size))


def _without_ivar(batch: AugBatch) -> AugBatch:
    return {key: value for key, value in batch.items() if key not in ("ivar", "keep_ivar")}  # type: ignore[return-value]


def _compose(matrices: list[torch.Tensor]) -> torch.Tensor:
    # ops applied in order 1, 2, ... read x = S1 S2 ... u (see functional.sampling_matrix)
    composed = matrices[0]
    for matrix in matrices[1:]:
        composed = composed @ matrix
    return composed


def centre_crop(image: torch.Tensor, size: int) -> torch.Tensor:
    h, w = image.shape[-2:]
    if size > min(h, w):
        raise ValueError(f"cannot crop {size}x{size} from images of {h}x{w}")
    top, left = (h - size) // 2, (w - size) // 2
    return image[..., top : top + size, left : left + size]
