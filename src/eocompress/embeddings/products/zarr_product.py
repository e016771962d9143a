"""Zarr product (v3, or v2 for GDAL 3.4-3.10): codes chunked in space, every decode parameter a named array,
checksums throughout.

Layout of ``OUT.zarr`` (a group; consolidated metadata; v3 arrays are zstd + Zarr's ``crc32c`` codec, v2 arrays
zlib with ``_ARRAY_DIMENSIONS`` attributes, the layout GDAL's Zarr driver reads since 3.4)::

    codes          uint8 (B, H, W)  dims (code_byte, y, x)          the codec's code bytes, 0 where nodata
    valid          bool  (H, W)     dims (y, x)                     nodata mask (False = nodata)
    rescore_codes  uint8 (B2, H, W) dims (rescore_code_byte, y, x)  optional finer codec for search rescoring
    x, y           float64 pixel-centre coordinates (CF), spatial_ref: CF grid mapping (WKT2, GeoTransform)
    chunk_sha256   uint8 (nI, nJ, 32)                               sha256 per chunk (0 = not written)
    codec/*        decode parameters of ``codes`` (e.g. pca16_mean, pca16_components, int8_min, int8_step)
    rescore_codec/* decode parameters of ``rescore_codes``
    attrs          zarr_conventions, geoemb:*, proj:*, spatial:*, eocompress:* (codec description, grid,
                   input fingerprint, eocompress:metadata_sha256 over every attribute and small array)

The band axis comes first so GDAL reads bands x rows x columns. The store is built at ``.OUT.partial``
and renamed into place when complete; ``resume=True`` continues a partial store from the same input and
codec, skipping chunks whose checksum matches.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from eocompress._atomic import check_output_path, os_error_message, replace_path
from eocompress.embeddings.products import conventions as conv
from eocompress.embeddings.products.base import ProductBase, register
from eocompress.embeddings.products.checksums import ChecksumError, chunk_sha256
from eocompress.embeddings.products.decode_params import codec_from_parts, codec_parts, describe_arrays
from eocompress.embeddings.products.fields import Field, GridInfo, Window, iter_windows
from eocompress.embeddings.products.integrity import array_digest, check_magnitude, fingerprint, json_digest
from eocompress.embeddings.products.scale import map_chunks, share
from eocompress.errors import EOCompressError, FileFormatError, InputError

if TYPE_CHECKING:
    import xarray as xr
    import zarr
    from distributed import Client

    from eocompress.embeddings.codecs.codec import Codec
    from eocompress.embeddings.products.base import GridProduct

FORMAT = "eocompress-zarr-product"
VERSION = 2
DIGEST_KEY = "eocompress:metadata_sha256"
_BULK = ("codes", "valid", "rescore_codes")  # covered chunk by chunk by chunk_sha256
_CODEC_GROUPS = {"eocompress:codec": "codec", "eocompress:rescore_codec": "rescore_codec"}


def partial_path(out: str | os.PathLike) -> Path:
    """Where an unfinished product is built (and resumed from)."""
    out = Path(out)
    return out.with_name(f".{out.name}.partial")


def _open_group(path: Path, mode: Literal["r", "r+"] = "r", consolidated: bool = False) -> Any:
    import zarr

    try:
        return zarr.open_group(str(path), mode=mode, use_consolidated=consolidated if mode == "r" else None)
    except Exception as exc:  # zarr raises several types for a non-store or a damaged zarr.json
        raise FileFormatError(f"{path} is not a readable Zarr store ({type(exc).__name__}: {str(exc)[:200]})") from exc


ZARR_FORMATS = (2, 3)


def store_exists(store: Path) -> bool:
    """True when ``store`` holds a Zarr group root (v3 ``zarr.json`` or v2 ``.zgroup``)."""
    return (store / "zarr.json").exists() or (store / ".zgroup").exists()


def _stored_array(group: zarr.Group, name: str) -> zarr.Array:
    """The array ``name`` of a product's group; FileFormatError when it is missing or a group."""
    import zarr

    node = group.get(name)
    if not isinstance(node, zarr.Array):
        raise FileFormatError(f"{group.store}: {name!r} is not an array; the product is damaged, compress it again")
    return node


