"""GeoParquet product for chip embeddings (Major-TOM schema): codes replace the embedding column.

Every other column (``unique_id, timestamp, product_id, grid_cell, ..., geometry``) and the
GeoParquet ``geo`` metadata are kept as they are. The ``embedding`` column becomes
``embedding_codes`` (``fixed_size_binary[bytes_per_vector]``). The file's key-value metadata holds
the codec description (``eocompress:codec``), one ``eocompress:param:<name>`` JSON array per decode
parameter, the original column type, a sha256 per row group over *every* column (codes, ``grid_cell``,
geometry, ...) and ``eocompress:metadata_sha256`` over all of that metadata. Pages carry CRC checksums
that are verified on read. Row groups are encoded as separate tasks (on Dask when a client is given)
and written in order.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from eocompress._atomic import atomic_path, check_output_path
from eocompress.embeddings.products.base import ProductBase, register
from eocompress.embeddings.products.checksums import ChecksumError, codec_from_json
from eocompress.embeddings.products.fitting import fit_codec
from eocompress.embeddings.products.metadata import quantization_info
from eocompress.embeddings.products.ranges import ATTR as RANGE_ATTR
from eocompress.embeddings.products.ranges import fit_ranges_on_batches
from eocompress.embeddings.products.scale import map_chunks, share
from eocompress.embeddings.products.stac import write_stac_item
from eocompress.errors import FileFormatError, InputError

if TYPE_CHECKING:
    import pyarrow as pa
    from distributed import Client

    from eocompress.embeddings.codecs.codec import Codec
    from eocompress.embeddings.products.base import ChipProduct

FORMAT = "eocompress-geoparquet-product"
EMBEDDING = "embedding"
CODES = "embedding_codes"
_KEYS = (
    "eocompress:format",
    "eocompress:codec",
    "eocompress:embedding_type",
    "eocompress:row_group_sha256",
    "eocompress:quantization",
    "eocompress:rows",
    "eocompress:provenance",
    "eocompress:metadata_sha256",
    "eocompress:clipping",
)
PARAM_PREFIX = "eocompress:param:"
DIGEST_KEY = "eocompress:metadata_sha256"


def _column_digest(h: Any, column: Any) -> None:
    """Feed one column's type, nulls and values into a hash, independent of how it is chunked."""
    import pyarrow as pa

    arr = column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column
    h.update(str(arr.type).encode())
    h.update(np.asarray(arr.is_null().to_numpy(zero_copy_only=False), dtype=bool).tobytes())
    if pa.types.is_fixed_size_binary(arr.type) and not arr.null_count:
        width = arr.type.byte_width
        h.update(memoryview(arr.buffers()[1])[arr.offset * width : (arr.offset + len(arr)) * width])
    elif (pa.types.is_integer(arr.type) or pa.types.is_floating(arr.type)) and not arr.null_count:
        h.update(np.ascontiguousarray(arr.to_numpy()).tobytes())
    else:
        for value in arr.to_pylist():
            h.update(repr(value).encode() + b"\x00")


def table_sha256(table: pa.Table) -> str:
    """sha256 (hex) over every column of a row group: names, types, nulls and values."""
    import hashlib

    h = hashlib.sha256()
    for name in table.column_names:
        h.update(name.encode() + b"\x00")
        _column_digest(h, table[name])
    return h.hexdigest()


def metadata_sha256(meta: dict[str, str], schema: pa.Schema) -> str:
    """sha256 over the eocompress and geo key-value metadata (but the digest) and the column schema."""
    from eocompress.embeddings.products.integrity import json_digest

    keys = {k: v for k, v in meta.items() if (k.startswith("eocompress:") or k == "geo") and k != DIGEST_KEY}
    fields = [[f.name, str(f.type)] for f in schema]
    return json_digest({"meta": keys, "schema": fields})


def _embedding_matrix(column: Any, path: Path) -> np.ndarray:
    """(n, D) float32 from a list / fixed_size_list column."""
    import pyarrow as pa

    col = column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column
    if col.null_count:
        raise InputError(f"{path}: {col.null_count} rows have no embedding; drop them before compressing")
    if not (pa.types.is_list(col.type) or pa.types.is_fixed_size_list(col.type) or pa.types.is_large_list(col.type)):
        raise InputError(f"{path}: column '{EMBEDDING}' is {col.type}, expected a list of floats per row")
    lengths = set(col.value_lengths().to_numpy().tolist()) if not pa.types.is_fixed_size_list(col.type) else set()
    if len(lengths) > 1:
        raise InputError(f"{path}: embeddings have different lengths {sorted(lengths)[:5]}; all rows need D values")
    values = col.flatten().to_numpy(zero_copy_only=False).astype(np.float32)
    return values.reshape(len(col), -1)


