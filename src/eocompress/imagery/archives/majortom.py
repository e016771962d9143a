"""Major-TOM Core S2 shards in and out of a token archive (GeoParquet, one row per grid cell).

A Major-TOM Core shard is a Parquet file, one row per row group (the metadata table's ``parquet_row`` is
the row-group index), with the columns of :data:`SHARD_COLUMNS`: the keys ``product_id, grid_cell,
product_datetime``, a ``thumbnail`` (PNG/JPEG bytes), every band as the bytes of a single-band uint16
GeoTIFF at native resolution (10 m 1068², 20 m 534², 60 m 178²) and ``cloud_mask`` (uint8 GeoTIFF, 10 m).
A separate metadata table (:data:`METADATA_COLUMNS`) adds ``timestamp, cloud_cover, nodata, centre_lat,
centre_lon, crs, geometry`` and where each row lives (``parquet_url, parquet_row``).

Shards are read row by row (``iter_batches(batch_size=1)``: memory bounded by one cell); each row's band
bytes go through the same band-folder reader as a Major-TOM cell on disk (20/60 m bands resampled
bilinearly to the 10 m grid, offset detected from the product name). :func:`encode_shards` runs one task
per row group across shards and Dask workers (or in this process) and writes ONE archive. A row that
cannot be read or encoded is reported in one line and skipped; the others are written. The token archive
is GeoParquet 1.1: one row per cell with the token bytes, the cloud mask (lossless,
:mod:`~eocompress.imagery.archives.cloud_mask`), the keys, the source shard and row, the native CRS and
bounds, and the footprint polygon (WKB, lon/lat) in ``geometry``; it is written under a temporary name
and renamed into place.
"""

from __future__ import annotations

import io
import json
import re
import tempfile
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from affine import Affine
from rasterio.crs import CRS

from eocompress._atomic import atomic_path, check_output_path
from eocompress._dask import execution, map_chunks
from eocompress.errors import EOCompressError, FileFormatError, InputError
from eocompress.imagery.archives.cloud_mask import mask_on_grid, pack_mask, unpack_mask
from eocompress.imagery.readers.bands import RESOLUTION_M, S2_L2A_BANDS
from eocompress.imagery.readers.scenes import QUANTIFICATION_VALUE, Scene, read_scene

#: Band columns of a Major-TOM Core-S2L2A shard (12 L2A bands, no B10).
SHARD_BANDS: tuple[str, ...] = S2_L2A_BANDS
#: Keys that name a cell's image in Major-TOM.
KEYS: tuple[str, ...] = ("product_id", "grid_cell", "product_datetime")
#: Columns of a Major-TOM Core-S2L2A shard.
SHARD_COLUMNS: tuple[str, ...] = (*KEYS, "thumbnail", *SHARD_BANDS, "cloud_mask")
#: Columns of the Major-TOM metadata table.
METADATA_COLUMNS: tuple[str, ...] = (
    "grid_cell", "grid_row_u", "grid_col_r", "product_id", "timestamp", "cloud_cover", "nodata",
    "centre_lat", "centre_lon", "crs", "parquet_url", "parquet_row", "geometry",
)
#: Metadata columns copied into the token archive when a metadata table is joined.
JOINED: tuple[str, ...] = ("timestamp", "cloud_cover", "nodata", "centre_lat", "centre_lon")
#: Bytes one cell costs in the archive besides its token file and cloud mask (Parquet column chunks and page
#: headers, keys, CRS, bounds, footprint, source shard and row): measured 2.86 kB a row in a 16-row archive,
#: 3.69 kB in a 1-row one (the footer's schema and metadata); ``--ratio`` holds for an archive of any length.
ROW_OVERHEAD = 3712
ARCHIVE_FORMAT = "eocompress-token-archive"
#: Per-cell GeoTIFF decode: the cloud mask beside ``<cell>_<product>.tif`` (uint8, same grid and georeference).
MASK_SUFFIX = ".cloud_mask.tif"
#: 2 adds ``cloud_mask``, ``shard`` and ``shard_row``; version-1 archives (no cloud mask) are still read.
ARCHIVE_VERSION = 2


# --------------------------------------------------------------------------- reading shards


@dataclass
class ShardRow:
    """One row of a shard: its index, keys, band GeoTIFF bytes, cloud mask and thumbnail bytes."""

    index: int
    keys: dict[str, str]
    bands: dict[str, bytes | None]
    cloud_mask: bytes | None = None
    thumbnail: bytes | None = None

    @property
    def name(self) -> str:
        """``row N (grid_cell product_id)`` for messages."""
        return f"row {self.index} ({self.keys.get('grid_cell') or '?'} {self.keys.get('product_id') or '?'})"


