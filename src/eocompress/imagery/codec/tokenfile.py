"""Token files (``.eotok``): codebook indices of one scene, bit-packed, with a small header and a checksum.

Layout (little endian)::

    b"EOTK" | format version (u8) | header length (u32) | header (compact UTF-8 JSON)
    | index payload | nodata-mask payload (optional) | blake2b-128 of everything before it

The header names the model (``model_id`` = sha256 of its weights) so that a file is never decoded
with the wrong model, the scene geometry (size, tile grid, CRS, transform, nodata, DN offset, band
names) and the Major-TOM keys when known. Indices are stored at ``ceil(log2 V)`` bits each, or
entropy-coded (zstd, lzma, or adaptive arithmetic coding of their mixed-radix digits, see
:mod:`.entropy`) when that is smaller; the chosen encoding is recorded.
"""

from __future__ import annotations

import hashlib
import json
import lzma
import math
import os
import struct
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from eocompress._atomic import atomic_write_bytes
from eocompress.errors import FileFormatError, InputError

MAGIC = b"EOTK"
FORMAT_VERSION = 1
_PREFIX = struct.Struct("<4sBI")
_CHECKSUM_BYTES = 16

#: Index payload encodings, in the order they are tried; the smallest wins.
INDEX_ENCODINGS = ("packed", "zstd-u16", "lzma-u16", "zstd-packed", "ac-digits", "ac-digits-ctx")


class TokenFileError(FileFormatError):
    """A token file that is truncated, corrupted, of another version, or of another model."""


class ModelMismatchError(TokenFileError):
    """A token file written by a different tokenizer than the one asked to decode it."""


def bits_for(codebook_size: int) -> int:
    """Bits needed per index for a codebook of ``codebook_size`` entries: ``ceil(log2 V)`` (at least 1)."""
    if codebook_size < 1:
        raise InputError(f"codebook size must be >= 1, got {codebook_size}")
    return max(1, math.ceil(math.log2(codebook_size)))


def pack_bits(values: np.ndarray, bits: int) -> bytes:
    """Pack non-negative integers into a big-endian bit stream of ``bits`` bits each."""
    flat = np.asarray(values).ravel()
    if flat.size and (flat.min() < 0 or int(flat.max()) >= (1 << bits)):
        raise InputError(
            f"indices must lie in [0, {1 << bits}) to be stored at {bits} bits; got "
            f"[{int(flat.min())}, {int(flat.max())}]: check the model's codebook size"
        )
    shifts = np.arange(bits - 1, -1, -1, dtype=np.uint64)
    bitplanes = ((flat.astype(np.uint64)[:, None] >> shifts) & np.uint64(1)).astype(np.uint8)
    return np.packbits(bitplanes.ravel()).tobytes()


def unpack_bits(data: bytes, bits: int, count: int) -> np.ndarray:
    """Inverse of :func:`pack_bits`: ``count`` integers of ``bits`` bits each, as int64."""
    needed = math.ceil(count * bits / 8)
    if len(data) < needed:
        raise TokenFileError(
            f"index payload holds {len(data)} bytes, {needed} expected: the file is truncated"
        )
    bitplanes = np.unpackbits(np.frombuffer(data, dtype=np.uint8), count=count * bits).reshape(count, bits)
    weights = (1 << np.arange(bits - 1, -1, -1, dtype=np.int64)).astype(np.int64)
    return bitplanes.astype(np.int64) @ weights


def _encode_indices(indices: np.ndarray, bits: int, encoding: str, radices: list[int] | None = None) -> bytes:
    import imagecodecs

    if encoding.startswith("ac-digits"):
        from eocompress.imagery.codec.entropy import encode_digits

        return encode_digits(indices, radices or [], use_context=encoding.endswith("-ctx"))
    if encoding == "packed":
        return pack_bits(indices, bits)
    if encoding == "zstd-packed":
        return imagecodecs.zstd_encode(pack_bits(indices, bits), level=19)
    if bits > 16:
        raise InputError(f"{encoding} needs indices of at most 16 bits, got {bits}")
    raw = np.ascontiguousarray(indices.astype("<u2")).tobytes()
    if encoding == "zstd-u16":
        return imagecodecs.zstd_encode(raw, level=19)
    if encoding == "lzma-u16":
        return lzma.compress(raw, format=lzma.FORMAT_RAW, filters=[{"id": lzma.FILTER_LZMA2, "preset": 9}])
    raise InputError(f"unknown index encoding {encoding!r}; use one of {INDEX_ENCODINGS}")