def _open(path: Path, verify_pages: bool = False) -> Any:
    import pyarrow.parquet as pq

    try:
        return pq.ParquetFile(path, page_checksum_verification=verify_pages)
    except Exception as exc:
        raise FileFormatError(f"{path} is not a readable Parquet file ({exc})") from exc


def _encode_row_group(index: int, src: str, codec_json: str) -> tuple[Any, str]:
    """Worker task: row group ``index`` with its embedding column replaced by codes; sha256 of the codes."""
    import pyarrow as pa

    from eocompress.embeddings.products.integrity import check_magnitude

    codec = codec_from_json(codec_json)
    table = _open(Path(src)).read_row_group(index)
    X = _embedding_matrix(table[EMBEDDING], Path(src))
    check_magnitude(X, f"{src} row group {index}")
    codes = codec.encode(X)
    arr = pa.FixedSizeBinaryArray.from_buffers(pa.binary(codes.shape[1]), len(codes), [None, pa.py_buffer(codes)])
    pos = table.schema.get_field_index(EMBEDDING)
    table = table.remove_column(pos).add_column(pos, CODES, arr)
    return table, table_sha256(table)


def compress_parquet(
    src: str | os.PathLike,
    out: str | os.PathLike,
    spec: str,
    *,
    fit_sample: int = 20000,
    fit: str | os.PathLike | None = None,
    seed: int = 0,
    overwrite: bool = False,
    client: Client | None = None,
    progress: Callable[[int], None] | None = None,
    stac: bool = True,
    provenance: dict[str, Any] | None = None,
) -> Path:
    """Encode the ``embedding`` column of a (Geo)Parquet chip table into a GeoParquet product."""
    import pyarrow.parquet as pq

    from eocompress.embeddings.products.conventions import provenance as make_provenance
    from eocompress.embeddings.products.decode_params import codec_parts
    from eocompress.embeddings.products.integrity import check_magnitude

    src, out = Path(src), check_output_path(out, overwrite=overwrite)
    if out.suffix.lower() not in (".parquet", ".geoparquet", ".pq"):
        raise InputError(f"a chip table compresses to GeoParquet; name the output .parquet (got {out})")
    pf = _open(src)
    schema = pf.schema_arrow
    if EMBEDDING not in schema.names:
        raise InputError(f"{src} has no '{EMBEDDING}' column (columns: {schema.names}); rename the vectors column")
    if pf.metadata.num_rows == 0 or pf.num_row_groups == 0:
        raise InputError(f"{src} has no rows; there is nothing to compress (write the chip embeddings first)")
    dim = _embedding_matrix(pf.read_row_group(0, columns=[EMBEDDING])[EMBEDDING], src).shape[1]

    def sample() -> np.ndarray:
        rng = np.random.default_rng(seed)
        groups = rng.permutation(pf.num_row_groups)[:32]
        parts = [_embedding_matrix(pf.read_row_group(int(g), columns=[EMBEDDING])[EMBEDDING], src) for g in groups]
        X = np.concatenate(parts)
        X = X[rng.choice(len(X), size=min(fit_sample, len(X)), replace=False)]
        check_magnitude(X, f"the fit sample of {src}")
        return X

    codec = fit_codec(spec, dim, sample, fit, seed=seed, what=str(src))
    batches = (
        _embedding_matrix(pf.read_row_group(g, columns=[EMBEDDING])[EMBEDDING], src) for g in range(pf.num_row_groups)
    )
    clipping = fit_ranges_on_batches(codec, batches, widen=fit is None)  # no silent clipping (ranges.py)
    codec_json = codec.to_json()
    shas: list[str] = []
    prov = make_provenance(
        None, **{k: v for k, v in (provenance or {}).items() if v}, fallback_source=f"urn:eocompress:file:{src.name}"
    )
    meta, arrays = codec_parts(codec)
    extra = {
        "eocompress:format": FORMAT,
        "eocompress:codec": json.dumps(meta),
        **{
            PARAM_PREFIX + name: json.dumps(
                {"dtype": a.dtype.str, "shape": list(a.shape), "values": a.ravel().tolist()}
            )
            for name, a in arrays.items()
        },
        "eocompress:provenance": json.dumps(prov),
        "eocompress:embedding_type": str(schema.field(EMBEDDING).type),
        "eocompress:quantization": json.dumps(quantization_info(codec)),
        "eocompress:rows": str(pf.metadata.num_rows),
        RANGE_ATTR: json.dumps({"codes": clipping}),
    }
    with atomic_path(out, overwrite=overwrite) as tmp:
        writer = None
        try:
            for _, (table, sha) in map_chunks(
                _encode_row_group,
                range(pf.num_row_groups),
                str(src),
                share(client, codec_json),
                client=client,
                progress=progress,
                ordered=True,
            ):
                # Codec parameters go in the Arrow schema metadata (read by any Parquet reader).
                table = table.replace_schema_metadata({**(table.schema.metadata or {}), **extra})
                if writer is None:
                    writer = pq.ParquetWriter(tmp, table.schema, compression="zstd", write_page_checksum=True)
                writer.write_table(table, row_group_size=max(1, table.num_rows))
                shas.append(sha)
            if writer is None:  # the source has row groups (checked above), so each gave a table
                raise FileFormatError(f"{src}: no row group was encoded; the source changed while compressing")
            # Known only at the end: the sha256 of each row group, then the digest of all our metadata.
            final = {**{k.decode(): v.decode() for k, v in (writer.schema.metadata or {}).items()}, **extra}
            final["eocompress:row_group_sha256"] = json.dumps(shas)
            writer.add_key_value_metadata(
                {
                    "eocompress:row_group_sha256": final["eocompress:row_group_sha256"],
                    DIGEST_KEY: metadata_sha256(final, writer.schema),
                }
            )
        finally:
            if writer is not None:
                writer.close()
    if stac:
        write_stac_item(ParquetProduct.open(out), overwrite=overwrite)
    return out