def _parquet(path: str | Path, what: str) -> Any:
    import pyarrow as pa
    import pyarrow.parquet as pq

    path = Path(path)
    if not path.is_file():
        raise FileFormatError(f"{path} is not a file; give a {what} (.parquet)")
    try:
        return pq.ParquetFile(path)
    except (pa.ArrowException, OSError) as exc:
        text = " ".join(str(exc).split())[:160]
        raise FileFormatError(f"{path} is not a readable Parquet file ({text}); give a complete {what}") from exc


def open_shard(path: str | Path) -> Any:
    """A ``pyarrow.parquet.ParquetFile`` of a Major-TOM Core S2 shard, its columns checked."""
    pf = _parquet(path, "Major-TOM Core S2 shard")
    names = set(pf.schema_arrow.names)
    missing = [c for c in ("product_id", "grid_cell", *SHARD_BANDS) if c not in names]
    if missing:
        raise FileFormatError(
            f"{path} is not a Major-TOM Core S2 shard: column(s) {', '.join(missing)} missing; a shard holds "
            f"{', '.join(SHARD_COLUMNS)}"
        )
    return pf


def iter_shard(path: str | Path) -> Iterator[ShardRow]:
    """Rows of a shard one at a time (one row's band bytes in memory at once)."""
    import pyarrow as pa

    pf = open_shard(path)
    names = pf.schema_arrow.names
    cols = [c for c in SHARD_COLUMNS if c in names]
    index = 0
    try:
        for batch in pf.iter_batches(batch_size=1, columns=cols):
            for rec in batch.to_pylist():
                keys = {k: ("" if rec.get(k) is None else str(rec[k])) for k in KEYS}
                yield ShardRow(index, keys, {b: rec.get(b) for b in SHARD_BANDS}, rec.get("cloud_mask"),
                               rec.get("thumbnail"))
                index += 1
    except (pa.ArrowException, OSError) as exc:
        text = " ".join(str(exc).split())[:160]
        raise FileFormatError(
            f"{path}: the Parquet data after row {index - 1} cannot be read ({text}); the shard is truncated "
            "or damaged: re-download it"
        ) from exc


def _safe_name(text: str, default: str) -> str:
    name = re.sub(r"[^A-Za-z0-9_.-]", "_", text).strip("._")[:180]
    return name or default


def row_scene(row: ShardRow, workdir: str | Path, offset: int | None = None) -> Scene:
    """The row as a :class:`Scene` on the 10 m grid, read by the band-folder reader (one line per bad band).

    ``offset``: the DN offset when the product name does not tell it (as ``read_scene``'s).
    """
    folder = Path(workdir) / _safe_name(row.keys.get("product_id", ""), "cell")
    folder.mkdir(parents=True, exist_ok=True)
    for band, data in row.bands.items():
        if not data:
            raise FileFormatError(f"{row.name}: band {band} is empty; the shard row is incomplete")
        (folder / f"{band}.tif").write_bytes(data)
    if row.cloud_mask:
        (folder / "cloud_mask.tif").write_bytes(row.cloud_mask)
    try:
        scene = read_scene(folder, offset=offset)
    except EOCompressError as exc:
        text = str(exc).replace(f"{folder}/", "").replace(str(folder), "the row")
        text = text.replace("replace it with a complete copy or remove it", "re-download the shard")
        raise FileFormatError(f"{row.name}: {text}") from exc
    finally:
        for f in folder.iterdir():
            f.unlink()
        folder.rmdir()
    scene.meta.pop("source", None)
    scene.meta.pop("band_files", None)
    scene.meta.update({k: v for k, v in row.keys.items() if v})
    return scene


def read_metadata(path: str | Path) -> dict[tuple[str, str], dict[str, Any]]:
    """The Major-TOM metadata table as {(grid_cell, product_id): row} (only the columns we join)."""
    pf = _parquet(path, "Major-TOM metadata table")
    names = pf.schema_arrow.names
    if "grid_cell" not in names or "product_id" not in names:
        raise FileFormatError(
            f"{path} is not a Major-TOM metadata table: it needs grid_cell and product_id columns (has "
            f"{', '.join(names[:12])})"
        )
    cols = ["grid_cell", "product_id", *(c for c in JOINED if c in names)]
    table = pf.read(columns=cols).to_pylist()
    return {(str(r["grid_cell"]), str(r["product_id"])): r for r in table}


# --------------------------------------------------------------------------- token archive