def zarr_format_of(group: zarr.Group) -> int:
    """The Zarr format (2 or 3) of an opened group."""
    return int(group.metadata.zarr_format)


def _compressors(crc32c: bool = True, zarr_format: int = 3) -> list[Any]:
    if zarr_format == 2:  # zlib: in every GDAL Zarr driver (3.4+); crc32c does not exist in Zarr v2
        from numcodecs import Zlib

        return [Zlib(level=6)]
    from zarr.codecs import Crc32cCodec, ZstdCodec

    return [ZstdCodec(level=3), *([Crc32cCodec()] if crc32c else [])]


def _array(group: Any, name: str, **kwargs: Any) -> Any:
    crc = group.attrs.get("eocompress:crc32c", True)
    fmt = zarr_format_of(group)
    if fmt == 2:  # v2 names dimensions in the xarray/GDAL attribute _ARRAY_DIMENSIONS
        dims = kwargs.pop("dimension_names", None)
        if dims is None and tuple(kwargs.get("shape", ())) == ():
            dims = ()  # a scalar (spatial_ref): xarray needs the attribute even when empty
        if dims is not None:
            kwargs["attributes"] = {**kwargs.get("attributes", {}), "_ARRAY_DIMENSIONS": list(dims)}
    return group.create_array(name, compressors=_compressors(crc, fmt), **kwargs)


def _store_codec(group: zarr.Group, name: str, codec: Codec) -> dict[str, Any]:
    """Write a codec's decode parameters as arrays of subgroup ``name``; returns its JSON description."""
    meta, arrays = codec_parts(codec)
    sub = group.create_group(
        name,
        attributes={
            "description": f"decode parameters of the codec {codec.spec}",
            "eocompress:crc32c": group.attrs.get("eocompress:crc32c", True),
        },
    )
    notes = describe_arrays(codec)
    for key, arr in arrays.items():
        a = _array(
            sub,
            key,
            shape=arr.shape,
            chunks=arr.shape or (),
            dtype=arr.dtype,
            dimension_names=tuple(f"{key}_{k}" for k in range(arr.ndim)),
            attributes={"description": notes[key]},
        )
        a[...] = arr
    return meta


def load_codec(group: zarr.Group, key: str = "eocompress:codec") -> Codec | None:
    """The codec stored under attribute ``key`` with its arrays in the matching subgroup (None if absent)."""
    import zarr

    meta = group.attrs.get(key)
    if meta is None:
        return None
    if not isinstance(meta, (dict, str)):
        raise FileFormatError(f"the decode parameters of {key} are a {type(meta).__name__}; the product is damaged")
    try:
        sub = group[_CODEC_GROUPS[key]]
        if not isinstance(sub, zarr.Group):
            raise TypeError(f"{_CODEC_GROUPS[key]} is an array, not a group")
        arrays = {name: np.asarray(arr[...]) for name, arr in sub.arrays()}
    except Exception as exc:
        raise FileFormatError(f"the decode parameters of {key} cannot be read ({exc}); the product is damaged") from exc
    return codec_from_parts(meta, arrays)


