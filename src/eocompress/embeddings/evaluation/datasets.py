"""Load labelled embedding sets from .npz, (Geo)Parquet with an embedding list column, or a GeoTIFF field.

Every loader returns an :class:`EmbeddingDataset` with validated float32 vectors, optional labels
(class ids or float targets), an optional given split and optional positions for spatial splits.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from eocompress.errors import EOCompressError, InputError

#: Real data sets the default sweep evaluates (paths under $EOCOMPRESS_DATA): Presto 128-d land cover and
#: algae blooms, and EfficientNet-Lite0 1280-d embeddings of the same Slovenia pixels with the same labels.
EFFNET_LULC = "embeddings/effnetlite0_lulc_slovenia_1280.npz"
DEFAULT_DATASETS = ("embeddings/presto_lulc_slovenia.npz", "embeddings/presto_algae_blooms.npz", EFFNET_LULC)

#: Class names that mean "no label here"; rows with them are dropped from labelled evaluation.
NODATA_NAMES = {"no_data", "nodata", "no data", "unlabelled", "unlabeled"}


class DatasetError(InputError):
    """A data set file whose content cannot be evaluated (missing arrays, wrong lengths, NaN, grids)."""


@dataclass
class EmbeddingDataset:
    """Embeddings ``X`` (N, D) float32 with optional labels, split, positions and class names."""

    name: str
    path: str
    X: np.ndarray
    y: np.ndarray | None = None
    task: str | None = None  # "classification", "regression" or None (no labels: retrieval only)
    is_test: np.ndarray | None = None
    coords: np.ndarray | None = None  # (N, 2) row/col or lat/lon, for spatial splits
    coords_kind: str | None = None  # "rowcol" or "latlon"
    class_names: dict[int, str] = field(default_factory=dict)

    @property
    def n(self) -> int:
        """Number of vectors."""
        return int(self.X.shape[0])

    @property
    def dim(self) -> int:
        """Embedding dimension D."""
        return int(self.X.shape[1])

    def class_name(self, value: int) -> str:
        """Readable name of class id ``value`` (the id itself when unnamed)."""
        return self.class_names.get(int(value), str(int(value)))

    def require_labels(self, what: str) -> np.ndarray:
        """The labels, or a clear error saying that ``what`` needs them."""
        if self.y is None:
            raise DatasetError(
                f"{self.path} has no labels, so {what} cannot run; add a label array `y` (npz), a label "
                "column (--label-column for Parquet) or a label raster (--labels for GeoTIFF). "
                "Retrieval (recall@10) still runs without labels."
            )
        return self.y


def _check_vectors(X: np.ndarray, path: str) -> np.ndarray:
    """Validate an (N, D) numeric array without NaN/Inf and return it as float32."""
    X = np.asarray(X)
    if X.ndim != 2 or X.shape[0] < 2 or X.shape[1] < 1:
        raise DatasetError(f"{path}: embeddings must be a 2-D array (N vectors, D dims), got shape {X.shape}")
    if not np.issubdtype(X.dtype, np.number):
        raise DatasetError(f"{path}: embeddings must be numeric, got dtype {X.dtype}")
    X = X.astype(np.float32, copy=False)
    bad = ~np.isfinite(X).all(axis=1)
    if bad.any():
        first = np.flatnonzero(bad)[:5].tolist()
        raise DatasetError(
            f"{path}: {int(bad.sum())} of {len(X)} vectors contain NaN or Inf (first rows {first}); "
            "drop or fill those rows before evaluating"
        )
    return X


def _infer_task(y: np.ndarray, task: str | None) -> str:
    """'classification' for integer labels, 'regression' for non-integer floats, unless ``task`` is given."""
    if task in ("classification", "regression"):
        return task
    if task not in (None, "auto"):
        raise EOCompressError(f"unknown task {task!r}; use auto, classification or regression")
    if np.issubdtype(y.dtype, np.integer) or np.issubdtype(y.dtype, np.bool_):
        return "classification"
    if np.issubdtype(y.dtype, np.floating) and np.all(np.mod(y, 1) == 0):
        return "classification"
    return "regression"


def _numeric_labels(ds: EmbeddingDataset, y: np.ndarray, task: str | None) -> np.ndarray:
    """Labels as numbers: text labels become class ids 0..K-1 (their names kept), numeric objects floats.

    Text labels ("forest", "water") are class names, so they always mean classification; a mix of
    text and numbers, or anything else that is not a number, is a clear error.
    """
    if np.issubdtype(y.dtype, np.number) or np.issubdtype(y.dtype, np.bool_):
        return y
    if y.dtype.kind in "US" or (y.dtype == object and all(isinstance(v, str | bytes) for v in y)):
        if task == "regression":
            raise DatasetError(f"{ds.path}: the labels are text ({y[0]!r}, ...), so --task regression cannot "
                               "use them; pass numeric targets or drop --task regression")
        text = np.array([v.decode() if isinstance(v, bytes) else str(v) for v in y])
        names, ids = np.unique(text, return_inverse=True)
        ds.class_names = {i: str(n) for i, n in enumerate(names)}
        return ids.astype(np.int64)
    if y.dtype == object:
        try:
            return np.array([np.nan if v is None else float(v) for v in y], dtype=np.float64)
        except (TypeError, ValueError):
            pass
    kinds = sorted({type(v).__name__ for v in y.tolist()}) if y.dtype == object else [str(y.dtype)]
    raise DatasetError(
        f"{ds.path}: labels of type {', '.join(kinds)} are neither numbers nor text; store one class id "
        "(integer), class name (string) or float target per vector"
    )


def finalize_dataset(
    ds: EmbeddingDataset,
    task: str | None = "auto",
    ignore_labels: tuple[int, ...] = (),
) -> EmbeddingDataset:
    """Check labels against vectors, drop no-data classes, infer the task; errors name the file."""
    ds.X = _check_vectors(ds.X, ds.path)
    n = len(ds.X)
    for name in ("y", "is_test", "coords"):
        arr = getattr(ds, name)
        if arr is not None and len(arr) != n:
            raise DatasetError(
                f"{ds.path}: `{name}` has {len(arr)} entries but there are {n} vectors; "
                "labels, split and positions must have one entry per vector"
            )
    if ds.y is None:
        ds.task = None
        return ds
    y = np.asarray(ds.y)
    if y.ndim != 1:
        raise DatasetError(f"{ds.path}: labels must be 1-D (one per vector), got shape {y.shape}")
    y = _numeric_labels(ds, y, task)
    if np.issubdtype(y.dtype, np.floating) and not np.isfinite(y).all():
        keep_finite = np.isfinite(y)
    else:
        keep_finite = np.ones(n, bool)
    ds.task = _infer_task(y[keep_finite], task)
    keep = keep_finite.copy()
    if ds.task == "classification":
        drop_ids = set(int(v) for v in ignore_labels)
        drop_ids |= {k for k, v in ds.class_names.items() if v.strip().lower() in NODATA_NAMES}
        if drop_ids:
            keep &= ~np.isin(y, sorted(drop_ids))
        y = y.astype(np.int64)
    else:
        y = y.astype(np.float64)
    if not keep.all():
        ds.X = ds.X[keep]
        y = y[keep]
        if ds.is_test is not None:
            ds.is_test = np.asarray(ds.is_test)[keep]
        if ds.coords is not None:
            ds.coords = np.asarray(ds.coords)[keep]
    ds.y = y
    if ds.task == "classification" and len(np.unique(y)) < 2:
        raise DatasetError(
            f"{ds.path}: all {len(y)} labelled vectors have the same class ({ds.class_name(y[0]) if len(y) else '-'}); "
            "classification needs at least two classes; use another label column or evaluate retrieval only"
        )
    if len(y) < 10:
        raise DatasetError(f"{ds.path}: only {len(y)} labelled vectors remain; evaluation needs at least 10")
    return ds


def _class_names_from(values, names) -> dict[int, str]:
    """Map class ids to names when both arrays are present and of equal length."""
    if values is None or names is None or len(values) != len(names):
        return {}
    return {int(v): str(n) for v, n in zip(values, names, strict=True)}


def load_npz(path: str | Path, task: str | None = "auto", ignore_labels: tuple[int, ...] = ()) -> EmbeddingDataset:
    """Load an .npz with ``X`` (N, D), optional ``y``, ``is_test``, ``latlon`` or ``row``/``col``, class names."""
    path = Path(path)
    try:
        npz = np.load(path, allow_pickle=False)
    except (OSError, ValueError) as exc:
        raise DatasetError(f"{path} is not a readable .npz file ({exc}); pass an npz with an `X` array") from exc
    with npz:
        files = set(npz.files)
        if "X" not in files:
            raise DatasetError(f"{path} has no `X` array (found {sorted(files)}); store embeddings as X (N, D)")
        def get(key: str) -> np.ndarray | None:
            return read(key) if key in files else None

        def read(key: str) -> np.ndarray:
            try:
                return npz[key]
            except ValueError as exc:  # object arrays need pickle, which we never load
                raise DatasetError(
                    f"{path}: array `{key}` is stored as Python objects, which eocompress does not load "
                    "(no pickle); save it as numbers or fixed-width strings, e.g. y.astype(str) or y.astype(int)"
                ) from exc

        coords, kind = None, None
        if "row" in files and "col" in files:
            coords, kind = np.stack([npz["row"], npz["col"]], axis=1).astype(np.float64), "rowcol"
        elif "latlon" in files:
            coords, kind = np.asarray(npz["latlon"], dtype=np.float64), "latlon"
        ds = EmbeddingDataset(
            name=path.stem,
            path=str(path),
            X=read("X"),
            y=get("y"),
            is_test=None if get("is_test") is None else np.asarray(get("is_test")).astype(bool),
            coords=coords,
            coords_kind=kind,
            class_names=_class_names_from(get("class_values"), get("class_names")),
        )
    return finalize_dataset(ds, task=task, ignore_labels=ignore_labels)


def load_parquet(
    path: str | Path,
    embedding_column: str = "embedding",
    label_column: str | None = "label",
    task: str | None = "auto",
    ignore_labels: tuple[int, ...] = (),
) -> EmbeddingDataset:
    """Load (Geo)Parquet rows with a fixed-length list column of embeddings (Major-TOM schema) and labels."""
    import pyarrow.parquet as pq

    path = Path(path)
    try:
        table = pq.read_table(path)
    except Exception as exc:  # pyarrow raises several types for bad files
        raise DatasetError(f"{path} is not a readable Parquet file ({exc})") from exc
    names = table.column_names
    if embedding_column not in names:
        raise DatasetError(
            f"{path} has no column {embedding_column!r} (columns: {names}); pass --embedding-column NAME"
        )
    col = table.column(embedding_column).combine_chunks()
    try:
        lengths = np.asarray(col.value_lengths())
        flat = np.asarray(col.flatten().to_numpy(zero_copy_only=False), dtype=np.float64)
    except (AttributeError, TypeError) as exc:
        raise DatasetError(f"{path}: column {embedding_column!r} is not a list of numbers ({col.type})") from exc
    if len(lengths) == 0 or (lengths != lengths[0]).any():
        raise DatasetError(
            f"{path}: embeddings in {embedding_column!r} have different lengths "
            f"({sorted(set(lengths.tolist()))[:5]}); every row needs the same dimension"
        )
    X = flat.reshape(len(lengths), int(lengths[0]))
    y = None
    if label_column and label_column in names:
        y = table.column(label_column).to_numpy(zero_copy_only=False)
    coords, kind = None, None
    if "centre_lat" in names and "centre_lon" in names:
        coords = np.stack(
            [table.column("centre_lat").to_numpy(), table.column("centre_lon").to_numpy()], axis=1
        ).astype(np.float64)
        kind = "latlon"
    is_test = table.column("is_test").to_numpy().astype(bool) if "is_test" in names else None
    ds = EmbeddingDataset(path.stem, str(path), X, y=y, is_test=is_test, coords=coords, coords_kind=kind)
    return finalize_dataset(ds, task=task, ignore_labels=ignore_labels)


def load_geotiff(
    path: str | Path,
    labels: str | Path | None = None,
    task: str | None = "auto",
    ignore_labels: tuple[int, ...] = (),
) -> EmbeddingDataset:
    """Load a GeoTIFF embedding field (one band per dimension) and an optional label raster on the same grid."""
    import rasterio

    path = Path(path)
    try:
        with rasterio.open(path) as src:
            cube = src.read()
            transform, crs, nodata = src.transform, src.crs, src.nodata
    except rasterio.errors.RasterioIOError as exc:
        raise DatasetError(f"{path} is not a readable GeoTIFF ({exc})") from exc
    d, h, w = cube.shape
    X = cube.reshape(d, h * w).T
    rows, cols = np.divmod(np.arange(h * w), w)
    coords = np.stack([rows, cols], axis=1).astype(np.float64)
    valid = np.ones(h * w, bool)
    if nodata is not None and not np.isnan(nodata):
        valid &= ~(X == nodata).all(axis=1)
    y = None
    if labels is not None:
        labels = Path(labels)
        try:
            with rasterio.open(labels) as lab:
                if (lab.height, lab.width) != (h, w) or lab.transform != transform or lab.crs != crs:
                    raise DatasetError(
                        f"label raster {labels} is not on the grid of {path}: {lab.height}x{lab.width} "
                        f"{lab.crs} {tuple(lab.transform)[:6]} vs {h}x{w} {crs} {tuple(transform)[:6]}; "
                        "resample it onto the embedding grid (same CRS, transform and size)"
                    )
                lab_arr = lab.read(1).reshape(-1)
                lab_nodata = lab.nodata
        except rasterio.errors.RasterioIOError as exc:
            raise DatasetError(f"label raster {labels} is not a readable GeoTIFF ({exc})") from exc
        if lab_nodata is not None:
            valid &= lab_arr != lab_nodata
        y = lab_arr
    ds = EmbeddingDataset(
        path.stem, str(path), X[valid], y=None if y is None else y[valid], coords=coords[valid], coords_kind="rowcol"
    )
    return finalize_dataset(ds, task=task, ignore_labels=ignore_labels)


def load_dataset(
    path: str | Path,
    labels: str | Path | None = None,
    label_column: str | None = "label",
    embedding_column: str = "embedding",
    task: str | None = "auto",
    ignore_labels: tuple[int, ...] = (),
) -> EmbeddingDataset:
    """Load any supported embedding set by its suffix (.npz, .parquet/.geoparquet, .tif/.tiff)."""
    path = Path(path)
    if not path.exists():
        raise DatasetError(f"{path} does not exist; pass an .npz, .parquet or .tif embedding file")
    suffix = path.suffix.lower()
    if labels is not None and suffix not in (".tif", ".tiff"):
        raise DatasetError(f"--labels (a label raster) only applies to GeoTIFF fields, not {path.name}")
    if suffix == ".npz":
        return load_npz(path, task=task, ignore_labels=ignore_labels)
    if suffix in (".parquet", ".geoparquet", ".pq"):
        return load_parquet(path, embedding_column, label_column, task=task, ignore_labels=ignore_labels)
    if suffix in (".tif", ".tiff"):
        return load_geotiff(path, labels=labels, task=task, ignore_labels=ignore_labels)
    raise DatasetError(f"{path}: unsupported file type {suffix!r}; use .npz, .parquet/.geoparquet or .tif")