def archive_schema(model_id: str, bands: list[str]) -> Any:
    """Arrow schema of a token archive, with GeoParquet ``geo`` and ``eocompress`` metadata."""
    import pyarrow as pa

    geo = {
        "version": "1.1.0",
        "primary_column": "geometry",
        # no "crs" key: GeoParquet's default, OGC:CRS84 (lon/lat); each cell's native CRS is in column crs
        "columns": {"geometry": {"encoding": "WKB", "geometry_types": ["Polygon"], "edges": "planar"}},
    }
    own = {"format": ARCHIVE_FORMAT, "version": ARCHIVE_VERSION, "codec": "learned (EOT2)", "model_id": model_id,
           "bands": bands, "quantification_value": QUANTIFICATION_VALUE}
    fields = [
        pa.field("product_id", pa.string()), pa.field("grid_cell", pa.string()),
        pa.field("product_datetime", pa.string()), pa.field("tokens", pa.binary()), pa.field("cloud_mask", pa.binary()),
        pa.field("crs", pa.string()), pa.field("bounds", pa.list_(pa.float64(), 4)),
        pa.field("height", pa.int32()), pa.field("width", pa.int32()), pa.field("offset", pa.int32()),
        pa.field("timestamp", pa.string()), pa.field("cloud_cover", pa.float64()), pa.field("nodata", pa.float64()),
        pa.field("centre_lat", pa.float64()), pa.field("centre_lon", pa.float64()),
        pa.field("shard", pa.string()), pa.field("shard_row", pa.int64()), pa.field("geometry", pa.binary()),
    ]
    return pa.schema(fields, metadata={b"geo": json.dumps(geo).encode(), b"eocompress": json.dumps(own).encode()})


def _footprint(scene: Scene) -> tuple[str | None, list[float] | None, bytes | None]:
    """(CRS string, native bounds, footprint polygon in lon/lat as WKB) of a georeferenced scene."""
    if scene.crs is None or scene.transform is None:
        return None, None, None
    from rasterio.transform import array_bounds
    from rasterio.warp import transform_geom
    from shapely.geometry import box, mapping, shape

    h, w = scene.shape
    west, south, east, north = array_bounds(h, w, scene.transform)
    bounds = [float(west), float(south), float(east), float(north)]
    epsg = scene.crs.to_epsg()
    crs = f"EPSG:{epsg}" if epsg else scene.crs.to_wkt()
    # the corners: a 10 km UTM square's edges stay within centimetres of straight lines in lon/lat
    geom = shape(transform_geom(scene.crs, "EPSG:4326", mapping(box(*bounds))))
    return crs, bounds, geom.wkb


@dataclass
class ArchiveReport:
    """What a run gave: rows seen, written, failed (one line each), bytes of tokens, cloud masks and raw uint16."""

    rows: int = 0
    written: int = 0
    failed: list[str] = field(default_factory=list)
    token_bytes: int = 0
    raw_bytes: int = 0
    masks: int = 0
    mask_bytes: int = 0
    #: "in this process" or "N Dask workers" / "scheduler ADDRESS" (encode only)
    ran_on: str = "in this process"


@dataclass(frozen=True)
class RowGroupTask:
    """One row group of one shard (one row in Major-TOM's layout): what a worker reads and encodes."""

    shard: str
    group: int
    first_row: int
    rows: int
    label: str = ""


def plan_shards(shards: list[str | Path]) -> list[RowGroupTask]:
    """The row groups of every shard, each shard's footer and columns checked first (one line if one is not a shard)."""
    if not shards:
        raise InputError("no shard given; pass one or more Major-TOM shards (.parquet) or a folder of them")
    names = [Path(s).name for s in shards]
    dup = {n for n in names if names.count(n) > 1}
    tasks: list[RowGroupTask] = []
    for shard in shards:
        pf = open_shard(shard)
        label = "" if len(shards) == 1 else (f"{shard} " if Path(shard).name in dup else f"{Path(shard).name} ")
        first = 0
        for g in range(pf.num_row_groups):
            n = pf.metadata.row_group(g).num_rows
            tasks.append(RowGroupTask(str(shard), g, first, n, label))
            first += n
    return tasks


def _codec_spec(codec: Any) -> tuple[str, str, str]:
    """(model folder or "default", device, model id) from which a Dask worker loads the same codec."""
    from eocompress.imagery.codec.learned import default_model_dir

    path = getattr(codec, "path", None)
    model = "default" if path is None or Path(path) == default_model_dir() else str(path)
    return model, str(codec.device), codec.model_id.hex()


def _worker_codec(codec: Any) -> Any:
    """The codec itself in this process; on a worker, the one loaded once per process from its spec (id checked)."""
    if not isinstance(codec, tuple):
        return codec
    from eocompress.imagery.codec.learned_folder import load_codec

    model, device, model_id = codec
    loaded = load_codec(model, device)
    if loaded.model_id.hex() != model_id:
        raise EOCompressError(
            f"the Dask worker's model {model!r} is {loaded.model_id.hex()}, not {model_id}; install the same "
            "eocompress and model on every worker"
        )
    return loaded