@register("parquet")
class ParquetProduct(ProductBase):
    """A GeoParquet chip product opened for reading; chunks are row groups, checked against sha256."""

    is_chips = True

    @classmethod
    def open(cls, path: str | os.PathLike, verify: bool = True) -> ParquetProduct:
        """Open the product; its metadata digest is always checked (``verify`` applies to row groups)."""
        prod = cls(path)
        prod.verify = verify
        return prod

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = Path(path)
        self.file = _open(self.path, verify_pages=True)
        try:
            meta = {k.decode(): v.decode() for k, v in (self.file.metadata.metadata or {}).items()}
        except UnicodeDecodeError as exc:
            raise FileFormatError(f"{self.path}: key-value metadata is not text ({exc}); the file is damaged") from exc
        if meta.get("eocompress:format") != FORMAT:
            raise FileFormatError(f"{self.path} is a Parquet file but not an eocompress product (no format tag)")
        if meta.get(DIGEST_KEY) != metadata_sha256(meta, self.file.schema_arrow):
            raise ChecksumError(
                f"{self.path}: the codec, decode parameters or other metadata do not match {DIGEST_KEY} "
                "(corrupted or modified); compress the table again"
            )
        self.meta = meta
        try:
            self.shas = json.loads(meta["eocompress:row_group_sha256"])
            self.n_rows = int(meta["eocompress:rows"])
            if not isinstance(self.shas, list) or len(self.shas) != self.file.num_row_groups:
                raise ValueError("one sha256 per row group expected")
        except (KeyError, TypeError, ValueError) as exc:
            raise FileFormatError(
                f"{self.path}: eocompress metadata is malformed ({exc}); the file is damaged"
            ) from exc
        self.columns = [n for n in self.file.schema_arrow.names]
        self._codec: Codec | None = None

    @property
    def codec(self) -> Codec:
        if self._codec is None:
            from eocompress.embeddings.products.decode_params import codec_from_parts

            arrays = {}
            try:
                for key, text in self.meta.items():
                    if key.startswith(PARAM_PREFIX):
                        d = json.loads(text)
                        arrays[key[len(PARAM_PREFIX) :]] = np.asarray(d["values"], dtype=np.dtype(d["dtype"])).reshape(
                            d["shape"]
                        )
            except (ValueError, KeyError, TypeError) as exc:
                raise FileFormatError(
                    f"{self.path}: decode parameters are malformed ({exc}); the file is damaged"
                ) from exc
            self._codec = codec_from_parts(self.meta.get("eocompress:codec", ""), arrays)
        return self._codec

    def windows(self) -> list[int]:
        return list(range(self.file.num_row_groups))

    def read_table(self, index: int, verify: bool = True) -> tuple[pa.Table, np.ndarray]:
        """(row group table, codes (n, B)), codes checked against the row group's sha256."""
        try:
            table = self.file.read_row_group(index)
        except Exception as exc:
            raise ChecksumError(
                f"{self.path}: row group {index} cannot be read ({exc}); the file is corrupted"
            ) from exc
        if verify and table_sha256(table) != self.shas[index]:
            raise ChecksumError(
                f"{self.path}: row group {index} does not match its sha256 (a column was corrupted or modified)"
            )
        col = table[CODES].combine_chunks()
        if col.null_count or not hasattr(col.type, "byte_width"):
            raise FileFormatError(f"{self.path}: row group {index} has no valid '{CODES}' column; the file is damaged")
        codes = np.frombuffer(
            col.buffers()[1],
            dtype=np.uint8,
            count=len(col) * col.type.byte_width,
            offset=col.offset * col.type.byte_width,
        ).reshape(len(col), -1)
        return table, codes

    def read_chunk(self, index: int, verify: bool = True, rescore: bool = False) -> tuple[np.ndarray, np.ndarray, None]:
        _, codes = self.read_table(index, verify=verify)
        return codes, np.ones(len(codes), dtype=bool), None

    def decompress(self, out: Path, overwrite: bool = False, progress: Callable[[int], None] | None = None) -> Path:
        """Write the original table (float32 embeddings, every other column and metadata) to ``out``."""
        import pyarrow as pa
        import pyarrow.parquet as pq

        orig_type = self.meta["eocompress:embedding_type"]
        with atomic_path(out, overwrite=overwrite) as tmp:
            writer = None
            try:
                for i in self.windows():
                    table, codes = self.read_table(i)
                    X = self.codec.decode(codes)
                    flat = pa.array(X.reshape(-1), type=pa.float32())
                    if orig_type.startswith("fixed_size_list"):
                        emb = pa.FixedSizeListArray.from_arrays(flat, X.shape[1])
                    else:
                        offsets = pa.array(np.arange(0, X.size + 1, X.shape[1], dtype=np.int32))
                        emb = pa.ListArray.from_arrays(offsets, flat)
                    pos = table.schema.get_field_index(CODES)
                    table = table.remove_column(pos).add_column(pos, EMBEDDING, emb)
                    meta = {k: v for k, v in (table.schema.metadata or {}).items() if k.decode() not in _KEYS}
                    table = table.replace_schema_metadata(meta)
                    if writer is None:
                        writer = pq.ParquetWriter(tmp, table.schema, compression="zstd")
                    writer.write_table(table, row_group_size=max(1, table.num_rows))
                    if progress:
                        progress(1)
            finally:
                if writer is not None:
                    writer.close()
        return Path(out)

    def footprint(self) -> tuple[list[float], dict[str, Any]]:
        """WGS84 bbox and polygon of the chips (from the centre_lat/centre_lon columns, else the geo bbox)."""
        names = self.file.schema_arrow.names
        if "centre_lat" in names and "centre_lon" in names:
            t = self.file.read(columns=["centre_lat", "centre_lon"])
            lat, lon = t["centre_lat"].to_numpy(), t["centre_lon"].to_numpy()
            w, s, e, n = float(lon.min()), float(lat.min()), float(lon.max()), float(lat.max())
        else:
            geo = json.loads(self.meta.get("geo", "{}"))
            columns: dict[str, dict[str, Any]] = geo.get("columns", {})
            bbox = next(iter(columns.values()), {}).get("bbox", [-180, -90, 180, 90])
            w, s, e, n = (float(v) for v in bbox)
        ring = [[w, s], [e, s], [e, n], [w, n], [w, s]]
        return [w, s, e, n], {"type": "Polygon", "coordinates": [ring]}

    def time_range(self) -> tuple[str | None, str | None]:
        if "timestamp" not in self.file.schema_arrow.names:
            return None, None
        import pyarrow.compute as pc

        t = self.file.read(columns=["timestamp"])["timestamp"]
        lo, hi = pc.min(t).as_py(), pc.max(t).as_py()
        fmt = (lambda v: v.isoformat().replace("+00:00", "") + "Z") if hasattr(lo, "isoformat") else str
        return (fmt(lo) if lo is not None else None), (fmt(hi) if hi is not None else None)

    def stored_bytes(self) -> int:
        return self.path.stat().st_size


if TYPE_CHECKING:  # the kind implements its protocol (checked by mypy, no cost at run time)
    _implements: type[ChipProduct] = ParquetProduct
