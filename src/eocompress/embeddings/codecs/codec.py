"""The Codec: zero or more transforms and one quantizer, built from a spec string.

``Codec.from_spec("pca64,int8").fit(X_train)`` learns every parameter on the training vectors;
``encode`` gives uint8 codes of exactly ``bytes_per_vector`` bytes per vector and ``decode`` gives
float32 vectors in the original space. Encode and decode run in row blocks on a thread pool
(numpy releases the GIL), so memory stays bounded and both cores are used.
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
import os
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

from eocompress._atomic import atomic_path
from eocompress.embeddings.codecs.base import Quantizer, Transform
from eocompress.embeddings.codecs.registry import parse_spec
from eocompress.embeddings.codecs.validation import check_codes, check_vectors, describe_nonfinite
from eocompress.errors import FileFormatError, InputError, NotFittedError, SpecError

FORMAT = "eocompress-codec"
FORMAT_VERSION = 1
_BLOCK_BYTES = 256 << 10  # rows per block so that one float32 block is about 256 KB (stays in L2 cache)


def _n_threads() -> int:
    return max(1, min(8, os.cpu_count() or 1))


class Codec:
    """A fitted embedding codec: ``fit`` / ``encode`` / ``decode`` / ``save`` / ``load``.

    Parameters
    ----------
    spec:
        ``"[transform,...,]quantizer"``, e.g. ``"int8"``, ``"pca64,int8"``, ``"opq16,pq16"``.
    seed:
        Seed for every randomised fit (PCA solver, random projection, PQ k-means).
    """

    def __init__(self, spec: str, seed: int = 0) -> None:
        self.transforms, self.quantizer = parse_spec(spec)
        self.seed = seed
        for stage in [*self.transforms, self.quantizer]:
            if hasattr(stage, "seed"):
                stage.seed = seed
        self.dim: int | None = None

    @classmethod
    def from_spec(cls, spec: str, seed: int = 0) -> Codec:
        """Build an unfitted codec from a spec string (FAISS index-factory style)."""
        return cls(spec, seed=seed)

    # ------------------------------------------------------------------ properties
    @property
    def stages(self) -> list[Transform | Quantizer]:
        return [*self.transforms, self.quantizer]

    @property
    def spec(self) -> str:
        """Canonical spec string."""
        return ",".join(stage.token for stage in self.stages)

    @property
    def is_fitted(self) -> bool:
        return self.dim is not None

    @property
    def code_dim(self) -> int:
        """Dimension of the vectors the quantizer sees (after all transforms)."""
        self._require_fitted()
        dim = self.dim
        for t in self.transforms:
            dim = t.output_dim(dim)
        return dim

    @property
    def bytes_per_vector(self) -> int:
        """Exact stored bytes per vector."""
        return self.quantizer.code_size(self.code_dim)

    @property
    def compression_ratio(self) -> float:
        """Size of float32 vectors divided by the size of their codes."""
        return 4.0 * self.dim / self.bytes_per_vector

    def __repr__(self) -> str:
        if not self.is_fitted:
            return f"Codec({self.spec!r}, unfitted)"
        return f"Codec({self.spec!r}, dim={self.dim}, bytes_per_vector={self.bytes_per_vector})"

    def _require_fitted(self) -> None:
        if self.dim is None:
            raise NotFittedError(f"codec {self.spec!r} is not fitted; call .fit(X_train) before encode/decode")

    # ------------------------------------------------------------------ fitting
    def check_dim(self, dim: int) -> None:
        """Raise a SpecError if this spec cannot be applied to ``dim``-d vectors."""
        for stage in self.transforms:
            stage.check_input_dim(dim)
            dim = stage.output_dim(dim)
        self.quantizer.check_input_dim(dim)

    def min_train_vectors(self, dim: int) -> int:
        """Fewest training vectors this spec needs for ``dim``-d input."""
        need, why = 1, ""
        for stage in self.stages:
            n = stage.min_train_vectors(dim)
            if n > need:
                need, why = n, stage.token
            if isinstance(stage, Transform):
                dim = stage.output_dim(dim)
        self._min_reason = why
        return need

    def fit(self, X: np.ndarray) -> Codec:
        """Learn every parameter from the training vectors ``X`` (N, D) float."""
        X = check_vectors(X, name="training vectors")
        n, dim = X.shape
        self.check_dim(dim)
        need = self.min_train_vectors(dim)
        if n < need:
            raise InputError(
                f"{self.spec} needs at least {need} training vectors ({self._min_reason}) but got {n}; "
                "give more training vectors or choose a smaller reducer / fewer centroids"
            )
        Z = X
        for stage in self.transforms:
            stage.fit(Z)
            Z = np.ascontiguousarray(stage.transform(Z), dtype=np.float32)
        self.quantizer.fit(Z)
        self.dim = dim
        return self

    # ------------------------------------------------------------------ coding
    def _encode_block(self, X: np.ndarray) -> np.ndarray:
        Z = X
        for stage in self.transforms:
            Z = np.ascontiguousarray(stage.transform(Z), dtype=np.float32)
        return self.quantizer.encode(Z)

    def _decode_block(self, codes: np.ndarray) -> np.ndarray:
        Z = self.quantizer.decode(codes)
        for stage in reversed(self.transforms):
            Z = stage.inverse_transform(Z)
        return np.asarray(Z, dtype=np.float32)

    @staticmethod
    def _map_blocks(fn: Callable[[np.ndarray], np.ndarray], arr: np.ndarray, out: np.ndarray,
                    row_bytes: int) -> np.ndarray:
        """Apply ``fn`` to cache-sized row blocks of ``arr`` into ``out``, a few contiguous ranges per thread."""
        rows = max(16, _BLOCK_BYTES // max(row_bytes, 1))
        n = len(arr)

        def run(start: int, stop: int) -> None:
            for s in range(start, stop, rows):
                e = min(s + rows, stop)
                out[s:e] = fn(arr[s:e])

        threads = _n_threads()
        if n <= rows * threads:
            run(0, n)
            return out
        # Few tasks (4 per thread) keep the executor's per-task overhead negligible; inside each task the
        # blocks stay small enough to live in cache between the steps of ``fn``.
        bounds = np.linspace(0, n, 4 * threads + 1).astype(int)
        with ThreadPoolExecutor(threads) as pool:
            list(pool.map(run, bounds[:-1], bounds[1:]))
        return out

    def encode(self, X: np.ndarray, check_finite: bool = True) -> np.ndarray:
        """Encode float vectors (N, D) to uint8 codes (N, bytes_per_vector).

        ``check_finite=False`` skips the NaN/Inf check (as in scipy.linalg) for inputs you trust: it
        is one extra pass over the data, the main cost of the cheapest codecs. NaN then gives
        undefined codes.
        """
        self._require_fitted()
        X = check_vectors(X, dim=self.dim, finite=False)
        out = np.empty((len(X), self.bytes_per_vector), dtype=np.uint8)

        def block(xb: np.ndarray) -> np.ndarray:
            if not np.isfinite(xb).all():
                raise InputError(describe_nonfinite(X))
            return self._encode_block(xb)

        return self._map_blocks(block if check_finite else self._encode_block, X, out, row_bytes=4 * self.dim)

    def decode(self, codes: np.ndarray) -> np.ndarray:
        """Decode uint8 codes (N, bytes_per_vector) to float32 vectors (N, D)."""
        self._require_fitted()
        codes = check_codes(codes, self.bytes_per_vector)
        out = np.empty((len(codes), self.dim), dtype=np.float32)
        return self._map_blocks(self._decode_block, codes, out, row_bytes=4 * self.dim)

    def fit_encode(self, X: np.ndarray) -> np.ndarray:
        """``fit(X)`` then ``encode(X)``."""
        return self.fit(X).encode(X)

    # ------------------------------------------------------------------ state
    def get_state(self) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        """(JSON-able metadata, named arrays) holding everything needed to decode."""
        self._require_fitted()
        meta: dict[str, Any] = {
            "format": FORMAT,
            "version": FORMAT_VERSION,
            "spec": self.spec,
            "seed": self.seed,
            "dim": self.dim,
            "bytes_per_vector": self.bytes_per_vector,
            "stages": [],
        }
        arrays: dict[str, np.ndarray] = {}
        for i, stage in enumerate(self.stages):
            params, stage_arrays = stage.get_state()
            names = {}
            for name, arr in stage_arrays.items():
                key = f"s{i}.{name}"
                arrays[key] = np.ascontiguousarray(arr)
                names[name] = key
            meta["stages"].append({"token": stage.token, "params": params, "arrays": names})
        return meta, arrays

    @classmethod
    def from_state(cls, meta: dict[str, Any], arrays: dict[str, np.ndarray]) -> Codec:
        """Rebuild a fitted codec from :meth:`get_state` output."""
        if meta.get("format") != FORMAT:
            raise FileFormatError("not an eocompress codec (missing format tag); was it written by Codec.save?")
        version = meta.get("version")
        if not isinstance(version, int) or version > FORMAT_VERSION:
            raise FileFormatError(
                f"codec format version {version} is newer than this eocompress understands "
                f"({FORMAT_VERSION}); upgrade eocompress (pip install -U eocompress)"
            )
        try:
            codec = cls(meta["spec"], seed=int(meta.get("seed", 0)))
            if len(meta["stages"]) != len(codec.stages):
                raise KeyError("stages")
            for stage, entry in zip(codec.stages, meta["stages"], strict=True):
                stage_arrays = {name: arrays[key] for name, key in entry["arrays"].items()}
                stage.set_state(entry["params"], stage_arrays)
            codec.dim = int(meta["dim"])
        except (KeyError, TypeError, ValueError, SpecError) as exc:
            raise FileFormatError(f"codec parameters are incomplete or inconsistent ({exc}); file damaged") from exc
        if codec.bytes_per_vector != meta.get("bytes_per_vector"):
            raise FileFormatError("codec parameters disagree with their declared code size; the file is damaged")
        return codec

    # ------------------------------------------------------------------ JSON string (for file metadata)
    def to_json(self) -> str:
        """A self-contained JSON string (arrays base64-encoded) to embed in Parquet/Zarr/GeoTIFF metadata."""
        meta, arrays = self.get_state()
        meta = dict(meta)
        meta["arrays_b64"] = {
            key: {"dtype": arr.dtype.str, "shape": list(arr.shape), "data": base64.b64encode(arr.tobytes()).decode()}
            for key, arr in arrays.items()
        }
        return json.dumps(meta)

    @classmethod
    def from_json(cls, text: str | bytes) -> Codec:
        """Inverse of :meth:`to_json`."""
        try:
            meta = json.loads(text)
            arrays = {
                key: np.frombuffer(base64.b64decode(v["data"]), dtype=np.dtype(v["dtype"])).reshape(v["shape"]).copy()
                for key, v in meta.pop("arrays_b64").items()
            }
        except (ValueError, KeyError, TypeError) as exc:
            raise FileFormatError(f"codec JSON is truncated or malformed ({exc})") from exc
        return cls.from_state(meta, arrays)

    # ------------------------------------------------------------------ files
    @staticmethod
    def arrays_path(path: str | os.PathLike) -> Path:
        """The ``.npz`` file holding a saved codec's arrays: ``codec.json`` -> ``codec.npz``."""
        return Path(path).with_suffix(".npz")

    def save(self, path: str | os.PathLike, overwrite: bool = True) -> Path:
        """Write ``path`` (JSON parameters) and its sibling ``.npz`` (arrays), atomically; no pickle."""
        path = Path(path)
        if path.suffix != ".json":
            raise SpecError(f"save a codec to a .json path (its arrays go beside it as .npz); got {path}")
        meta, arrays = self.get_state()
        buf = io.BytesIO()
        np.savez(buf, **arrays)
        blob = buf.getvalue()
        meta["arrays_file"] = self.arrays_path(path).name
        meta["arrays_sha256"] = hashlib.sha256(blob).hexdigest()
        with atomic_path(self.arrays_path(path), overwrite=overwrite) as tmp:
            tmp.write_bytes(blob)
        with atomic_path(path, overwrite=overwrite) as tmp:
            tmp.write_text(json.dumps(meta, indent=1))
        return path

    @classmethod
    def load(cls, path: str | os.PathLike) -> Codec:
        """Read a codec written by :meth:`save`, checking its version and the sha256 of its arrays."""
        path = Path(path)
        if not path.is_file():
            raise FileFormatError(f"codec file {path} does not exist; write one with Codec.save or `eocompress encode`")
        try:
            meta = json.loads(path.read_text())
        except (ValueError, UnicodeDecodeError) as exc:
            raise FileFormatError(f"{path} is truncated or not a codec JSON file ({exc})") from exc
        if not isinstance(meta, dict) or meta.get("format") != FORMAT:
            raise FileFormatError(f"{path} is not an eocompress codec file (no '{FORMAT}' tag)")
        arrays_file = path.parent / meta.get("arrays_file", cls.arrays_path(path).name)
        if not arrays_file.is_file():
            raise FileFormatError(f"{path}: its arrays file {arrays_file.name} is missing; copy it beside the JSON")
        blob = arrays_file.read_bytes()
        if hashlib.sha256(blob).hexdigest() != meta.get("arrays_sha256"):
            raise FileFormatError(
                f"{arrays_file} does not match the checksum recorded in {path.name}: it was truncated or modified"
            )
        try:
            with np.load(io.BytesIO(blob), allow_pickle=False) as npz:
                arrays = {k: npz[k] for k in npz.files}
        except (ValueError, OSError) as exc:
            raise FileFormatError(f"{arrays_file} cannot be read ({exc})") from exc
        return cls.from_state(meta, arrays)