def encode_row_group(task: RowGroupTask, codec: Any, ratio: float | None, quality: int | None,
                     offset: int | None) -> list[dict[str, Any]]:
    """Encode one row group of a shard, row by row (runs on a Dask worker); a bad row becomes an error line.

    Returns one dict per row: ``name``, ``rec`` (the archive row without the joined metadata, or None)
    and ``error`` (one line, or None).
    """
    import pyarrow as pa
    import pyarrow.parquet as pq

    codec = _worker_codec(codec)
    out: list[dict[str, Any]] = []
    index = task.first_row
    with tempfile.TemporaryDirectory(prefix="eotok-row-") as work:
        try:
            pf = pq.ParquetFile(task.shard)
            cols = [c for c in SHARD_COLUMNS if c in pf.schema_arrow.names]
            for batch in pf.iter_batches(batch_size=1, row_groups=[task.group], columns=cols):
                for rec in batch.to_pylist():
                    keys = {k: ("" if rec.get(k) is None else str(rec[k])) for k in KEYS}
                    row = ShardRow(index, keys, {b: rec.get(b) for b in SHARD_BANDS}, rec.get("cloud_mask"))
                    name = f"{task.label}{row.name}"
                    try:
                        out.append({"name": name, "rec": _encode_row(row, work, codec, ratio, quality, offset),
                                    "error": None})
                    except EOCompressError as exc:
                        line = " ".join(str(exc).split())
                        out.append({"name": name, "rec": None,
                                    "error": f"{task.label}{line}" if line.startswith("row ") else f"{name}: {line}"})
                    except Exception as exc:  # one bad row never stops the shard: report it and go on
                        text = " ".join(str(exc).split())[:200]
                        error = f"{name}: unexpected {type(exc).__name__}: {text}"
                        out.append({"name": name, "rec": None, "error": error})
                    index += 1
        except (pa.ArrowException, OSError) as exc:
            text = " ".join(str(exc).split())[:160]
            last = task.first_row + task.rows - 1
            rows = f"row {index}" if index == last else f"rows {index}-{last}"
            out.append({"name": f"{task.label}{rows}", "rec": None, "rows": last - index + 1,
                        "error": f"{task.label}{rows}: the Parquet data cannot be read ({text}); the shard is "
                                 "truncated or damaged: re-download it"})
    return out


def _encode_row(row: ShardRow, work: str, codec: Any, ratio: float | None, quality: int | None,
                offset: int | None) -> dict[str, Any]:
    """The archive record of one shard row: tokens, packed cloud mask, keys, CRS, bounds, footprint."""
    scene = row_scene(row, work, offset)
    h, w = scene.shape
    mask = None
    if row.cloud_mask:
        mask = pack_mask(mask_on_grid(row.cloud_mask, h, w, scene.crs, scene.transform, row.name))
    blob = codec.encode_scene(scene, ratio=_cell_ratio(scene, codec, ratio, len(mask or b"")), quality=quality)
    crs, bounds, wkb = _footprint(scene)
    return {**row.keys, "tokens": blob, "cloud_mask": mask, "crs": crs, "bounds": bounds, "height": h, "width": w,
            "offset": int(scene.offset), "geometry": wkb, "shard_row": row.index,
            "raw_bytes": len(codec.bands) * h * w * 2}