def _decode_indices(
    payload: bytes, bits: int, shape: tuple[int, ...], encoding: str, radices: list[int] | None = None
) -> np.ndarray:
    import imagecodecs

    count = int(np.prod(shape))
    if encoding.startswith("ac-digits"):
        from eocompress.imagery.codec.entropy import decode_digits

        if not radices or len(shape) != 3:
            raise TokenFileError("arithmetic-coded indices need index_radices and a (G, H, W) shape in the header")
        return decode_digits(payload, shape, radices, use_context=encoding.endswith("-ctx")).ravel()
    try:
        if encoding == "packed":
            return unpack_bits(payload, bits, count)
        if encoding == "zstd-packed":
            return unpack_bits(imagecodecs.zstd_decode(payload), bits, count)
        if encoding == "zstd-u16":
            raw = imagecodecs.zstd_decode(payload)
        elif encoding == "lzma-u16":
            raw = lzma.decompress(payload, format=lzma.FORMAT_RAW, filters=[{"id": lzma.FILTER_LZMA2}])
        else:
            raise TokenFileError(f"unknown index encoding {encoding!r}: the file needs a newer eocompress")
    except (RuntimeError, lzma.LZMAError) as exc:  # imagecodecs raises RuntimeError subclasses
        raise TokenFileError(f"cannot decompress the index payload ({encoding}): {exc}") from exc
    values = np.frombuffer(raw, dtype="<u2")
    if values.size != count:
        raise TokenFileError(f"index payload holds {values.size} indices, {count} expected")
    return values.astype(np.int64)


def encode_mask(valid: np.ndarray) -> bytes:
    """Compress a boolean validity mask ((H, W) or per band (C, H, W)): packbits then zstd."""
    import imagecodecs

    return imagecodecs.zstd_encode(np.packbits(np.asarray(valid, dtype=bool).ravel()).tobytes(), level=19)


def decode_mask(payload: bytes, shape: tuple[int, ...]) -> np.ndarray:
    """Inverse of :func:`encode_mask` for a mask of ``shape`` ((H, W) or per band (C, H, W))."""
    import imagecodecs

    try:
        packed = np.frombuffer(imagecodecs.zstd_decode(payload), dtype=np.uint8)
    except RuntimeError as exc:
        raise TokenFileError(f"cannot decompress the nodata mask: {exc}") from exc
    count = int(np.prod(shape))
    if packed.size * 8 < count:
        raise TokenFileError("the nodata mask is shorter than the image: the file is corrupted")
    return np.unpackbits(packed, count=count).astype(bool).reshape(shape)


#: Largest index grid side and position count a token file may declare (a 10980 px tile at f=4 is 2745).
MAX_GRID_SIDE = 1 << 20
MAX_INDICES = 1 << 28
MAX_IMAGE_SIDE = 1 << 24


def _int(header: dict, key: str, lo: int, hi: int, source: str) -> int:
    value = header.get(key)
    if type(value) is not int or not lo <= value <= hi:
        raise TokenFileError(
            f"{source}: header field {key}={value!r} is not an integer in [{lo}, {hi}]; the file is corrupted"
        )
    return value


