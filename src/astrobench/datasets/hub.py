"""Hugging Face hub datasets in the Multimodal Universe image schema, online or fully offline."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Iterable

import numpy as np

from astrobench.datasets._source_utils import assemble, unique_ids
from astrobench.datasets.base import DataSource
from astrobench.datasets.schema import DataError, SurveyData
from astrobench.registry import register_dataset

_OFFLINE_VARIABLES = ("HF_DATASETS_OFFLINE", "HF_HUB_OFFLINE")
_TRUE = {"1", "true", "yes", "on"}


def offline_mode() -> bool:
    """Whether the environment forbids network access to the hub."""
    return any(os.environ.get(name, "").strip().lower() in _TRUE for name in _OFFLINE_VARIABLES)


@register_dataset("hub")
class HubSource(DataSource):
    """A dataset on the Hugging Face hub (or a ``save_to_disk`` copy) in the Multimodal Universe schema.

    Each row has an ``image`` column holding, per band, ``band`` (name), ``flux`` (H, W), ``ivar``,
    ``mask``, ``psf_fwhm`` (arcsec) and ``scale`` (arcsec per pixel), plus scalar columns
    (``object_id``, positions, catalogue values). The MMU mask says **True for a good pixel**; it is
    inverted here into our convention (True = invalid). NaN fluxes are masked as well.

    Options:
        name: hub dataset id, e.g. ``"MultimodalUniverse/legacysurvey"``.
        revision: git revision (commit, tag or branch) to pin; None: the default branch.
        config: dataset configuration name (e.g. a survey subset), if the dataset has several.
        split: which split to read.
        streaming: iterate over the remote files without downloading the whole set first.
        max_objects: read only the first N rows (useful with streaming).
        local_path: a ``Dataset.save_to_disk`` folder (a ``Dataset`` or ``DatasetDict``): no network.
        cache_dir: the Hugging Face datasets cache; None: the default (``HF_HOME``/``HF_DATASETS_CACHE``).
            With ``HF_DATASETS_OFFLINE=1`` only this cache is used.
        bands: the bands to keep, in this order; None keeps every band of the first row, and every
            row must have the same bands.
        image_field, flux_field, ivar_field, mask_field, band_field, psf_field, scale_field: names
            in the image schema (older MMU sets call the flux ``array``).
        mask_true_means: polarity of the dataset's mask: ``"valid"`` (MMU) or ``"invalid"``.
        id_column, ra_column, dec_column, ebv_column: scalar columns (missing ones give NaN; a
            missing id column numbers the rows).
        label_columns: label name -> column (a list keeps the names).
        batch_size: rows converted at a time.
    """

    def __init__(
        self,
        name: str,
        revision: str | None = None,
        config: str | None = None,
        split: str = "train",
        streaming: bool = False,
        max_objects: int | None = None,
        local_path: str | None = None,
        cache_dir: str | None = None,
        bands: list[str] | None = None,
        image_field: str = "image",
        flux_field: str = "flux",
        ivar_field: str | None = "ivar",
        mask_field: str | None = "mask",
        band_field: str = "band",
        psf_field: str | None = "psf_fwhm",
        scale_field: str | None = "scale",
        mask_true_means: str = "valid",
        id_column: str | None = "object_id",
        ra_column: str | None = "ra",
        dec_column: str | None = "dec",
        ebv_column: str | None = None,
        label_columns: dict[str, str] | list[str] | None = None,
        batch_size: int = 256,
    ) -> None:
        if mask_true_means not in ("valid", "invalid"):
            raise DataError(f"mask_true_means must be 'valid' or 'invalid', got {mask_true_means!r}")
        if max_objects is not None and max_objects < 1:
            raise DataError(f"max_objects must be positive, got {max_objects}")
        self.name = name
        self.revision = revision
        self.config = config
        self.split = split
        self.streaming = streaming
        self.max_objects = max_objects
        self.local_path = local_path
        self.cache_dir = cache_dir
        self.bands = list(bands) if bands is not None else None
        self.image_field = image_field
        self.flux_field = flux_field
        self.ivar_field = ivar_field
        self.mask_field = mask_field
        self.band_field = band_field
        self.psf_field = psf_field
        self.scale_field = scale_field
        self.mask_true_means = mask_true_means
        self.id_column = id_column
        self.ra_column = ra_column
        self.dec_column = dec_column
        self.ebv_column = ebv_column
        if isinstance(label_columns, list):
            label_columns = {c: c for c in label_columns}
        self.label_columns = dict(label_columns or {})
        self.batch_size = batch_size

    def options(self) -> dict[str, Any]:
        names = ("name", "revision", "config", "split", "streaming", "max_objects", "local_path", "bands",
                 "image_field", "flux_field", "ivar_field", "mask_field", "band_field", "psf_field",
                 "scale_field", "mask_true_means", "id_column", "ra_column", "dec_column", "ebv_column",
                 "label_columns")  # fmt: skip
        return {name: getattr(self, name) for name in names}

    @property
    def where(self) -> str:
        if self.local_path:
            return str(self.local_path)
        return f"hub:{self.name}@{self.revision or 'default'}"

    # -- opening ------------------------------------------------------------------------------
    def open(self) -> Any:
        """The ``datasets`` Dataset / IterableDataset for the split (nothing converted yet)."""
        if self.local_path is not None:
            return self._open_local()
        return self._open_hub()

    def _open_local(self) -> Any:
        from datasets import DatasetDict, load_from_disk

        path = Path(self.local_path)  # type: ignore[arg-type]
        if not path.exists():
            raise DataError(f"local_path {path} does not exist (expected a save_to_disk folder)")
        try:
            ds = load_from_disk(str(path))
        except (FileNotFoundError, ValueError) as exc:
            raise DataError(f"{path}: not a datasets save_to_disk folder ({exc})") from exc
        if isinstance(ds, DatasetDict):
            if self.split not in ds:
                raise DataError(f"{path}: no split {self.split!r}; it has {sorted(ds)}")
            ds = ds[self.split]
        if self.streaming:
            ds = ds.to_iterable_dataset()
        return ds

    def _open_hub(self) -> Any:
        import datasets

        offline = offline_mode()
        # `datasets` reads the offline flags when it is imported; honour a later setting, temporarily
        saved = (datasets.config.HF_HUB_OFFLINE, getattr(datasets.config, "HF_DATASETS_OFFLINE", None))
        if offline:
            datasets.config.HF_HUB_OFFLINE = True
            datasets.config.HF_DATASETS_OFFLINE = True
        try:
            return datasets.load_dataset(
                self.name, self.config, revision=self.revision, split=self.split,
                streaming=self.streaming, cache_dir=self.cache_dir,
            )  # fmt: skip
        except (ConnectionError, FileNotFoundError, OSError) as exc:
            raise DataError(self._unavailable_message(offline, exc)) from exc
        except Exception as exc:  # datasets/huggingface_hub raise their own types for missing data
            if type(exc).__name__ in ("DatasetNotFoundError", "LocalEntryNotFoundError", "HfHubHTTPError", "OfflineModeIsEnabled"):
                raise DataError(self._unavailable_message(offline, exc)) from exc
            raise
        finally:
            datasets.config.HF_HUB_OFFLINE, datasets.config.HF_DATASETS_OFFLINE = saved

    def _unavailable_message(self, offline: bool, exc: BaseException) -> str:
        from datasets import config

        cache = self.cache_dir or str(config.HF_DATASETS_CACHE)
        network = (
            "the network is off (offline mode: HF_DATASETS_OFFLINE / HF_HUB_OFFLINE is set)"
            if offline
            else "it could not be reached over the network"
        )
        return (
            f"hub dataset {self.name!r} (revision {self.revision or 'default'}, split {self.split!r}) is neither "
            f"cached nor reachable: it is not in the local cache {cache} and {network}. Download it once with "
            f"network access, or pass local_path= to a save_to_disk copy. (cause: {type(exc).__name__}: {exc})"
        )

    # -- converting ---------------------------------------------------------------------------
    def load(self, cache_dir: Path | None = None) -> SurveyData:
        ds = self.open()
        rows: dict[str, list[Any]] = {k: [] for k in ("id", "flux", "invalid", "ivar", "psf", "scale", "ra", "dec", "ebv")}
        labels: dict[str, list[Any]] = {name: [] for name in self.label_columns}
        bands = self.bands
        for index, row in enumerate(self._rows(ds)):
            bands = self._convert_row(row, index, bands, rows, labels)
        if not rows["flux"]:
            raise DataError(f"{self.where}: split {self.split!r} holds no rows")
        n = len(rows["flux"])
        ids = unique_ids(rows["id"], f"{self.where}: column {self.id_column!r}")
        ivar = np.stack(rows["ivar"]) if self.ivar_field and all(v is not None for v in rows["ivar"]) else None
        return assemble(
            origin=self.where,
            object_id=ids,
            image=np.stack(rows["flux"]),
            invalid=np.stack(rows["invalid"]),
            bands=bands or [],
            pixel_scale=np.array(rows["scale"], dtype=np.float64),
            psf_fwhm=np.stack(rows["psf"]),
            ebv=np.array(rows["ebv"], dtype=np.float64),
            ra=np.array(rows["ra"], dtype=np.float64),
            dec=np.array(rows["dec"], dtype=np.float64),
            ivar=ivar,
            labels={name: _label_array(values) for name, values in labels.items()} if n else {},
            manifest={"source": "hub", "options": self.options()},
        )

    def _rows(self, ds: Any) -> Iterable[dict[str, Any]]:
        limit = self.max_objects
        if hasattr(ds, "with_format"):
            ds = ds.with_format("numpy")
        count = 0
        for batch in ds.iter(batch_size=self.batch_size):
            size = len(next(iter(batch.values())))
            for i in range(size):
                if limit is not None and count >= limit:
                    return
                yield {key: values[i] for key, values in batch.items()}
                count += 1

    def _convert_row(
        self, row: dict[str, Any], index: int, bands: list[str] | None, rows: dict[str, list[Any]], labels: dict[str, list[Any]]
    ) -> list[str]:
        if self.image_field not in row:
            raise DataError(f"{self.where}: no column {self.image_field!r}; columns are {sorted(row)}")
        image = row[self.image_field]
        per_band = _per_band_fields(image, self.where)
        if self.flux_field not in per_band:
            raise DataError(f"{self.where}: image field has no {self.flux_field!r}; it has {sorted(per_band)}")
        row_bands = [b.decode() if isinstance(b, bytes) else str(b) for b in per_band[self.band_field]]
        wanted = bands if bands is not None else row_bands
        missing = [b for b in wanted if b not in row_bands]
        if missing:
            raise DataError(f"{self.where}: row {index} lacks band(s) {missing}; it has {row_bands}")
        order = [row_bands.index(b) for b in wanted]

        def planes(field: str | None) -> np.ndarray | None:
            if field is None or field not in per_band:
                return None
            return np.stack([np.asarray(per_band[field][i]) for i in order])

        flux = planes(self.flux_field).astype(np.float32)  # type: ignore[union-attr]
        invalid = ~np.isfinite(flux)
        flags = planes(self.mask_field)
        if flags is not None:
            flags = flags.astype(bool)
            invalid |= ~flags if self.mask_true_means == "valid" else flags
        ivar = planes(self.ivar_field)
        rows["flux"].append(flux)
        rows["invalid"].append(invalid)
        rows["ivar"].append(None if ivar is None else ivar.astype(np.float32))
        rows["psf"].append(_per_band_scalar(per_band, self.psf_field, order))
        scales = _per_band_scalar(per_band, self.scale_field, order)
        rows["scale"].append(float(np.nanmean(scales)) if np.isfinite(scales).any() else np.nan)
        rows["id"].append(_scalar(row.get(self.id_column)) if self.id_column in row else f"row{index:06d}")
        for key, column in (("ra", self.ra_column), ("dec", self.dec_column), ("ebv", self.ebv_column)):
            rows[key].append(_float(row.get(column)) if column else np.nan)
        for name, column in self.label_columns.items():
            if column not in row:
                raise DataError(f"{self.where}: no label column {column!r}; columns are {sorted(row)}")
            labels[name].append(row[column])
        return wanted


def _per_band_fields(image: Any, where: str) -> dict[str, Any]:
    """The per-band image fields as a dict of per-band lists (HF returns a Sequence of dicts so)."""
    if isinstance(image, dict):
        return image
    if isinstance(image, (list, tuple, np.ndarray)) and len(image) and isinstance(image[0], dict):
        return {key: [band[key] for band in image] for key in image[0]}
    raise DataError(f"{where}: image column is {type(image).__name__}, expected per-band records")


def _per_band_scalar(per_band: dict[str, Any], field: str | None, order: list[int]) -> np.ndarray:
    if field is None or field not in per_band:
        return np.full(len(order), np.nan, dtype=np.float32)
    values = np.asarray(per_band[field], dtype=np.float64)
    return values[order].astype(np.float32)


def _scalar(value: Any) -> str:
    value = value.item() if isinstance(value, np.ndarray) and value.ndim == 0 else value
    return value.decode() if isinstance(value, bytes) else str(value)


def _float(value: Any) -> float:
    try:
        return float(value) if value is not None else np.nan
    except (TypeError, ValueError):
        return np.nan


def _label_array(values: list[Any]) -> np.ndarray:
    array = np.asarray(values)
    if array.dtype.kind in "biu":
        return array.astype(np.int64)
    return array.astype(np.float64)