def encode_shards(
    shards: Sequence[str | Path],
    archive: str | Path,
    codec: Any,
    *,
    ratio: float | None = None,
    quality: int | None = None,
    metadata: str | Path | None = None,
    overwrite: bool = False,
    offset: int | None = None,
    workers: int | None = 0,
    scheduler: str | None = None,
    on_row: Callable[[str, str | None], None] | None = None,
    note: Callable[[str], None] | None = None,
) -> ArchiveReport:
    """Encode every row of one or more Major-TOM shards into ONE token archive, on Dask across shards and workers.

    Each task is one row group (one row in Major-TOM's layout): the worker reads it from the shard
    itself (paths travel, never arrays), so a worker holds one cell at a time. Results come back in
    shard and row order and are written by this process alone, under a temporary name renamed into
    place at the end. ``workers``: 0 runs in this process, ``None`` decides as the embedding products do
    (in this process below :data:`~eocompress._dask.SMALL_WORK_BYTES` of float32
    cells), N starts a local cluster of N (capped at the CPUs and the row groups); ``scheduler`` uses an
    existing Dask scheduler (its workers need the same eocompress and model). ``codec``: a
    :class:`~eocompress.imagery.codec.learned.LearnedCodec` (workers load the same model folder once
    per process). ``ratio`` holds for the archive, cloud masks included: each cell's token file gets raw
    uint16 / ``ratio`` minus :data:`ROW_OVERHEAD` minus its packed mask. ``metadata``: a Major-TOM
    metadata table joined on ``(grid_cell, product_id)``. ``on_row(name, error)`` is called after each row
    (error None when written). A bad row is reported and skipped; nothing is written when no row could be.
    """
    import pyarrow as pa
    import pyarrow.parquet as pq

    if (ratio is None) == (quality is None):
        raise InputError("give exactly one of ratio= or quality=")
    final = check_output_path(archive, overwrite=overwrite)
    sources = {Path(s).resolve() for s in shards}
    if Path(final).resolve() in sources:
        raise InputError(f"{archive} is one of the input shards; write the archive to another path")
    meta_rows = read_metadata(metadata) if metadata is not None else {}
    tasks = plan_shards(list(shards))  # every shard checked before anything is created
    n_rows = sum(t.rows for t in tasks)
    schema = archive_schema(codec.model_id.hex(), list(codec.bands))
    report = ArchiveReport()
    cell_float32 = len(codec.bands) * 1068 * 1068 * 4  # a Major-TOM cell as float32, for the in-process rule
    with execution(workers, scheduler, work_bytes=n_rows * cell_float32, n_tasks=len(tasks), note=note) as client:
        if client is None:
            spec: Any = codec
        else:
            spec = _codec_spec(codec)
            n = len(client.scheduler_info(n_workers=-1).get("workers", {}))
            report.ran_on = f"scheduler {scheduler} ({n} workers)" if scheduler else f"{n} Dask workers"
        with atomic_path(final, overwrite=overwrite) as tmp:
            # min/max statistics only on the keys (filters by cell), none on the token and geometry bytes (they
            # would copy them into the footer); no ARROW:schema copy (geo and eocompress metadata stay): ~2 kB less
            writer = pq.ParquetWriter(str(tmp), schema, compression="zstd",
                                      write_statistics=["product_id", "grid_cell"], store_schema=False)
            try:
                results = map_chunks(encode_row_group, tasks, spec, ratio, quality, offset, client=client,
                                     ordered=True)
                for task, rows in results:
                    for res in rows:
                        report.rows += res.get("rows", 1)
                        if res["error"]:
                            report.failed.append(res["error"])
                            if on_row:
                                on_row(res["name"], res["error"])
                            continue
                        rec = res["rec"]
                        joined = meta_rows.get((rec["grid_cell"], rec["product_id"]), {})
                        rec.update({k: (None if joined.get(k) is None else joined[k]) for k in JOINED})
                        if rec["timestamp"] is not None:
                            rec["timestamp"] = str(rec["timestamp"])
                        rec["shard"] = Path(task.shard).name
                        report.raw_bytes += rec.pop("raw_bytes")
                        writer.write_table(pa.Table.from_pylist([rec], schema=schema))
                        report.written += 1
                        report.token_bytes += len(rec["tokens"])
                        if rec["cloud_mask"] is not None:
                            report.masks += 1
                            report.mask_bytes += len(rec["cloud_mask"])
                        if on_row:
                            on_row(res["name"], None)
            finally:
                writer.add_key_value_metadata(schema.metadata)  # without store_schema they are not written otherwise
                writer.close()
            if report.written == 0:
                why = "; ".join(report.failed[:3]) or "the shards have no rows"
                where = shards[0] if len(shards) == 1 else f"{len(shards)} shards"
                raise EOCompressError(f"{where}: no row could be encoded ({why}); nothing was written")
    return report


def encode_shard(shard: str | Path, archive: str | Path, codec: Any, **kw: Any) -> ArchiveReport:
    """Encode one shard in this process (:func:`encode_shards` with one shard; same keywords)."""
    kw.setdefault("workers", 0)
    return encode_shards([shard], archive, codec, **kw)


def _cell_ratio(scene: Scene, codec: Any, ratio: float | None, extra: int = 0) -> float | None:
    """The token file's ratio leaving room for the cell's Parquet overhead and mask: the archive meets ``ratio``."""
    if ratio is None:
        return None
    raw = len(codec.bands) * scene.shape[0] * scene.shape[1] * 2
    budget = raw / ratio - ROW_OVERHEAD - extra
    if budget <= 0:
        raise InputError(
            f"{ratio:g}x cannot be reached for a {scene.shape[0]}x{scene.shape[1]} cell in an archive (each cell "
            f"costs ~{ROW_OVERHEAD + extra} B of Parquet and cloud mask besides its tokens); ask for a ratio <= "
            f"{raw / (2 * (ROW_OVERHEAD + extra)):.0f}"
        )
    return raw / budget