def _check_header(header: Any, source: str) -> tuple[tuple[int, ...], tuple[int, ...] | None]:
    """Validate every header field the decoder uses; return the index shape and the mask shape.

    The checksum catches damage; this catches a header edited with the checksum recomputed (or written
    by a buggy tool): types, ranges and the geometry must agree, so a file never decodes to another shape.
    """
    if not isinstance(header, dict):
        raise TokenFileError(f"{source}: the header is not a JSON object; the file is corrupted")
    shape_raw = header.get("indices_shape")
    if not isinstance(shape_raw, list) or len(shape_raw) != 3:
        raise TokenFileError(f"{source}: header field indices_shape={shape_raw!r} is not [G, H, W]")
    shape = tuple(_int({"n": v}, "n", 1, MAX_GRID_SIDE, source) for v in shape_raw)
    if math.prod(shape) > MAX_INDICES:
        raise TokenFileError(f"{source}: {math.prod(shape)} indices declared, more than {MAX_INDICES}; corrupted")
    size = _int(header, "codebook_size", 1, 1 << 32, source)
    if _int(header, "bits_per_index", 1, 64, source) != bits_for(size):
        raise TokenFileError(f"{source}: bits_per_index does not match codebook_size {size}; the file is corrupted")
    _int(header, "index_nbytes", 0, 1 << 40, source)
    n_mask = _int(header, "mask_nbytes", 0, 1 << 40, source)
    if not isinstance(header.get("index_encoding"), str) or not isinstance(header.get("model_id"), str):
        raise TokenFileError(f"{source}: header fields index_encoding/model_id must be strings; corrupted")
    radices = header.get("index_radices")
    if radices is not None and (not isinstance(radices, list) or not radices
                                or any(type(r) is not int or not 2 <= r <= 1 << 16 for r in radices)):
        raise TokenFileError(f"{source}: header field index_radices={radices!r} is invalid; the file is corrupted")
    bands = header.get("bands")
    if bands is not None and (not isinstance(bands, list) or not all(isinstance(b, str) for b in bands)):
        raise TokenFileError(f"{source}: header field bands={bands!r} is not a list of band names; corrupted")
    if "offset" in header:
        _int(header, "offset", 0, 65535, source)
    crs = header.get("crs")
    if crs is not None and not isinstance(crs, str):
        raise TokenFileError(f"{source}: header field crs={crs!r} is not a CRS string; the file is corrupted")
    transform = header.get("transform")
    if transform is not None and (not isinstance(transform, list) or len(transform) != 6 or not all(
            isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v) for v in transform)):
        raise TokenFileError(f"{source}: header field transform={transform!r} is not 6 numbers; corrupted")
    geometry = None
    if "height" in header or "width" in header:
        h = _int(header, "height", 1, MAX_IMAGE_SIDE, source)
        w = _int(header, "width", 1, MAX_IMAGE_SIDE, source)
        geometry = (h, w)
        if "downsample" in header:
            f = _int(header, "downsample", 1, 1024, source)
            if (shape[1], shape[2]) != (-(-h // f), -(-w // f)):
                raise TokenFileError(
                    f"{source}: an index grid of {shape[1]}x{shape[2]} cannot decode to {h}x{w} px at downsampling "
                    f"{f}; the header was edited or the file is corrupted"
                )
    mask_shape = None
    if n_mask:
        raw = header.get("mask_shape")
        if not isinstance(raw, list) or len(raw) not in (2, 3):
            raise TokenFileError(f"{source}: header field mask_shape={raw!r} is invalid; the file is corrupted")
        mask_shape = tuple(_int({"n": v}, "n", 1, MAX_IMAGE_SIDE, source) for v in raw)
        if math.prod(mask_shape) > 64 * MAX_INDICES:
            raise TokenFileError(f"{source}: mask_shape {raw} is implausibly large; the file is corrupted")
        expected = [geometry] if geometry else []
        if geometry and bands:
            expected.append((len(bands), *geometry))
        if expected and mask_shape not in expected:
            raise TokenFileError(f"{source}: mask_shape {raw} does not match the image size; the file is corrupted")
    return shape, mask_shape


@dataclass
class TokenFile:
    """The contents of a token file: indices (G, Hq, Wq), a header dict and an optional validity mask.

    ``valid`` is (H, W) or per band (C, H, W), True where the input held data; it is stored only
    when some pixel is nodata.

    ``header`` holds at least ``model_id``, ``codebook_size``, ``bands``, ``height``, ``width``;
    the codec adds the tile grid, CRS (WKT), transform, nodata, DN offset and Major-TOM keys.
    """

    indices: np.ndarray
    header: dict[str, Any]
    valid: np.ndarray | None = None
    encoding: str = field(default="", compare=False)

    @property
    def bits_per_index(self) -> int:
        """Bits per stored index: ``ceil(log2 codebook_size)``."""
        return bits_for(int(self.header["codebook_size"]))

    @property
    def model_id(self) -> str:
        """sha256 of the weights of the model that wrote the file."""
        return str(self.header["model_id"])

    def check_model(self, model_id: str, model_name: str | None = None) -> None:
        """Raise :class:`ModelMismatchError` unless the file was written by the model ``model_id``."""
        if model_id != self.model_id:
            wanted = self.header.get("model_name") or "unknown name"
            raise ModelMismatchError(
                f"this token file was written by model {self.model_id[:12]}… ({wanted}), but the model "
                f"given is {model_id[:12]}…{f' ({model_name})' if model_name else ''}; decode it with "
                f"--model pointing at the model whose weights have sha256 {self.model_id}"
            )

    def to_bytes(self, encoding: str | None = None) -> bytes:
        """Serialise; ``encoding=None`` tries every index encoding and keeps the smallest."""
        idx = np.asarray(self.indices)
        if idx.ndim != 3:
            raise InputError(f"indices must be (G, Hq, Wq), got shape {idx.shape}")
        bits = self.bits_per_index
        from eocompress.imagery.codec.entropy import default_radices

        radices = self.header.get("index_radices") or default_radices(int(self.header["codebook_size"]))
        candidates = [encoding] if encoding else [e for e in INDEX_ENCODINGS if bits <= 16 or "u16" not in e]
        payloads = {e: _encode_indices(idx, bits, e, radices) for e in candidates}
        chosen = min(payloads, key=lambda e: len(payloads[e]))
        payload = payloads[chosen]
        mask, mask_shape = b"", None
        if self.valid is not None and not np.asarray(self.valid).all():
            mask, mask_shape = encode_mask(self.valid), list(np.shape(self.valid))
        header = dict(self.header)
        header.update(
            indices_shape=list(idx.shape),
            bits_per_index=bits,
            index_encoding=chosen,
            index_radices=list(radices) if chosen.startswith("ac-digits") else None,
            index_nbytes=len(payload),
            mask_nbytes=len(mask),
            mask_shape=mask_shape,
        )
        head = json.dumps(header, separators=(",", ":"), sort_keys=True).encode("utf-8")
        body = _PREFIX.pack(MAGIC, FORMAT_VERSION, len(head)) + head + payload + mask
        self.encoding = chosen
        return body + hashlib.blake2b(body, digest_size=_CHECKSUM_BYTES).digest()

    @classmethod
    def from_bytes(cls, data: bytes, source: str = "token file") -> TokenFile:
        """Parse and verify a token file's bytes; clear errors for truncation, corruption or versions."""
        if len(data) < _PREFIX.size + _CHECKSUM_BYTES:
            raise TokenFileError(
                f"{source} is {len(data)} bytes, too short to be a token file: it is truncated"
            )
        magic, version, head_len = _PREFIX.unpack_from(data)
        if magic != MAGIC:
            raise TokenFileError(
                f"{source} is not an eocompress token file (magic {magic!r}, expected {MAGIC!r})"
            )
        if version > FORMAT_VERSION:
            raise TokenFileError(
                f"{source} has token-file format version {version}; this eocompress reads up to "
                f"{FORMAT_VERSION}: upgrade eocompress"
            )
        body, checksum = data[:-_CHECKSUM_BYTES], data[-_CHECKSUM_BYTES:]
        if hashlib.blake2b(body, digest_size=_CHECKSUM_BYTES).digest() != checksum:
            raise TokenFileError(
                f"{source} fails its checksum: the file is truncated or corrupted; "
                "re-encode it from the source scene"
            )
        start = _PREFIX.size
        try:
            header = json.loads(body[start : start + head_len].decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as exc:
            raise TokenFileError(f"{source} has an unreadable header: {exc}") from exc
        try:
            shape, mask_shape = _check_header(header, source)
            pos = start + head_len
            n_idx, n_mask = header["index_nbytes"], header["mask_nbytes"]
            if pos + n_idx + n_mask != len(body):
                raise TokenFileError(f"{source}: section lengths do not add up; the file is corrupted")
            indices = _decode_indices(
                body[pos : pos + n_idx], header["bits_per_index"], shape, header["index_encoding"],
                header.get("index_radices"),
            ).reshape(shape)
            if indices.size and (int(indices.min()) < 0 or int(indices.max()) >= header["codebook_size"]):
                raise TokenFileError(
                    f"{source} holds indices outside the codebook of {header['codebook_size']}: it is corrupted"
                )
            valid = decode_mask(body[pos + n_idx :], mask_shape) if n_mask else None
        except TokenFileError:
            raise
        except (KeyError, TypeError, ValueError, IndexError, OverflowError, MemoryError, ZeroDivisionError) as exc:
            raise TokenFileError(
                f"{source} has an inconsistent header ({type(exc).__name__}: {exc}); the file is corrupted or "
                "was edited: re-encode it from the source scene"
            ) from exc
        return cls(indices=indices, header=header, valid=valid, encoding=header["index_encoding"])

    def save(self, path: str | os.PathLike, overwrite: bool = True) -> Path:
        """Write atomically to ``path``; return the path."""
        return atomic_write_bytes(path, self.to_bytes(), overwrite=overwrite)

    @classmethod
    def load(cls, path: str | os.PathLike) -> TokenFile:
        """Read and verify a token file."""
        path = Path(path)
        if not path.is_file():
            raise TokenFileError(
                f"{path} does not exist or is not a file; give the .eotok file written by encode"
            )
        return cls.from_bytes(path.read_bytes(), source=str(path))


def verify_token_file(path: str | os.PathLike, model_id: str | None = None) -> bool:
    """True when ``path`` is a complete, uncorrupted token file (of ``model_id`` when given)."""
    try:
        tf = TokenFile.load(path)
        if model_id is not None:
            tf.check_model(model_id)
    except FileFormatError:
        return False
    return True
