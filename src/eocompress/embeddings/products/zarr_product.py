"""Zarr v3 product: codes chunked in space, codec in the store, a sha256 per chunk, resumable writes.

Layout of ``OUT.zarr`` (a group)::

    codes          uint8 (H, W, bytes_per_vector), chunks (c, c, B)   the codec's codes, 0 where nodata
    valid          bool  (H, W), chunks (c, c)                        nodata mask (False = nodata)
    rescore_codes  uint8 (H, W, B2), optional                         a finer codec for rescoring search
    chunk_sha256   uint8 (nI, nJ, 32), chunks (1, 1, 32)              sha256 per chunk (0 = not written)
    attrs          geoemb:*, proj:*, spatial:*, eocompress:codec (self-contained JSON), eocompress:grid

The store is built at ``.OUT.partial`` and renamed into place when every chunk is written, so
a crash never leaves a half product at OUT; ``resume=True`` continues a partial store, skipping
chunks whose checksum is recorded and matches.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

from eocompress._atomic import check_output_path
from eocompress.embeddings.products.checksums import ChecksumError, chunk_sha256, codec_from_json
from eocompress.embeddings.products.fields import Field, GridInfo, Window, iter_windows
from eocompress.embeddings.products.metadata import proj_attrs, quantization_info
from eocompress.embeddings.products.scale import map_chunks, share
from eocompress.errors import EOCompressError, FileFormatError, InputError

FORMAT = "eocompress-zarr-product"
VERSION = 1


def partial_path(out: str | os.PathLike) -> Path:
    """Where an unfinished product is built (and resumed from)."""
    out = Path(out)
    return out.with_name(f".{out.name}.partial")


def _open_group(path: Path, mode: str = "r") -> Any:
    import zarr

    try:
        return zarr.open_group(str(path), mode=mode)
    except Exception as exc:  # zarr raises several types for a non-store
        raise FileFormatError(f"{path} is not a readable Zarr store ({exc})") from exc


def _encode_chunk(
    window: Window, fld: Field, codec_json: str, rescore_json: str | None, store: str, resume: bool
) -> tuple[str, int, bool]:
    """Worker task: read, encode and write one chunk plus its checksum; returns (key, n_valid, skipped)."""
    import zarr

    group = zarr.open_group(store, mode="r+")
    sha_arr = group["chunk_sha256"]
    sl = (slice(window.r0, window.r1), slice(window.c0, window.c1))
    if resume:
        stored = np.asarray(sha_arr[window.i, window.j])
        if stored.any():
            try:
                arrays = [np.asarray(group["codes"][sl]), np.asarray(group["valid"][sl])]
                if rescore_json is not None:
                    arrays.append(np.asarray(group["rescore_codes"][sl]))
                if chunk_sha256(*arrays) == stored.tobytes():
                    return window.key, int(arrays[1].sum()), True
            except Exception:  # unreadable chunk: write it again
                pass
    values, valid = fld.read(window)
    vecs = values[valid]
    arrays = []
    for name, text in (("codes", codec_json), ("rescore_codes", rescore_json)):
        if text is None:
            continue
        codec = codec_from_json(text)
        codes = np.zeros((*window.shape, codec.bytes_per_vector), dtype=np.uint8)
        if len(vecs):
            codes[valid] = codec.encode(vecs)
        group[name][sl] = codes
        arrays.append(codes)
    group["valid"][sl] = valid
    arrays.insert(1, valid)
    sha_arr[window.i, window.j] = np.frombuffer(chunk_sha256(*arrays), dtype=np.uint8)
    return window.key, int(valid.sum()), False


def compress_to_zarr(
    fld: Field,
    out: str | os.PathLike,
    codec: Any,
    *,
    chunk: int = 512,
    client: Any = None,
    resume: bool = False,
    overwrite: bool = False,
    rescore_codec: Any = None,
    progress: Callable[[int], None] | None = None,
    extra_attrs: dict | None = None,
) -> Path:
    """Encode a field chunk by chunk into a Zarr v3 product at ``out`` (see the module docstring)."""
    import zarr

    out = check_output_path(out, overwrite=overwrite)
    info = fld.info
    if codec.dim != info.dim:
        raise InputError(
            f"{fld.describe()} has {info.dim} bands but the codec {codec.spec!r} was fitted on {codec.dim}-d "
            f"vectors; fit a codec on this field (drop --fit) or use one fitted on {info.dim}-d embeddings"
        )
    codec_json = codec.to_json()
    rescore_json = rescore_codec.to_json() if rescore_codec is not None else None
    part = partial_path(out)
    store = part / "store.zarr"
    if part.exists() and resume and (store / "zarr.json").exists():
        group = _open_group(store, mode="r+")
        if group.attrs.get("eocompress:codec") != codec_json or group.attrs.get("eocompress:chunk") != chunk:
            raise EOCompressError(
                f"the unfinished product {part} was started with another codec or chunk size; resume with "
                f"the same settings (the CLI reuses the stored codec), or drop --resume to start again"
            )
    else:
        resume = False
        if part.exists():
            shutil.rmtree(part)
        part.mkdir(parents=True)
        group = zarr.open_group(str(store), mode="w", zarr_format=3)
        H, W = info.height, info.width
        c = chunk
        group.create_array(
            "codes",
            shape=(H, W, codec.bytes_per_vector),
            chunks=(c, c, codec.bytes_per_vector),
            dtype="uint8",
            fill_value=0,
            dimension_names=("y", "x", "code_byte"),
        )
        group.create_array(
            "valid", shape=(H, W), chunks=(c, c), dtype="bool", fill_value=False, dimension_names=("y", "x")
        )
        if rescore_codec is not None:
            b2 = rescore_codec.bytes_per_vector
            group.create_array(
                "rescore_codes",
                shape=(H, W, b2),
                chunks=(c, c, b2),
                dtype="uint8",
                fill_value=0,
                dimension_names=("y", "x", "code_byte"),
            )
        n_i, n_j = -(-H // chunk), -(-W // chunk)
        group.create_array(
            "chunk_sha256",
            shape=(n_i, n_j, 32),
            chunks=(1, 1, 32),
            dtype="uint8",
            fill_value=0,
            dimension_names=("chunk_y", "chunk_x", "sha256_byte"),
        )
        quant = quantization_info(codec)
        quant.update({"mask_array": "valid", "nodata": None, "codec_attribute": "eocompress:codec"})
        attrs = {
            "geoemb:type": "pixel",
            "geoemb:dimensions": info.dim,
            "geoemb:data_array": "codes",
            "geoemb:quantization": quant,
            **proj_attrs(info),
            "eocompress:format": FORMAT,
            "eocompress:version": VERSION,
            "eocompress:codec": codec_json,
            "eocompress:chunk": chunk,
            "eocompress:grid": info.to_json(),
            "eocompress:complete": False,
            **(extra_attrs or {}),
        }
        if rescore_codec is not None:
            attrs["eocompress:rescore_codec"] = rescore_json
        group.attrs.update(attrs)
    windows = list(iter_windows(info.height, info.width, chunk))
    codec_arg = share(client, codec_json)
    rescore_arg = share(client, rescore_json) if rescore_json is not None else None
    n_valid = 0
    for _, (_, nv, _) in map_chunks(
        _encode_chunk,
        windows,
        fld,
        codec_arg,
        rescore_arg,
        str(store),
        resume,
        client=client,
        progress=progress,
    ):
        n_valid += nv
    group = _open_group(store, mode="r+")
    group.attrs.update({"eocompress:complete": True, "eocompress:n_valid": n_valid})
    if out.exists():
        shutil.rmtree(out) if out.is_dir() else out.unlink()
    os.replace(store, out)
    shutil.rmtree(part, ignore_errors=True)
    return out


class ZarrProduct:
    """A finished Zarr product opened for reading: grid, codec, chunk reads checked against sha256."""

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = Path(path)
        self.group = _open_group(self.path)
        attrs = self.group.attrs.asdict()
        if attrs.get("eocompress:format") != FORMAT:
            raise FileFormatError(
                f"{self.path} is a Zarr store but not an eocompress product (no format tag)"
            )
        if attrs.get("eocompress:version", 0) > VERSION:
            raise FileFormatError(f"{self.path} was written by a newer eocompress; upgrade to read it")
        if not attrs.get("eocompress:complete"):
            raise FileFormatError(f"{self.path} is incomplete; run compress again with --resume")
        self.attrs = attrs
        self.info = GridInfo.from_json(attrs["eocompress:grid"])
        self.chunk = int(attrs["eocompress:chunk"])
        self._codec = None
        self._sha = None

    @property
    def codec(self) -> Any:
        """The codec that decodes ``codes``."""
        if self._codec is None:
            self._codec = codec_from_json(self.attrs["eocompress:codec"])
        return self._codec

    @property
    def rescore_codec(self) -> Any | None:
        text = self.attrs.get("eocompress:rescore_codec")
        return codec_from_json(text) if text else None

    def windows(self) -> list[Window]:
        return list(iter_windows(self.info.height, self.info.width, self.chunk))

    def read_chunk(
        self, window: Window, verify: bool = True, rescore: bool = False
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
        """(codes (h, w, B), valid (h, w), rescore codes or None) of one chunk, checked against its sha256."""
        sl = (slice(window.r0, window.r1), slice(window.c0, window.c1))
        has_rescore = "eocompress:rescore_codec" in self.attrs
        try:
            codes = np.asarray(self.group["codes"][sl])
            valid = np.asarray(self.group["valid"][sl])
            extra = np.asarray(self.group["rescore_codes"][sl]) if has_rescore else None
            stored = np.asarray(self.group["chunk_sha256"][window.i, window.j]).tobytes() if verify else b""
        except Exception as exc:
            raise ChecksumError(
                f"{self.path}: {window.describe()} cannot be read ({type(exc).__name__}: {exc}); "
                "the chunk file "
                "is corrupted or truncated - compress the field again (or restore the product from a copy)"
            ) from exc
        if verify:
            arrays = [codes, valid] + ([extra] if extra is not None else [])
            if chunk_sha256(*arrays) != stored:
                raise ChecksumError(
                    f"{self.path}: {window.describe()} does not match its sha256 (corrupted or modified); "
                    "compress the field again (or restore the product from a copy)"
                )
        return codes, valid, (extra if rescore else None)

    def iter_chunks(self, verify: bool = True) -> Iterator[tuple[Window, np.ndarray, np.ndarray]]:
        for w in self.windows():
            codes, valid, _ = self.read_chunk(w, verify=verify)
            yield w, codes, valid

    @property
    def n_valid(self) -> int:
        """Number of valid (not nodata) pixels."""
        return int(self.attrs["eocompress:n_valid"])

    def decode_chunk(self, window: Window) -> tuple[np.ndarray, np.ndarray]:
        """float32 (h, w, D) of one verified chunk (nodata pixels 0) and its valid mask."""
        codes, valid, _ = self.read_chunk(window)
        out = np.zeros((*window.shape, self.info.dim), dtype=np.float32)
        if valid.any():
            out[valid] = self.codec.decode(codes[valid])
        return out, valid

    def stored_bytes(self) -> int:
        """Bytes on disk of the whole store."""
        return sum(f.stat().st_size for f in self.path.rglob("*") if f.is_file())


def read_product_attrs(path: str | os.PathLike) -> dict[str, Any]:
    """Attributes of a Zarr product as plain JSON (for `info`)."""
    return json.loads(json.dumps(_open_group(Path(path)).attrs.asdict()))