def _encode_chunk(
    window: Window, fld: Field, codec_json: str, rescore_json: str | None, store: str, resume: bool
) -> tuple[str, int, bool]:
    """Worker task: read, encode and write one chunk plus its checksum; returns (key, n_valid, skipped)."""
    import zarr

    from eocompress.embeddings.products.checksums import codec_from_json

    group = zarr.open_group(store, mode="r+", use_consolidated=False)
    sha_arr = _stored_array(group, "chunk_sha256")
    sl = (slice(window.r0, window.r1), slice(window.c0, window.c1))
    if resume:
        stored = np.asarray(sha_arr[window.i, window.j])
        if stored.any():
            with contextlib.suppress(Exception):  # an unreadable chunk is written again
                arrays = [
                    np.moveaxis(np.asarray(_stored_array(group, "codes")[(slice(None), *sl)]), 0, -1),
                    np.asarray(_stored_array(group, "valid")[sl]),
                ]
                if rescore_json is not None:
                    extra = _stored_array(group, "rescore_codes")[(slice(None), *sl)]
                    arrays.append(np.moveaxis(np.asarray(extra), 0, -1))
                if chunk_sha256(*arrays) == stored.tobytes():
                    return window.key, int(arrays[1].sum()), True
    values, valid = fld.read(window)
    vecs = values[valid]
    check_magnitude(values, fld.describe(), (window.r0, window.c0))
    arrays = []
    for name, text in (("codes", codec_json), ("rescore_codes", rescore_json)):
        if text is None:
            continue
        codec = codec_from_json(text)
        codes = np.zeros((*window.shape, codec.bytes_per_vector), dtype=np.uint8)
        if len(vecs):
            codes[valid] = codec.encode(vecs)
        _stored_array(group, name)[(slice(None), *sl)] = np.moveaxis(codes, -1, 0)
        arrays.append(codes)
    _stored_array(group, "valid")[sl] = valid
    arrays.insert(1, valid)
    sha_arr[window.i, window.j] = np.frombuffer(chunk_sha256(*arrays), dtype=np.uint8)
    return window.key, int(valid.sum()), False


def _check_resume(
    group: Any,
    part: Path,
    codec: Codec,
    chunk: int,
    source: dict[str, Any] | None,
    rescore_codec: Codec | None = None,
    zarr_format: int = 3,
) -> None:
    """Refuse to continue a partial store started from another input, codec, rescore codec, chunk size or format."""
    fresh = f"drop --resume to start fresh (this deletes the unfinished {part})"
    if zarr_format_of(group) != zarr_format:
        raise EOCompressError(
            f"the unfinished product {part} is Zarr v{zarr_format_of(group)}, not v{zarr_format}; resume with "
            f"--zarr-format {zarr_format_of(group)}, or {fresh}"
        )
    try:
        attrs = group.attrs.asdict()
        stored_meta = attrs.get("eocompress:codec")
        stored_codec = load_codec(group) if stored_meta is not None else None
    except (EOCompressError, ValueError, UnicodeDecodeError, KeyError, TypeError) as exc:
        raise EOCompressError(f"the unfinished product {part} has damaged metadata ({exc}); {fresh}") from exc
    if attrs.get("eocompress:format") != FORMAT or stored_codec is None:
        raise EOCompressError(f"{part} is not an unfinished eocompress product; {fresh}")
    if stored_codec.spec != codec.spec or stored_codec.to_json() != codec.to_json():
        what = (
            f"({stored_codec.spec}, now {codec.spec})"
            if stored_codec.spec != codec.spec
            else f"({codec.spec} with other fitted parameters: another --fit file or fit sample)"
        )
        raise EOCompressError(
            f"the unfinished product {part} was started with another codec {what}; "
            f"resume with --codec {stored_codec.spec} and the same --fit, or {fresh}"
        )
    try:
        stored_rescore = load_codec(group, "eocompress:rescore_codec")
    except (EOCompressError, ValueError, UnicodeDecodeError, KeyError, TypeError) as exc:
        raise EOCompressError(f"the unfinished product {part} has damaged metadata ({exc}); {fresh}") from exc
    if (stored_rescore is None) != (rescore_codec is None) or (
        stored_rescore is not None and rescore_codec is not None and stored_rescore.to_json() != rescore_codec.to_json()
    ):
        have = stored_rescore.spec if stored_rescore is not None else "none"
        raise EOCompressError(
            f"the unfinished product {part} was started with another --rescore-codec ({have}); resume with "
            f"the same --rescore-codec, or {fresh}"
        )
    if attrs.get("eocompress:chunk") != chunk:
        raise EOCompressError(
            f"the unfinished product {part} was started with another codec or chunk size (--chunk "
            f"{attrs.get('eocompress:chunk')}, now {chunk}); resume with the same settings, or {fresh}"
        )
    if source is not None and attrs.get("eocompress:input") != source:
        old = attrs.get("eocompress:input") or {}
        raise EOCompressError(
            f"the unfinished product {part} was started from another input ({old.get('name')}, {old.get('size')} "
            f"bytes) than {source.get('name')} ({source.get('size')} bytes, or modified since); resume with the "
            f"same input file, or {fresh}"
        )


