"""Vector and code files for the CLI: .npy / .npz in, a self-describing codes .npz out.

A codes file holds ``codes`` (uint8), ``codec`` (the codec as a JSON string, so no side file is
needed to decode), every other array of the input .npz (labels, positions) unchanged, and
``sha256``: a checksum over all of them, so a flipped byte anywhere is an error, not a wrong decode.
"""

from __future__ import annotations

import hashlib
import io
import zipfile
import zlib
from pathlib import Path

import numpy as np

from eocompress._atomic import atomic_write_bytes, output_lock
from eocompress.embeddings.codecs.codec import Codec
from eocompress.errors import FileFormatError, InputError

CODES_KEY = "codes"
CODEC_KEY = "codec"
CHECKSUM_KEY = "sha256"


def _open(path: Path) -> dict[str, np.ndarray]:
    if not path.is_file():
        raise FileFormatError(f"{path} does not exist")
    try:
        loaded = np.load(path, allow_pickle=False)
        if isinstance(loaded, np.ndarray):
            return {"X": loaded}
        with loaded:
            return {k: loaded[k] for k in loaded.files}
    except (ValueError, OSError, EOFError, KeyError, IndexError, UnicodeDecodeError, zipfile.BadZipFile,
            zlib.error, NotImplementedError) as exc:
        raise FileFormatError(f"{path} is not a readable .npy/.npz file ({type(exc).__name__}: {exc})") from exc


def load_vectors(path: str | Path) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """(X, other arrays) from a .npy (the array is X) or an .npz with an ``X`` array (or a single array)."""
    path = Path(path)
    arrays = _open(path)
    if "X" not in arrays:
        if len(arrays) != 1:
            raise FileFormatError(f"{path} has no 'X' array (found {sorted(arrays)}); store the vectors as X")
        arrays = {"X": next(iter(arrays.values()))}
    X = arrays.pop("X")
    return X, arrays


def _npz_bytes(arrays: dict[str, np.ndarray]) -> bytes:
    buf = io.BytesIO()
    np.savez(buf, allow_pickle=False, **arrays)
    return buf.getvalue()


def arrays_sha256(arrays: dict[str, np.ndarray]) -> str:
    """sha256 over every array's name, dtype, shape and bytes (in name order)."""
    h = hashlib.sha256()
    for key in sorted(arrays):
        arr = np.ascontiguousarray(arrays[key])
        h.update(f"{key}|{arr.dtype.str}|{arr.shape}|".encode())
        h.update(arr.tobytes())
    return h.hexdigest()


def check_reserved(extra: dict[str, np.ndarray], source: str | Path = "the input") -> None:
    """Refuse passthrough arrays named like the entries of a codes file (they would be lost or clash)."""
    clash = sorted({CODES_KEY, CODEC_KEY, CHECKSUM_KEY} & set(extra))
    if clash:
        raise InputError(
            f"{source} holds arrays named {', '.join(repr(k) for k in clash)}, which a codes file reserves for "
            "itself; rename them in the .npz (e.g. to 'orig_codes') and encode again"
        )


def check_codes_decodable(codes: np.ndarray, codec: Codec, probe: int = 2048) -> None:
    """Refuse codes whose decoded values would be infinite or NaN (inputs near the float32 limits)."""
    rows = np.ascontiguousarray(codes[:: max(1, len(codes) // probe)][:probe])
    if not len(rows):
        return
    with np.errstate(all="ignore"):
        decoded = codec.decode(rows)
    bad = ~np.isfinite(np.asarray(decoded))
    if bad.any():
        raise InputError(
            f"with codec {codec.spec!r}, {int(bad.sum())} of {bad.size} probed decoded values would be infinite "
            "or NaN (the vectors are near the float32 limit); rescale them (e.g. divide by 1e30) or use int8"
        )


def write_codes(path: str | Path, codes: np.ndarray, codec: Codec, extra: dict[str, np.ndarray],
                overwrite: bool = False) -> Path:
    """Write codes + codec JSON + passthrough arrays to an .npz, atomically, as the only writer of ``path``.

    Passthrough arrays named ``codes``, ``codec`` or ``sha256`` are refused, as are codes that decode to
    non-finite values.
    """
    check_reserved(extra)
    check_codes_decodable(codes, codec)
    arrays = {CODES_KEY: codes, CODEC_KEY: np.array(codec.to_json()), **extra}
    blob = _npz_bytes({**arrays, CHECKSUM_KEY: np.array(arrays_sha256(arrays))})
    with output_lock(path):
        return atomic_write_bytes(path, blob, overwrite=overwrite)


def read_codes(path: str | Path, verify: bool = True) -> tuple[Codec, np.ndarray, dict[str, np.ndarray]]:
    """(codec, codes, other arrays) from a codes .npz written by :func:`write_codes`, its checksum verified.

    A file without its ``sha256`` entry is refused unless ``verify=False`` (``decode --no-verify``),
    which also skips the comparison.
    """
    path = Path(path)
    arrays = _open(path)
    if CODES_KEY not in arrays or CODEC_KEY not in arrays:
        raise FileFormatError(f"{path} is not an eocompress codes file (needs '{CODES_KEY}' and '{CODEC_KEY}' arrays)")
    recorded = arrays.pop(CHECKSUM_KEY, None)
    if verify and recorded is None:
        raise FileFormatError(
            f"{path} has no '{CHECKSUM_KEY}' entry, so damage cannot be detected; re-encode the vectors, or pass "
            "--no-verify to decode it unchecked"
        )
    if verify and recorded is not None and (recorded.shape != () or str(recorded) != arrays_sha256(arrays)):
        raise FileFormatError(f"{path} does not match its checksum: it was modified or damaged")
    codec_json = arrays.pop(CODEC_KEY)
    if codec_json.shape != () or codec_json.dtype.kind != "U":
        raise FileFormatError(f"{path}: its '{CODEC_KEY}' entry is not a codec JSON string; the file is damaged")
    codec = Codec.from_json(str(codec_json))
    codes = arrays.pop(CODES_KEY)
    if codes.dtype != np.uint8 or codes.ndim != 2 or codes.shape[1] != codec.bytes_per_vector:
        raise FileFormatError(
            f"{path}: its codes ({codes.dtype}, shape {codes.shape}) do not fit its codec "
            f"({codec.bytes_per_vector} B/vector); the file is damaged"
        )
    return codec, codes, arrays


def write_vectors(path: str | Path, X: np.ndarray, extra: dict[str, np.ndarray], overwrite: bool = False) -> Path:
    """Write decoded vectors as .npy (X only) or .npz (X + passthrough arrays), atomically."""
    path = Path(path)
    if path.suffix == ".npy":
        buf = io.BytesIO()
        np.save(buf, X)
        with output_lock(path):
            return atomic_write_bytes(path, buf.getvalue(), overwrite=overwrite)
    if path.suffix != ".npz":
        raise FileFormatError(f"write decoded vectors to a .npy or .npz path, not {path.suffix or 'no suffix'}")
    with output_lock(path):
        return atomic_write_bytes(path, _npz_bytes({"X": X, **extra}), overwrite=overwrite)
