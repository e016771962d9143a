"""Vector and code files for the CLI: .npy / .npz in, a self-describing codes .npz out.

A codes file holds ``codes`` (uint8), ``codec`` (the codec as a JSON string, so no side file is
needed to decode) and every other array of the input .npz (labels, positions) unchanged.
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np

from eocompress._atomic import atomic_write_bytes
from eocompress.embeddings.codecs.codec import Codec
from eocompress.errors import FileFormatError

CODES_KEY = "codes"
CODEC_KEY = "codec"


def _open(path: Path) -> dict[str, np.ndarray]:
    if not path.is_file():
        raise FileFormatError(f"{path} does not exist")
    try:
        loaded = np.load(path, allow_pickle=False)
    except (ValueError, OSError, EOFError) as exc:
        raise FileFormatError(f"{path} is not a readable .npy/.npz file ({exc})") from exc
    if isinstance(loaded, np.ndarray):
        return {"X": loaded}
    with loaded:
        return {k: loaded[k] for k in loaded.files}


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
    np.savez(buf, **arrays)
    return buf.getvalue()


def write_codes(path: str | Path, codes: np.ndarray, codec: Codec, extra: dict[str, np.ndarray],
                overwrite: bool = False) -> Path:
    """Write codes + codec JSON + passthrough arrays to an .npz, atomically."""
    clash = {CODES_KEY, CODEC_KEY} & set(extra)
    extra = {k: v for k, v in extra.items() if k not in clash}
    blob = _npz_bytes({CODES_KEY: codes, CODEC_KEY: np.array(codec.to_json()), **extra})
    return atomic_write_bytes(path, blob, overwrite=overwrite)


def read_codes(path: str | Path) -> tuple[Codec, np.ndarray, dict[str, np.ndarray]]:
    """(codec, codes, other arrays) from a codes .npz written by :func:`write_codes`."""
    path = Path(path)
    arrays = _open(path)
    if CODES_KEY not in arrays or CODEC_KEY not in arrays:
        raise FileFormatError(f"{path} is not an eocompress codes file (needs '{CODES_KEY}' and '{CODEC_KEY}' arrays)")
    codec = Codec.from_json(str(arrays.pop(CODEC_KEY)))
    return codec, arrays.pop(CODES_KEY), arrays


def write_vectors(path: str | Path, X: np.ndarray, extra: dict[str, np.ndarray], overwrite: bool = False) -> Path:
    """Write decoded vectors as .npy (X only) or .npz (X + passthrough arrays), atomically."""
    path = Path(path)
    if path.suffix == ".npy":
        buf = io.BytesIO()
        np.save(buf, X)
        return atomic_write_bytes(path, buf.getvalue(), overwrite=overwrite)
    if path.suffix != ".npz":
        raise FileFormatError(f"write decoded vectors to a .npy or .npz path, not {path.suffix or 'no suffix'}")
    return atomic_write_bytes(path, _npz_bytes({"X": X, **extra}), overwrite=overwrite)