def _create_store(
    store: Path,
    info: GridInfo,
    codec: Codec,
    rescore_codec: Codec | None,
    chunk: int,
    attrs: dict[str, Any],
    zarr_format: int = 3,
) -> Any:
    import zarr

    group = zarr.open_group(str(store), mode="w", zarr_format=2 if zarr_format == 2 else 3)
    group.attrs["eocompress:crc32c"] = bool(attrs.get("eocompress:crc32c", True))
    H, W, c = info.height, info.width, chunk
    geo_attrs: dict[str, Any] = {"grid_mapping": "spatial_ref", "coordinates": "spatial_ref"}
    if info.crs_wkt:
        geo_attrs["_CRS"] = {"wkt": conv.wkt2(info.crs_wkt)}  # GDAL's Zarr driver reads the CRS from here
    B = codec.bytes_per_vector
    _array(
        group,
        "codes",
        shape=(B, H, W),
        chunks=(B, c, c),
        dtype="uint8",
        fill_value=0,
        dimension_names=("code_byte", "y", "x"),
        attributes={
            **geo_attrs,
            "long_name": f"{codec.spec} code bytes",
            "description": "code bytes of each pixel (band axis first); decode with the arrays in codec/",
        },
    )
    _array(
        group,
        "valid",
        shape=(H, W),
        chunks=(c, c),
        dtype="bool",
        fill_value=False,
        dimension_names=("y", "x"),
        attributes={**geo_attrs, "long_name": "valid pixel (False = nodata)"},
    )
    if rescore_codec is not None:
        b2 = rescore_codec.bytes_per_vector
        _array(
            group,
            "rescore_codes",
            shape=(b2, H, W),
            chunks=(b2, c, c),
            dtype="uint8",
            fill_value=0,
            dimension_names=("rescore_code_byte", "y", "x"),
            attributes={**geo_attrs, "long_name": f"{rescore_codec.spec} code bytes (for search rescoring)"},
        )
    n_i, n_j = -(-H // c), -(-W // c)
    _array(
        group,
        "chunk_sha256",
        shape=(n_i, n_j, 32),
        chunks=(1, 1, 32),
        dtype="uint8",
        fill_value=0,
        dimension_names=("chunk_y", "chunk_x", "sha256_byte"),
        attributes={"description": "sha256 of each chunk's codes (h, w, B), valid and rescore codes"},
    )
    y, x = conv.xy_coords(info)
    if y is not None and x is not None:
        for name, values in (("y", y), ("x", x)):
            arr = _array(
                group,
                name,
                shape=values.shape,
                chunks=values.shape,
                dtype="float64",
                dimension_names=(name,),
                attributes=conv.coord_attrs(info, name),
            )
            arr[...] = values
    ref = _array(group, "spatial_ref", shape=(), dtype="int32", fill_value=0, attributes=conv.grid_mapping_attrs(info))
    ref[...] = 0
    attrs = dict(attrs)
    attrs["eocompress:codec"] = _store_codec(group, "codec", codec)
    if rescore_codec is not None:
        attrs["eocompress:rescore_codec"] = _store_codec(group, "rescore_codec", rescore_codec)
    group.attrs.update(attrs)
    return group


def compress_to_zarr(
    fld: Field,
    out: str | os.PathLike,
    codec: Codec,
    *,
    chunk: int = 512,
    client: Client | None = None,
    resume: bool = False,
    overwrite: bool = False,
    rescore_codec: Codec | None = None,
    progress: Callable[[int], None] | None = None,
    extra_attrs: dict | None = None,
    provenance: dict[str, Any] | None = None,
    crc32c: bool = True,
    zarr_format: int = 3,
) -> Path:
    """Encode a field chunk by chunk into a Zarr product at ``out`` (see the module docstring).

    ``zarr_format=2`` writes the Zarr v2 layout GDAL 3.4+ reads (zlib, ``_ARRAY_DIMENSIONS``, no crc32c);
    ``crc32c=False`` leaves Zarr's crc32c codec out of a v3 product (our sha256 checksums stay).
    """
    import zarr

    if zarr_format not in ZARR_FORMATS:
        raise InputError(f"zarr_format must be 2 or 3, not {zarr_format!r}; pass --zarr-format 2 or 3")
    if zarr_format == 2:
        crc32c = False
    out = check_output_path(out, overwrite=overwrite)
    info = fld.info
    if codec.dim != info.dim:
        raise InputError(
            f"{fld.describe()} has {info.dim} bands but the codec {codec.spec!r} was fitted on {codec.dim}-d "
            f"vectors; fit a codec on this field (drop --fit) or use one fitted on {info.dim}-d embeddings"
        )
    src = getattr(fld, "path", None)  # a field read from a file (not one built in memory)
    source = fingerprint(src) if src and Path(src).exists() else None
    part = partial_path(out)
    store = part / "store.zarr"
    if part.exists() and resume and store_exists(store):
        group = _open_group(store, mode="r+")
        _check_resume(group, part, codec, chunk, source, rescore_codec, zarr_format)
    else:
        resume = False
        if part.exists():
            shutil.rmtree(part)
        part.mkdir(parents=True)
        prov = provenance or conv.provenance(
            info, fallback_source=f"urn:eocompress:file:{Path(str(fld.describe())).name}"
        )
        from eocompress.embeddings.products.metadata import quantization_scale

        attrs = {
            "zarr_conventions": conv.zarr_conventions(bool(info.crs_wkt)),
            **conv.geoemb_attrs(codec, info, prov, quantization_scale(codec, "codec/")),
            **conv.crs_attrs(info),
            **conv.spatial_attrs(info),
            "eocompress:format": FORMAT,
            "eocompress:version": VERSION,
            "eocompress:chunk": chunk,
            "eocompress:grid": info.to_json(),
            "eocompress:provenance": prov,
            "eocompress:input": source,
            "eocompress:complete": False,
            "eocompress:crc32c": bool(crc32c),
            **(extra_attrs or {}),
        }
        try:
            group = _create_store(store, info, codec, rescore_codec, chunk, attrs, zarr_format)
        except OSError as exc:
            shutil.rmtree(part, ignore_errors=True)
            raise EOCompressError(os_error_message(exc, out)) from exc
    windows = list(iter_windows(info.height, info.width, chunk))
    codec_arg = share(client, codec.to_json())
    rescore_arg = share(client, rescore_codec.to_json()) if rescore_codec is not None else None
    n_valid = 0
    try:
        for _, (_, nv, _) in map_chunks(
            _encode_chunk, windows, fld, codec_arg, rescore_arg, str(store), resume, client=client, progress=progress
        ):
            n_valid += nv
        group = _open_group(store, mode="r+")
        group.attrs.update({"eocompress:complete": True, "eocompress:n_valid": n_valid})
        group.attrs.update({DIGEST_KEY: metadata_digest(store)})
        with warnings.catch_warnings():  # "consolidated metadata is not part of the v3 spec": we want it for readers
            warnings.simplefilter("ignore")
            zarr.consolidate_metadata(str(store))
        replace_path(store, out)
    except OSError as exc:  # a full disk while writing chunks: one line; the partial store stays for --resume
        raise EOCompressError(
            f"{os_error_message(exc, out)}; the chunks written so far are kept in {part} - free space and rerun "
            "with --resume, or delete it"
        ) from exc
    shutil.rmtree(part, ignore_errors=True)
    return out


def _metadata_of(node: Any) -> dict[str, Any]:
    meta = node.metadata.to_dict()
    meta.pop("consolidated_metadata", None)
    return json.loads(json.dumps(meta, default=str))


def metadata_digest(path: Path) -> str:
    """sha256 over the root attributes, every array's metadata and the content of every non-chunked array."""
    group = _open_group(path)
    attrs = {k: v for k, v in group.attrs.asdict().items() if k != DIGEST_KEY}
    parts: list[Any] = [attrs]
    for name, node in sorted(group.members(max_depth=None), key=lambda kv: kv[0]):
        meta = _metadata_of(node)
        entry: dict[str, Any] = {"name": name, "metadata": meta}
        if meta.get("node_type") == "array" and name not in _BULK:
            entry["data"] = array_digest(np.asarray(node[...]))
        parts.append(entry)
    return json_digest(parts)


def check_metadata(path: Path, attrs: dict[str, Any]) -> None:
    """Raise ChecksumError when the attributes, small arrays or consolidated metadata were changed."""
    import zarr

    stored = attrs.get(DIGEST_KEY)
    try:
        actual = metadata_digest(path)
    except Exception as exc:
        raise ChecksumError(
            f"{path}: metadata cannot be read ({type(exc).__name__}: {exc}); the product is damaged"
        ) from exc
    if stored != actual:
        raise ChecksumError(
            f"{path}: the attributes or decode parameters do not match {DIGEST_KEY} (corrupted or modified); "
            "compress the field again (or restore the product from a copy)"
        )
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            cons = zarr.open_group(str(path), mode="r", use_consolidated=True)
        plain = _open_group(path)
        same = {n: _metadata_of(m) for n, m in cons.members(max_depth=None)} == {
            n: _metadata_of(m) for n, m in plain.members(max_depth=None)
        } and cons.attrs.asdict() == plain.attrs.asdict()
    except Exception as exc:
        raise ChecksumError(f"{path}: consolidated metadata cannot be read ({exc}); the product is damaged") from exc
    if not same:
        raise ChecksumError(
            f"{path}: consolidated metadata disagrees with the arrays' own zarr.json (modified); restore the product"
        )


@register("zarr")
class ZarrProduct(ProductBase):
    """A finished Zarr product opened for reading: grid, codec, chunk reads checked against sha256."""

    is_chips = False

    def __init__(self, path: str | os.PathLike, check: bool = True) -> None:
        self.path = Path(path)
        self.group = _open_group(self.path)
        try:
            attrs = self.group.attrs.asdict()
        except Exception as exc:
            raise FileFormatError(f"{self.path}: attributes cannot be read ({exc}); the product is damaged") from exc
        if attrs.get("eocompress:format") != FORMAT:
            raise FileFormatError(f"{self.path} is a Zarr store but not an eocompress product (no format tag)")
        version = attrs.get("eocompress:version", 0)
        if not isinstance(version, int) or version > VERSION:
            raise FileFormatError(f"{self.path} was written by a newer eocompress; upgrade to read it")
        if version < VERSION:
            raise FileFormatError(f"{self.path} is an older product layout (v{version}); compress the field again")
        if attrs.get("eocompress:complete") is not True:
            raise FileFormatError(f"{self.path} is incomplete; run compress again with --resume")
        if check:
            check_metadata(self.path, attrs)
        self.attrs = attrs
        try:
            self.info = GridInfo.from_json(attrs["eocompress:grid"])
            self.chunk = int(attrs["eocompress:chunk"])
            self.n_valid = int(attrs["eocompress:n_valid"])
            if self.chunk < 1:
                raise ValueError("chunk < 1")
        except (KeyError, TypeError, ValueError) as exc:
            raise FileFormatError(
                f"{self.path}: grid attributes are malformed ({exc}); the product is damaged"
            ) from exc
        self._codec: Codec | None = None
        self._rescore: Any = False
        self.verify = check  # False (--no-verify): chunks are decoded without their sha256 check

    @property
    def codec(self) -> Codec:
        """The codec that decodes ``codes`` (rebuilt from the named arrays in ``codec/``)."""
        if self._codec is None:
            codec = load_codec(self.group)
            if codec is None:
                raise FileFormatError(f"{self.path} stores no codec; the product is damaged - compress the field again")
            self._codec = codec
        return self._codec

    @property
    def rescore_codec(self) -> Codec | None:
        """The codec of ``rescore_codes``, or None."""
        if self._rescore is False:
            self._rescore = load_codec(self.group, "eocompress:rescore_codec")
        return self._rescore

    def windows(self) -> list[Window]:
        """Chunk windows of the grid, row-major."""
        return list(iter_windows(self.info.height, self.info.width, self.chunk))

    def read_chunk(
        self, window: Window, verify: bool = True, rescore: bool = False
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
        """(codes (h, w, B), valid (h, w), rescore codes or None) of one chunk, checked against its sha256."""
        sl = (slice(window.r0, window.r1), slice(window.c0, window.c1))
        has_rescore = "eocompress:rescore_codec" in self.attrs
        try:
            codes = np.moveaxis(np.asarray(self.group["codes"][(slice(None), *sl)]), 0, -1)
            valid = np.asarray(self.group["valid"][sl])
            extra = (
                np.moveaxis(np.asarray(self.group["rescore_codes"][(slice(None), *sl)]), 0, -1) if has_rescore else None
            )
            stored = np.asarray(self.group["chunk_sha256"][window.i, window.j]).tobytes() if verify else b""
        except Exception as exc:
            raise ChecksumError(
                f"{self.path}: {window.describe()} cannot be read ({type(exc).__name__}: {exc}); the chunk file "
                "is corrupted or truncated - compress the field again (or restore the product from a copy)"
            ) from exc
        if verify:
            arrays = [codes, valid] + ([extra] if extra is not None else [])
            if chunk_sha256(*arrays) != stored:
                raise ChecksumError(
                    f"{self.path}: {window.describe()} does not match its sha256 (corrupted or modified); "
                    "compress the field again (or restore the product from a copy)"
                )
        return np.ascontiguousarray(codes), valid, (extra if rescore else None)

    def decode_chunk(self, window: Window) -> tuple[np.ndarray, np.ndarray]:
        """float32 (h, w, D) of one verified chunk (nodata pixels 0) and its valid mask."""
        codes, valid, _ = self.read_chunk(window, verify=self.verify)
        out = np.zeros((*window.shape, self.info.dim), dtype=np.float32)
        if valid.any():
            out[valid] = self.codec.decode(codes[valid])
        return out, valid

    def to_xarray(self, decode: bool = True) -> xr.DataArray:
        """Georeferenced lazy DataArray: decoded float32 (band, y, x), NaN at nodata; or the codes."""
        from eocompress.embeddings.products.xarray_view import to_xarray

        return to_xarray(self, decode=decode)

    def stored_bytes(self) -> int:
        """Bytes on disk of the whole store."""
        return sum(f.stat().st_size for f in self.path.rglob("*") if f.is_file())


if TYPE_CHECKING:  # the kind implements its protocol (checked by mypy, no cost at run time)
    _implements: type[GridProduct] = ZarrProduct