def open_archive(path: str | Path) -> tuple[Any, dict[str, Any]]:
    """The ParquetFile of a token archive and its ``eocompress`` metadata (format checked)."""
    pf = _parquet(path, "token archive written by `eocompress imagery encode SHARD.parquet`")
    raw = (pf.schema_arrow.metadata or {}).get(b"eocompress")
    try:
        own = json.loads(raw) if raw else {}
    except (json.JSONDecodeError, UnicodeDecodeError):
        own = {}
    if own.get("format") != ARCHIVE_FORMAT:
        raise FileFormatError(
            f"{path} is not an eocompress token archive (no '{ARCHIVE_FORMAT}' metadata); give an archive written "
            "by `eocompress imagery encode SHARD.parquet -o ARCHIVE.parquet`"
        )
    if int(own.get("version", 0)) > ARCHIVE_VERSION:
        raise FileFormatError(f"{path} is token archive version {own['version']}; upgrade eocompress to read it")
    return pf, own


def iter_archive(path: str | Path, columns: list[str] | None = None) -> Iterator[dict[str, Any]]:
    """Rows of a token archive one at a time, as dicts."""
    pf, _ = open_archive(path)
    for batch in pf.iter_batches(batch_size=1, columns=columns):
        yield from batch.to_pylist()


def _check_model(own: dict[str, Any], codec: Any, path: str | Path) -> None:
    made_by = own.get("model_id")
    if made_by and codec.for_model(bytes.fromhex(made_by)).model_id.hex() != made_by:
        raise FileFormatError(
            f"{path} was made by model {own['model_id']}, not this one ({codec.model_id.hex()}); decode it with "
            "--model pointing at the model that made it"
        )


def decode_row(codec: Any, rec: dict[str, Any], source: str) -> tuple[np.ndarray, dict[str, Any]]:
    """Decoded uint16 (C, H, W) and a GeoTIFF header for one archive row; ``header["offset"]`` is the DN offset in it.

    The offset present in the decoded values is the token file's own (files that keep the input's DN
    convention say it in their header; older files decode without it: 0).
    """
    blob = rec["tokens"]
    codec = codec.for_file(blob)  # an archive of an earlier release: the packaged model that made it
    data = codec.decode(blob, source=source)
    head, _ = codec.read_header(blob, source)
    crs = f"EPSG:{head.epsg}" if head.epsg else head.wkt
    header = {"crs": crs, "transform": head.transform, "bands": list(codec.bands),
              "offset": int(getattr(head, "offset", 0) or 0), "model_id": codec.model_id.hex(),
              "grid_cell": rec.get("grid_cell"), "product_id": rec.get("product_id"),
              "timestamp": rec.get("product_datetime") or rec.get("timestamp")}
    return data, header


def row_cloud_mask(rec: dict[str, Any], source: str) -> np.ndarray | None:
    """The cell's cloud mask, uint8 (H, W) on its 10 m grid, exactly as the shard had it; None when none was kept."""
    blob = rec.get("cloud_mask")
    if not blob:
        return None
    mask = unpack_mask(blob, source)
    h, w = rec.get("height"), rec.get("width")
    if h is not None and w is not None and mask.shape != (h, w):
        raise FileFormatError(f"{source}: the cloud mask is {mask.shape[0]}x{mask.shape[1]}, the cell {h}x{w}; "
                              "re-encode the shard")
    return mask


