"""Python entry points behind the CLI: fit a codec on a field, compress, decompress, open a product.

``compress(IN, OUT, "int8")`` picks the product from OUT's name: ``.zarr`` (default for grids),
``.tif`` (int8 COG) or ``.parquet`` (chips, when IN is a Parquet table). Pass a
``distributed.Client`` to run chunk by chunk on Dask; without one, chunks run in this process.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from eocompress._atomic import atomic_path, check_output_path
from eocompress.embeddings.products.fields import Field, GridInfo, open_field, sample_pixels
from eocompress.embeddings.products.scale import map_chunks
from eocompress.errors import EOCompressError, InputError

ProgressFn = Callable[[int], None] | None


def product_kind(path: str | os.PathLike) -> str:
    """``zarr``, ``cog`` or ``parquet`` from a product path (by content when it exists, else by name)."""
    path = Path(path)
    suffix = path.suffix.lower()
    if path.is_dir() or suffix == ".zarr":
        return "zarr"
    if suffix in (".tif", ".tiff"):
        return "cog"
    if suffix in (".parquet", ".geoparquet", ".pq"):
        return "parquet"
    raise InputError(f"cannot tell the product type of {path}; name it .zarr, .tif (int8 COG) or .parquet")


def load_training_vectors(path: str | os.PathLike) -> np.ndarray:
    """Training vectors from a ``.npy`` (N, D) or ``.npz`` (key ``X``) file."""
    path = Path(path)
    if path.suffix == ".npy":
        return np.load(path, allow_pickle=False)
    if path.suffix == ".npz":
        with np.load(path, allow_pickle=False) as npz:
            if "X" not in npz.files:
                raise InputError(
                    f"{path} has no array 'X' (found {npz.files}); save the training vectors as X"
                )
            return npz["X"]
    raise InputError(f"--fit {path}: give a saved codec (.json) or training vectors (.npy, or .npz with X)")


def fit_codec(
    spec: str,
    dim: int,
    sample: Callable[[], np.ndarray],
    fit: str | os.PathLike | None = None,
    seed: int = 0,
    what: str = "the input",
) -> Any:
    """A fitted codec: loaded from ``fit`` (.json), fitted on ``fit`` (.npy/.npz), or on ``sample()``."""
    from eocompress.embeddings.codecs import Codec

    if fit is not None and Path(fit).suffix == ".json":
        codec = Codec.load(fit)
    else:
        X = load_training_vectors(fit) if fit is not None else sample()
        if X.ndim != 2 or X.shape[1] != dim:
            raise InputError(
                f"training vectors have shape {X.shape} but {what} has {dim} dimensions; fit on vectors "
                "of the same model"
            )
        codec = Codec.from_spec(spec, seed=seed).fit(X)
    if codec.dim != dim:
        raise InputError(
            f"{what} has {dim} bands but the codec {codec.spec!r} expects {codec.dim}-d vectors; use a codec "
            f"fitted on {dim}-d embeddings of the same model, or drop --fit to fit one on this input"
        )
    return codec


def compress(
    src: str | os.PathLike,
    out: str | os.PathLike,
    spec: str = "int8",
    *,
    fit_sample: int = 20000,
    fit: str | os.PathLike | None = None,
    chunk: int = 512,
    seed: int = 0,
    client: Any = None,
    resume: bool = False,
    overwrite: bool = False,
    rescore_spec: str | None = None,
    input_kind: str = "auto",
    progress: ProgressFn = None,
    stac: bool = True,
    field_kwargs: dict | None = None,
) -> Path:
    """Compress an embedding field (GeoTIFF/COG/Zarr/AEF/Tessera) or a chip table (Parquet) into ``out``."""
    src, out = Path(src), Path(out)
    if src.suffix.lower() in (".parquet", ".geoparquet", ".pq"):
        from eocompress.embeddings.products.parquet_product import compress_parquet

        return compress_parquet(
            src,
            out,
            spec,
            fit_sample=fit_sample,
            fit=fit,
            seed=seed,
            overwrite=overwrite,
            client=client,
            progress=progress,
            stac=stac,
        )
    kind = product_kind(out)
    if kind == "parquet":
        raise InputError(
            f"{out}: Parquet products are for chip tables; give a .parquet input or write .zarr/.tif"
        )
    check_output_path(out, overwrite=overwrite)
    fld = open_field(src, kind=input_kind, **(field_kwargs or {}))
    sample_cache: list[np.ndarray] = []

    def sample() -> np.ndarray:
        # Read the seeded fit sample at most once, though the codec and the rescore codec may both need it.
        if not sample_cache:
            sample_cache.append(sample_pixels(fld, fit_sample, chunk, seed=seed))
        return sample_cache[0]

    codec = None
    if resume and kind == "zarr":
        codec = _resume_codec(out)
    if codec is None:
        codec = fit_codec(spec, fld.info.dim, sample, fit, seed=seed, what=fld.describe())
    rescore = None
    if rescore_spec:
        if kind != "zarr":
            raise InputError("--rescore-codec is stored only in Zarr products; write OUT as .zarr")
        rescore = _resume_codec(out, key="eocompress:rescore_codec") if resume else None
        if rescore is None:
            rescore = fit_codec(rescore_spec, fld.info.dim, sample, None, seed=seed, what=fld.describe())
    if kind == "zarr":
        from eocompress.embeddings.products.zarr_product import compress_to_zarr

        result = compress_to_zarr(
            fld,
            out,
            codec,
            chunk=chunk,
            client=client,
            resume=resume,
            overwrite=overwrite,
            rescore_codec=rescore,
            progress=progress,
        )
    else:
        from eocompress.embeddings.products.cog_product import compress_to_cog

        result = compress_to_cog(
            fld, out, codec, chunk=chunk, client=client, overwrite=overwrite, progress=progress
        )
    if stac:
        from eocompress.embeddings.products.stac import write_stac_item

        write_stac_item(result)
    return result


def _resume_codec(out: Path, key: str = "eocompress:codec") -> Any:
    from eocompress.embeddings.products.checksums import codec_from_json
    from eocompress.embeddings.products.zarr_product import _open_group, partial_path

    store = partial_path(out) / "store.zarr"
    if not (store / "zarr.json").exists():
        return None
    text = _open_group(store).attrs.get(key)
    return codec_from_json(text) if text else None


def open_product(path: str | os.PathLike) -> Any:
    """Open a finished product (ZarrProduct, CogProduct or ParquetProduct) for reading."""
    path = Path(path)
    if not path.exists():
        raise InputError(f"product {path} does not exist; create it with `eocompress compress`")
    kind = product_kind(path)
    if kind == "zarr":
        from eocompress.embeddings.products.zarr_product import ZarrProduct

        return ZarrProduct(path)
    if kind == "cog":
        from eocompress.embeddings.products.cog_product import CogProduct

        return CogProduct(path)
    from eocompress.embeddings.products.parquet_product import ParquetProduct

    return ParquetProduct(path)


def _decode_chunk_task(window: Any, product_path: str) -> tuple[np.ndarray, np.ndarray]:
    prod = open_product(product_path)
    return prod.decode_chunk(window)


def decompress(
    product: str | os.PathLike,
    out: str | os.PathLike,
    *,
    client: Any = None,
    overwrite: bool = False,
    progress: ProgressFn = None,
) -> Path:
    """Decode a product back to float32 in the original layout (GeoTIFF for grids, Parquet for chips)."""
    prod = open_product(product)
    out = check_output_path(out, overwrite=overwrite)
    if getattr(prod, "is_chips", False):
        return prod.decompress(out, overwrite=overwrite, progress=progress)
    if Path(out).suffix.lower() not in (".tif", ".tiff"):
        raise InputError(f"decompress writes a float32 GeoTIFF; name the output .tif (got {out})")
    n_valid = prod.n_valid
    info: GridInfo = prod.info
    nodata = info.nodata
    if nodata is None and n_valid < info.height * info.width:
        nodata = float("nan")
    chunks = map_chunks(
        _decode_chunk_task, prod.windows(), str(prod.path), client=client, progress=progress, ordered=True
    )
    return write_float_geotiff(out, info, chunks, nodata, overwrite=overwrite)


def write_float_geotiff(
    out: Path, info: GridInfo, chunks: Any, nodata: float | None, overwrite: bool = True
) -> Path:
    """Write decoded chunks ``(window, (values (h, w, D), valid (h, w)))`` into a float32 GeoTIFF."""
    import rasterio
    from rasterio.crs import CRS
    from rasterio.transform import Affine
    from rasterio.windows import Window as RWindow

    profile = {
        "driver": "GTiff",
        "dtype": "float32",
        "count": info.dim,
        "height": info.height,
        "width": info.width,
        "crs": CRS.from_wkt(info.crs_wkt) if info.crs_wkt else None,
        "transform": Affine(*info.transform),
        "nodata": nodata,
        "interleave": "pixel",
        "BIGTIFF": "IF_SAFER",
    }
    if info.height >= 256 and info.width >= 256:
        profile.update(tiled=True, blockxsize=256, blockysize=256)
    with atomic_path(out, overwrite=overwrite) as tmp:
        with rasterio.open(tmp, "w", **profile) as dst:
            for window, (values, valid) in chunks:
                fill = np.nan if nodata is None else nodata
                values = values.copy() if not valid.all() else values
                values[~valid] = fill
                dst.write(
                    np.moveaxis(values, -1, 0),
                    window=RWindow(window.c0, window.r0, window.c1 - window.c0, window.r1 - window.r0),
                )
            if info.band_names:
                for k, name in enumerate(info.band_names[: info.dim]):
                    dst.set_band_description(k + 1, name)
            if info.tags:
                dst.update_tags(**info.tags)
    return Path(out)


def field_of(path: str | os.PathLike, kind: str = "auto") -> Field:
    """Open an embedding field (re-exported for convenience)."""
    return open_field(path, kind=kind)


__all__ = ["EOCompressError", "compress", "decompress", "fit_codec", "open_product", "product_kind"]
