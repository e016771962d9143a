"""Python entry points behind the CLI: fit a codec on a field, compress, decompress, open a product.

``compress(IN, OUT, "int8")`` picks the product from OUT's name: ``.zarr`` (default for grids),
``.tif`` (int8 COG) or ``.parquet`` (chips, when IN is a Parquet table). Pass a
``distributed.Client`` to run chunk by chunk on Dask; without one, chunks run in this process.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import numpy as np

from eocompress._atomic import check_output_path, output_lock
from eocompress.embeddings.products.band_vrt import bands_dir
from eocompress.embeddings.products.base import (
    AnyProduct,
    is_chip_product,
    open_cached,
    product_class,
    product_kind,
)
from eocompress.embeddings.products.cog_product import compress_to_cog
from eocompress.embeddings.products.cog_write import write_cog
from eocompress.embeddings.products.conventions import provenance
from eocompress.embeddings.products.fields import Field, GridInfo, Window, iter_windows, open_field, sample_pixels
from eocompress.embeddings.products.fitting import fit_codec, load_training_vectors
from eocompress.embeddings.products.integrity import MAX_ABS, check_magnitude
from eocompress.embeddings.products.parquet_product import compress_parquet
from eocompress.embeddings.products.ranges import ATTR as RANGE_ATTR
from eocompress.embeddings.products.ranges import fit_ranges
from eocompress.embeddings.products.scale import map_chunks
from eocompress.embeddings.products.stac import stac_path, write_stac_item
from eocompress.embeddings.products.zarr_product import (
    _open_group,
    compress_to_zarr,
    load_codec,
    partial_path,
    store_exists,
)
from eocompress.errors import EOCompressError, InputError

if TYPE_CHECKING:
    from distributed import Client

ProgressFn = Callable[[int], None] | None


def _one_writer(fn: Callable[..., Path]) -> Callable[..., Path]:
    """Run ``fn(src, out, ...)`` holding the exclusive lock on ``out``: one writer per output, always."""

    @functools.wraps(fn)
    def locked(*args: Any, **kwargs: Any) -> Path:
        with output_lock(kwargs["out"] if "out" in kwargs else args[1]):
            return fn(*args, **kwargs)

    return locked


@_one_writer
def compress(
    src: str | os.PathLike,
    out: str | os.PathLike,
    spec: str = "int8",
    *,
    fit_sample: int = 20000,
    fit: str | os.PathLike | None = None,
    chunk: int = 512,
    seed: int = 0,
    client: Client | None = None,
    resume: bool = False,
    overwrite: bool = False,
    rescore_spec: str | None = None,
    input_kind: str = "auto",
    progress: ProgressFn = None,
    stac: bool = True,
    field_kwargs: dict | None = None,
    model: str | None = None,
    source_data: list[str] | None = None,
    datetime: str | None = None,
    crc32c: bool = True,
    clip_report: Callable[[dict[str, Any]], None] | None = None,
    zarr_format: int = 3,
) -> Path:
    """Compress an embedding field (GeoTIFF/COG/Zarr/AEF/Tessera) or a chip table (Parquet) into ``out``.

    ``model``, ``source_data`` (URIs) and ``datetime`` (acquisition, ISO 8601) go into the product's
    geo-embeddings attributes and STAC item; by default they are read from the input's tags.
    Scalar ranges fitted on the sample are widened to the whole input (one min/max pass); the values
    still clipped (a ``--fit`` codec's range) are counted, stored (Zarr) and passed to ``clip_report``.
    ``zarr_format=2`` writes a Zarr v2 product that GDAL 3.4+ (QGIS, rasterio wheels) opens.
    """
    src, out = Path(src), Path(out)
    check_settings(chunk=chunk, fit_sample=fit_sample)
    check_output_path(out, overwrite=overwrite)
    _check_stac_path(out, stac, overwrite)
    if src.suffix.lower() in (".parquet", ".geoparquet", ".pq"):
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
            provenance={"model": model, "source_data": source_data, "datetime": datetime},
        )
    kind = product_kind(out)
    if kind == "parquet":
        raise InputError(f"{out}: Parquet products are for chip tables; give a .parquet input or write .zarr/.tif")
    if resume and kind != "zarr":
        raise InputError(f"--resume continues Zarr products only; {out} is a {kind} product - drop --resume")
    check_output_path(out, overwrite=overwrite)
    fld = open_field(src, kind=input_kind, **(field_kwargs or {}))
    check_chunk_memory(chunk, fld.info.dim)
    prov = provenance(
        fld.info,
        model=model,
        source_data=source_data,
        datetime=datetime,
        fallback_source=f"urn:eocompress:file:{src.name}",
    )
    sample_cache: list[np.ndarray] = []

    def sample() -> np.ndarray:
        # Read the seeded fit sample at most once, though the codec and the rescore codec may both need it.
        if not sample_cache:
            X = sample_pixels(fld, fit_sample, chunk, seed=seed)
            try:
                check_magnitude(X, f"the fit sample of {fld.describe()}")
            except InputError:
                _locate_extreme(fld, chunk)  # name the count and position in the field itself
                raise
            sample_cache.append(X)
        return sample_cache[0]

    codec = None
    if resume and kind == "zarr":
        codec = _resume_codec(out)
    resumed = codec is not None
    if resume and kind == "zarr":
        if codec is not None and (fit is None or Path(fit).suffix != ".json") and _canonical(spec) != codec.spec:
            raise EOCompressError(
                f"the unfinished product {partial_path(out)} was started with --codec {codec.spec}, not {spec}; "
                f"resume with --codec {codec.spec}, or drop --resume to start fresh (deletes the unfinished store)"
            )
        if fit is not None:
            codec = None  # built from --fit below; compress_to_zarr refuses it unless it is the partial's codec
    if codec is None:
        codec = fit_codec(spec, fld.info.dim, sample, fit, seed=seed, what=fld.describe())
    rescore = None
    if rescore_spec:
        if kind != "zarr":
            raise InputError("--rescore-codec is stored only in Zarr products; write OUT as .zarr")
        rescore = _resume_codec(out, key="eocompress:rescore_codec") if resume else None
        if rescore is not None and _canonical(rescore_spec) != rescore.spec:
            raise EOCompressError(
                f"the unfinished product {partial_path(out)} was started with --rescore-codec {rescore.spec}, not "
                f"{rescore_spec}; resume with --rescore-codec {rescore.spec}, or drop --resume to start fresh"
            )
        if rescore is None:
            rescore = fit_codec(rescore_spec, fld.info.dim, sample, None, seed=seed, what=fld.describe())
    clipping = None
    if not resumed:  # scalar ranges over the whole input (a resumed product keeps its codec and record)
        sampled = fit is None
        both = [codec] + ([rescore] if rescore is not None else [])
        records = fit_ranges(fld, both, [sampled, True][: len(both)], chunk, client)
        clipping = {"codes": records[0], **({"rescore_codes": records[1]} if len(records) > 1 else {})}
        if clip_report is not None:
            clip_report(clipping)
    if kind == "zarr":
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
            provenance=prov,
            crc32c=crc32c,
            zarr_format=zarr_format,
            extra_attrs={RANGE_ATTR: clipping} if clipping else None,
        )
    else:
        result = compress_to_cog(
            fld, out, codec, chunk=chunk, client=client, overwrite=overwrite, progress=progress, provenance=prov
        )
    if stac:
        write_stac_item(open_product(result), overwrite=overwrite)
    return result


def _check_stac_path(out: Path, stac: bool, overwrite: bool) -> None:
    """Refuse up front when the STAC item beside ``out`` exists and may not be replaced."""
    if not stac:
        return
    item = stac_path(out)
    if (item.exists() or item.is_symlink()) and not overwrite:
        raise InputError(f"{item} already exists; pass --overwrite to replace it (with {out.name}) or write elsewhere")
    vrts = bands_dir(out)  # a COG item's per-band VRTs
    if product_kind(out) == "cog" and (vrts.exists() or vrts.is_symlink()) and not overwrite:
        raise InputError(f"{vrts} already exists; pass --overwrite to replace it (with {out.name}) or write elsewhere")


def _locate_extreme(fld: Field, chunk: int) -> None:
    """Raise with the number and first (row, col, band) of too-large values in the whole field."""
    total, first = 0, None
    for w in iter_windows(fld.info.height, fld.info.width, chunk):
        values, _ = fld.read(w)
        big = (np.abs(values) > MAX_ABS) & np.isfinite(values)
        if big.any():
            total += int(big.sum())
            if first is None:
                r, c, b = np.argwhere(big)[0]
                first = (int(r) + w.r0, int(c) + w.c0, int(b), float(values[r, c, b]))
    if first is not None:
        r, c, b, v = first
        raise InputError(
            f"{fld.describe()}: {total} values exceed ±{MAX_ABS:g} (first at row {r}, col {c}, band {b}: {v:g}); "
            "quantizing them would overflow float32. Mark them as nodata or rescale the embeddings before compressing"
        )


def _resume_codec(out: Path, key: str = "eocompress:codec") -> Any:
    """The codec stored in an unfinished Zarr product (None when there is none to resume)."""
    part = partial_path(out)
    store = part / "store.zarr"
    if not store_exists(store):
        return None
    fresh = f"drop --resume to start fresh (this deletes the unfinished {part})"
    try:
        return load_codec(_open_group(store), key)
    except (EOCompressError, ValueError, UnicodeDecodeError, KeyError, TypeError) as exc:
        raise EOCompressError(f"the unfinished product {part} has damaged metadata ({exc}); {fresh}") from exc


def _canonical(spec: str) -> str:
    from eocompress.embeddings.codecs import canonical_spec  # not at module level: loads scikit-learn

    return canonical_spec(spec)


#: Largest chunk edge accepted (pixels) and largest float32 chunk held in memory (bytes).
MAX_CHUNK = 8192
MAX_CHUNK_BYTES = 4 << 30


def check_settings(chunk: int = 512, fit_sample: int = 20000) -> None:
    """Refuse impossible settings with one line naming the fix (before any work starts)."""
    if not isinstance(chunk, int) or chunk < 1 or chunk > MAX_CHUNK:
        raise InputError(f"--chunk must be between 1 and {MAX_CHUNK} pixels, got {chunk}; try --chunk 512")
    if not isinstance(fit_sample, int) or fit_sample < 1:
        raise InputError(f"--fit-sample must be a positive number of pixels, got {fit_sample}; try --fit-sample 20000")


def check_chunk_memory(chunk: int, dim: int) -> None:
    """Refuse a chunk whose float32 values would not fit comfortably in memory."""
    need = chunk * chunk * dim * 4
    if need > MAX_CHUNK_BYTES:
        fit = int((MAX_CHUNK_BYTES / (4 * dim)) ** 0.5)
        raise InputError(
            f"--chunk {chunk} holds {need / 2**30:.1f} GiB of float32 per chunk for {dim}-d embeddings; "
            f"use --chunk {fit} or less"
        )


def open_product(path: str | os.PathLike, verify: bool = True) -> AnyProduct:
    """Open a finished product (ZarrProduct, CogProduct or ParquetProduct) for reading.

    ``verify=False`` (``--no-verify``) skips the metadata digest and every chunk checksum: for salvaging
    what a damaged product still holds, never for normal reads.
    """
    path = Path(path)
    if not path.exists():
        raise InputError(f"product {path} does not exist; create it with `eocompress compress`")
    prod = product_class(product_kind(path)).open(path, verify=verify)
    return cast("AnyProduct", prod)  # each kind implements GridProduct or ChipProduct (mypy checks, in its module)


def open_product_cached(path: str | os.PathLike, verify: bool = True) -> AnyProduct:
    """``open_product`` once per process and product version (re-opened when the file or store is replaced)."""
    return open_cached(product_class(product_kind(path)), path, verify)


def _decode_chunk_task(window: Window, product_path: str, verify: bool = True) -> tuple[np.ndarray, np.ndarray]:
    prod = open_product_cached(product_path, verify)
    if is_chip_product(prod):
        raise InputError(f"{product_path} is a chip table; only gridded products decode by window")
    return prod.decode_chunk(window)


@_one_writer
def decompress(
    product: str | os.PathLike,
    out: str | os.PathLike,
    *,
    client: Client | None = None,
    overwrite: bool = False,
    progress: ProgressFn = None,
    verify: bool = True,
) -> Path:
    """Decode a product back to float32 in the original layout (a COG for grids, Parquet for chips)."""
    prod = open_product(product, verify=verify)
    out = check_output_path(out, overwrite=overwrite)
    if is_chip_product(prod):
        if not verify:
            raise InputError("--no-verify applies to Zarr and COG products; a Parquet product is always verified")
        return prod.decompress(out, overwrite=overwrite, progress=progress)
    if Path(out).suffix.lower() not in (".tif", ".tiff"):
        raise InputError(f"decompress writes a float32 Cloud-Optimized GeoTIFF; name the output .tif (got {out})")
    n_valid = prod.n_valid
    info: GridInfo = prod.info
    nodata = info.nodata
    if nodata is None and n_valid < info.height * info.width:
        nodata = float("nan")
    chunks = map_chunks(
        _decode_chunk_task, prod.windows(), str(prod.path), verify, client=client, progress=progress, ordered=True
    )
    return write_float_geotiff(out, info, chunks, nodata, overwrite=overwrite)


def write_float_geotiff(
    out: Path,
    info: GridInfo,
    chunks: Iterable[tuple[Window, tuple[np.ndarray, np.ndarray]]],
    nodata: float | None,
    overwrite: bool = True,
) -> Path:
    """Write decoded chunks ``(window, (values (h, w, D), valid (h, w)))`` into a float32 COG.

    The chunks go into a tiled work GeoTIFF, GDAL's COG driver copies it with DEFLATE and overviews,
    and every chunk is read back and compared with what was written before the file is renamed into place.
    """
    def blocks() -> Any:
        for window, (values, valid) in chunks:
            fill = np.nan if nodata is None else nodata
            values = values.copy() if not valid.all() else values
            values[~valid] = fill
            yield window, np.ascontiguousarray(np.moveaxis(values, -1, 0))

    names = list(info.band_names[: info.dim])
    return write_cog(
        out,
        info,
        blocks(),
        dtype="float32",
        count=info.dim,
        nodata=nodata,
        band_names=names,
        tags=dict(info.tags),
        overwrite=overwrite,
        resampling="average",
        predictor=3,
    )


__all__ = [
    "EOCompressError",
    "compress",
    "decompress",
    "fit_codec",
    "load_training_vectors",
    "open_product",
    "product_kind",
]