def decode_archive(
    archive: str | Path,
    out: str | Path,
    codec: Any,
    *,
    overwrite: bool = False,
    on_row: Callable[[str, str | None], None] | None = None,
) -> ArchiveReport:
    """Decode a token archive to per-cell GeoTIFFs in folder ``out``, or to a shard when ``out`` ends in .parquet."""
    out = Path(out)
    _, own = open_archive(archive)
    _check_model(own, codec, archive)
    if out.suffix == ".parquet":
        return _decode_to_shard(archive, out, codec, overwrite, on_row)
    from eocompress.imagery.codec.pipeline import write_geotiff

    if out.exists() and not out.is_dir():
        raise EOCompressError(f"{out} is a file; give a folder for per-cell GeoTIFFs or a .parquet path for a shard")
    report = ArchiveReport()
    planned: list[Path] = []
    sidecars: list[Path] = []
    pf, _ = open_archive(archive)
    has_mask = "cloud_mask" in pf.schema_arrow.names
    for rec in iter_archive(archive, columns=["product_id", "grid_cell"]):
        name = f"{_safe_name(rec['grid_cell'] or '', 'cell')}_{_safe_name(rec['product_id'] or '', 'product')}"
        planned.append(out / f"{name}.tif")
        sidecars.append(out / f"{name}{MASK_SUFFIX}")
    existing = [p for p in (*planned, *(sidecars if has_mask else [])) if p.exists()]
    if existing and not overwrite:
        raise EOCompressError(f"{existing[0]} already exists ({len(existing)} of the outputs do); pass --overwrite")
    out.mkdir(parents=True, exist_ok=True)
    for index, (rec, target, sidecar) in enumerate(zip(iter_archive(archive), planned, sidecars, strict=True)):
        report.rows += 1
        name = f"row {index} ({rec.get('grid_cell')} {rec.get('product_id')})"
        try:
            data, header = decode_row(codec, rec, f"{archive} {name}")
            mask = row_cloud_mask(rec, f"{archive} {name}")
            write_geotiff(target, data, header, overwrite=overwrite)
            if mask is not None:
                crs = CRS.from_user_input(header["crs"]) if header["crs"] else None
                transform = Affine(*header["transform"]) if header["transform"] else None
                with atomic_path(sidecar, overwrite=overwrite) as tmp:
                    Path(tmp).write_bytes(_band_tiff(mask, crs, transform, "uint8"))
                report.masks += 1
        except EOCompressError as exc:
            report.failed.append(f"{name}: {' '.join(str(exc).split())}")
            if on_row:
                on_row(name, report.failed[-1])
            continue
        report.written += 1
        report.token_bytes += len(rec["tokens"])
        if on_row:
            on_row(name, None)
    return report


def _band_tiff(plane: np.ndarray, crs: Any, transform: Any, dtype: str = "uint16") -> bytes:
    """Bytes of a single-band GeoTIFF (DEFLATE), as a shard stores each band."""
    from rasterio.io import MemoryFile

    profile: dict[str, Any] = dict(driver="GTiff", width=plane.shape[1], height=plane.shape[0], count=1,
                                   dtype=dtype, compress="deflate")
    if crs is not None and transform is not None:
        profile.update(crs=crs, transform=transform)
    with MemoryFile() as mem:
        with mem.open(**profile) as dst:
            dst.write(plane.astype(dtype), 1)
        return mem.read()


def native_bands(data: np.ndarray, crs: Any, transform: Any, bands: list[str]) -> dict[str, bytes]:
    """Each band of a 10 m (C, H, W) uint16 stack as GeoTIFF bytes at its native resolution (area average)."""
    from rasterio.enums import Resampling
    from rasterio.warp import reproject

    h, w = data.shape[1:]
    src_t = transform if transform is not None else Affine.identity()
    src_crs = crs if crs is not None else "EPSG:3857"
    out: dict[str, bytes] = {}
    for i, band in enumerate(bands):
        f = RESOLUTION_M[band] // 10
        if f == 1:
            out[band] = _band_tiff(data[i], crs, transform)
            continue
        dst = np.zeros((-(-h // f), -(-w // f)), np.uint16)
        dst_t = src_t @ Affine.scale(f)
        reproject(source=data[i], destination=dst, src_transform=src_t, src_crs=src_crs, src_nodata=0,
                  dst_transform=dst_t, dst_crs=src_crs, dst_nodata=0, resampling=Resampling.average)
        out[band] = _band_tiff(dst, crs, dst_t if transform is not None else None)
    return out


def thumbnail_png(data: np.ndarray, bands: list[str], offset: int = 0) -> bytes:
    """An RGB (B04, B03, B02) PNG quicklook of a DN stack (reflectance 0 … 0.3 stretched to 0 … 255)."""
    from PIL import Image

    rgb = np.stack([data[bands.index(b)] for b in ("B04", "B03", "B02")], axis=-1).astype(np.float32) - offset
    img = np.clip(rgb / (0.3 * QUANTIFICATION_VALUE) * 255.0, 0, 255).astype(np.uint8)
    buf = io.BytesIO()
    Image.fromarray(img).save(buf, format="PNG")
    return buf.getvalue()


def shard_schema() -> Any:
    """Arrow schema of a Major-TOM Core S2 shard as :func:`write_shard` writes it."""
    import pyarrow as pa

    return pa.schema([pa.field(c, pa.string() if c in KEYS else pa.binary()) for c in SHARD_COLUMNS])


def write_shard(rows: Iterator[dict[str, Any]] | list[dict[str, Any]], path: str | Path,
                overwrite: bool = False) -> int:
    """Write rows ({column: value} in :data:`SHARD_COLUMNS`) as a shard, one row per row group; returns the count."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    schema = shard_schema()
    n = 0
    with atomic_path(path, overwrite=overwrite) as tmp:
        with pq.ParquetWriter(str(tmp), schema) as writer:
            for rec in rows:
                writer.write_table(pa.Table.from_pylist([{c: rec.get(c) for c in SHARD_COLUMNS}], schema=schema))
                n += 1
    return n


def cell_row(folder: str | Path, crop: int | None = None) -> dict[str, Any]:
    """A shard row from a Major-TOM cell folder (``<cell>/<product>/B01.tif`` … as Major-TOM's downloader writes).

    ``crop``: keep the top-left ``crop`` x ``crop`` pixels of the 10 m grid (a multiple of 6; 20/60 m bands
    cropped to match) — for small test shards. Band bytes are the files' own bytes when not cropped.
    """
    import rasterio
    from rasterio.windows import Window

    folder = Path(folder)
    products = [p for p in folder.iterdir() if p.is_dir()] if folder.is_dir() else []
    product = products[0] if len(products) == 1 else folder
    files = {p.stem: p for p in product.glob("*.tif")}
    missing = [b for b in SHARD_BANDS if b not in files]
    if missing:
        raise FileFormatError(f"{product} lacks band file(s) {', '.join(missing)}; give a Major-TOM cell folder")
    if crop is not None and (crop <= 0 or crop % 6):
        raise InputError(f"crop must be a positive multiple of 6 (10/20/60 m grids stay aligned), got {crop}")
    cell = folder.name if product is not folder else ""
    meta_file = folder / "metadata.json"
    meta = json.loads(meta_file.read_text()) if meta_file.exists() else {}
    rec: dict[str, Any] = {"product_id": meta.get("product_id", product.name),
                           "grid_cell": meta.get("grid_cell", cell),
                           "product_datetime": meta.get("sensing_time")}
    for col in (*SHARD_BANDS, "cloud_mask"):
        if col not in files:
            rec[col] = None
            continue
        if crop is None:
            rec[col] = files[col].read_bytes()
            continue
        with rasterio.open(files[col]) as src:
            f = max(1, round(src.res[0] / 10))
            size = crop // f
            win = Window(0, 0, size, size)
            rec[col] = _band_tiff(src.read(1, window=win), src.crs, src.window_transform(win), src.dtypes[0])
    return rec


def _decode_to_shard(archive: str | Path, out: Path, codec: Any, overwrite: bool,
                     on_row: Callable[[str, str | None], None] | None) -> ArchiveReport:
    """Decode an archive to a shard in the Major-TOM schema (the source's DN offset; its cloud mask, null if none)."""
    report = ArchiveReport()

    def rows() -> Iterator[dict[str, Any]]:
        for index, rec in enumerate(iter_archive(archive)):
            report.rows += 1
            name = f"row {index} ({rec.get('grid_cell')} {rec.get('product_id')})"
            try:
                data, header = decode_row(codec, rec, f"{archive} {name}")
                mask = row_cloud_mask(rec, f"{archive} {name}")
            except EOCompressError as exc:
                report.failed.append(f"{name}: {' '.join(str(exc).split())}")
                if on_row:
                    on_row(name, report.failed[-1])
                continue
            shift = int(rec.get("offset") or 0) - header["offset"]  # back to the source shard's DN convention
            dn = data.astype(np.int32)
            dn[dn > 0] += shift
            dn = np.clip(dn, 0, 65535).astype(np.uint16)
            crs = CRS.from_user_input(header["crs"]) if header["crs"] else None
            transform = Affine(*header["transform"]) if header["transform"] else None
            bands = list(codec.bands)
            tiffs = native_bands(dn, crs, transform, bands)
            mask_bytes = None if mask is None else _band_tiff(mask, crs, transform, "uint8")
            report.masks += mask is not None
            report.written += 1
            report.token_bytes += len(rec["tokens"])
            if on_row:
                on_row(name, None)
            thumb = thumbnail_png(data, bands, header["offset"])
            yield {"product_id": rec.get("product_id"), "grid_cell": rec.get("grid_cell"),
                   "product_datetime": rec.get("product_datetime"), "thumbnail": thumb, **tiffs,
                   "cloud_mask": mask_bytes}
        if report.written == 0:
            why = "; ".join(report.failed[:3]) or "the archive has no rows"
            raise EOCompressError(f"{archive}: no row could be decoded ({why}); nothing was written")

    write_shard(rows(), out, overwrite=overwrite)
    return report


__all__ = [
    "JOINED", "KEYS", "MASK_SUFFIX", "METADATA_COLUMNS", "SHARD_BANDS", "SHARD_COLUMNS", "ArchiveReport",
    "RowGroupTask", "ShardRow", "archive_schema", "cell_row", "decode_archive", "decode_row", "encode_row_group",
    "encode_shard", "encode_shards", "iter_archive", "iter_shard", "native_bands", "open_archive", "open_shard",
    "plan_shards", "read_metadata", "row_cloud_mask", "row_scene", "thumbnail_png", "write_shard",
]

