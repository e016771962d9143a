"""The Codec: zero or more transforms and one quantizer, built from a spec string.

``Codec("pca64,int8").fit(X_train)`` learns every parameter on the training vectors; ``encode``
gives uint8 codes of exactly ``bytes_per_vector`` bytes per vector and ``decode`` gives float32
vectors in the original space. A Codec is a scikit-learn transformer (``clone``, ``Pipeline``,
``get_params``), and takes numpy, dask (kept lazy) and xarray (coordinates kept) arrays.
Encode and decode run in cache-sized row blocks on a thread pool (numpy releases the GIL).
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any, overload

import numpy as np
from sklearn.base import BaseEstimator, TransformerMixin

from eocompress._atomic import atomic_path, check_output_path
from eocompress.embeddings.codecs import arrays as xa
from eocompress.embeddings.codecs._blocks import (
    DECODE_BLOCK_BYTES,
    TRANSFORM_DECODE_BLOCK_BYTES,
    faiss_threads,
    map_blocks,
)
from eocompress.embeddings.codecs.base import Quantizer, Transform
from eocompress.embeddings.codecs.registry import parse_spec, spec_of
from eocompress.embeddings.codecs.validation import (
    check_codes,
    check_vectors,
    describe_out_of_range,
    in_range,
)
from eocompress.errors import EOCompressError, FileFormatError, InputError, NotFittedError, SpecError

if TYPE_CHECKING:
    import dask.array
    import xarray

FORMAT = "eocompress-codec"
#: 2 adds the ``sha256`` of the parameters themselves; version 1 files (no checksum) still load
FORMAT_VERSION = 2
OUTPUTS = ("decoded", "codes")
_ARRAY_KINDS = "fiub"
#: rows per block of :meth:`Codec.range_report`
_REPORT_ROWS = 1 << 14


def canonical_sha256(meta: dict[str, Any]) -> str:
    """sha256 of a metadata dict without its own ``sha256`` key, in a canonical JSON form."""
    body = {k: v for k, v in meta.items() if k != "sha256"}
    text = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    return hashlib.sha256(text.encode()).hexdigest()


class _OutOfRange(Exception):
    """Raised inside a block when values exceed a stage's safe range; turned into an InputError with positions."""

    def __init__(self, stage: int) -> None:
        super().__init__(stage)
        self.stage = stage


class Codec(TransformerMixin, BaseEstimator):
    """An embedding codec: ``fit`` / ``encode`` / ``decode`` / ``save`` / ``load``; a scikit-learn transformer.

    Parameters
    ----------
    spec:
        ``"[transform,...,]quantizer"``, e.g. ``"int8"``, ``"pca64,int8"``, ``"opq16,pq16"``.
    seed:
        Seed for every randomised fit (PCA solver, random projection, PQ k-means, training samples).
    output:
        What :meth:`transform` returns: ``"decoded"`` (encode then decode: float32 vectors as a
        reader of the codes sees them, the default) or ``"codes"`` (the uint8 codes; then
        :meth:`inverse_transform` decodes them).
    """

    def __init__(self, spec: str = "int8", seed: int = 0, output: str = "decoded") -> None:
        transforms, quantizer = parse_spec(spec)
        canonical = spec_of(transforms, quantizer)
        # keep the very object when it is already canonical, so sklearn.clone's identity check holds
        self.spec = spec if spec == canonical else canonical
        self.seed = seed
        self.output = output
        if output not in OUTPUTS:
            raise SpecError(f"output={output!r} is not one of {OUTPUTS}: 'decoded' (float vectors) or 'codes' (uint8)")
        self._build(transforms, quantizer)

    def _build(self, transforms: list[Transform], quantizer: Quantizer) -> None:
        self.transforms, self.quantizer = transforms, quantizer
        for stage in self.stages:
            if hasattr(stage, "seed"):
                stage.seed = self.seed
        self.dim: int | None = None
        self._limits: list[tuple[float, str]] = []

    def set_params(self, **params: object) -> Codec:
        """scikit-learn's ``set_params``; a new spec or seed gives fresh, unfitted stages."""
        super().set_params(**params)
        Codec.__init__(self, self.spec, self.seed, self.output)
        return self

    @classmethod
    def from_spec(cls, spec: str, seed: int = 0) -> Codec:
        """Build an unfitted codec from a spec string (FAISS index-factory style)."""
        return cls(spec, seed=seed)

    # ------------------------------------------------------------------ properties
    @property
    def stages(self) -> list[Transform | Quantizer]:
        return [*self.transforms, self.quantizer]

    @property
    def is_fitted(self) -> bool:
        return self.dim is not None

    def __sklearn_is_fitted__(self) -> bool:
        return self.is_fitted

    @property
    def code_dim(self) -> int:
        """Dimension of the vectors the quantizer sees (after all transforms)."""
        self._require_fitted()
        dim = self.fitted_dim
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
        return 4.0 * self.fitted_dim / self.bytes_per_vector

    def __repr__(self, N_CHAR_MAX: int = 700) -> str:
        if not self.is_fitted:
            return f"Codec({self.spec!r}, unfitted)"
        return f"Codec({self.spec!r}, dim={self.dim}, bytes_per_vector={self.bytes_per_vector})"

    def _require_fitted(self) -> None:
        if self.dim is None:
            raise NotFittedError(f"codec {self.spec!r} is not fitted; call .fit(X_train) before encode/decode")

    @property
    def fitted_dim(self) -> int:
        """The input dimension of a fitted codec (NotFittedError before fit)."""
        if self.dim is None:
            raise NotFittedError(f"codec {self.spec!r} is not fitted; call .fit(X_train) before encode/decode")
        return self.dim

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

    def _set_limits(self) -> None:
        """The safe input range of every stage (see Stage.max_abs), for the checks in fit and encode."""
        self._limits, dim = [], self.fitted_dim
        for stage in self.stages:
            self._limits.append((stage.max_abs(dim), stage.limit_reason(dim)))
            if isinstance(stage, Transform):
                dim = stage.output_dim(dim)

    def _out_of_range_error(self, X: np.ndarray, stage: int) -> InputError:
        """An InputError counting and locating the values that stage ``stage`` cannot take."""
        Z, name = X, "vectors"
        with np.errstate(all="ignore"):
            for t in self.transforms[:stage]:
                Z = np.asarray(t.transform(Z), dtype=np.float32)
        if stage:
            name = f"vectors after {','.join(t.token for t in self.transforms[:stage])}"
        limit, why = self._limits[stage]
        return InputError(describe_out_of_range(Z, limit, why, name=name))

    def _fit_stage(self, stage: Transform | Quantizer, Z: np.ndarray) -> None:
        try:
            with np.errstate(all="ignore"):
                stage.fit(Z)
        except EOCompressError:
            raise
        except (ValueError, ArithmeticError, np.linalg.LinAlgError, RuntimeError) as exc:
            raise InputError(
                f"{stage.token} could not be fitted on these training vectors ({type(exc).__name__}: {exc}); "
                "check that they vary (not constant) and are of a sensible scale, or choose another codec"
            ) from exc
        for name in stage.array_attrs:
            arr = np.asarray(getattr(stage, name))
            if arr.dtype.kind == "f" and not np.isfinite(arr).all():
                raise InputError(
                    f"fitting {stage.token} gave non-finite parameters ({name}): the training vectors are "
                    "degenerate (constant or nearly so) or too large; rescale them or choose another codec"
                )

    def fit(self, X: xa.Rows, y: object = None) -> Codec:
        """Learn every parameter from the training vectors ``X`` (N, D) float; ``y`` is ignored (scikit-learn).

        Costly stages fit on a seeded sample of at most ``Stage.fit_sample`` rows (25,000); the
        stages after them see every row (e.g. ``pca64,int8``'s ranges come from all of ``X``).
        """
        X = check_vectors(xa.as_rows(X), name="training vectors")
        n, dim = X.shape
        self._build(*parse_spec(self.spec))  # a refit starts from fresh stages
        self.check_dim(dim)
        need = self.min_train_vectors(dim)
        if n < need:
            raise InputError(
                f"{self.spec} needs at least {need} training vectors ({self._min_reason}) but got {n}; "
                "give more training vectors or choose a smaller reducer / fewer centroids"
            )
        self.dim = dim
        self._set_limits()
        rng = np.random.default_rng(self.seed)
        try:
            Z = X
            for i, stage in enumerate(self.stages):
                limit = self._limits[i][0]
                if not in_range(Z, limit):
                    raise self._out_of_range_error(X, i)
                cap = stage.fit_sample
                rows = Z if cap is None or len(Z) <= cap else Z[np.sort(rng.choice(len(Z), cap, replace=False))]
                self._fit_stage(stage, rows)
                if isinstance(stage, Transform):
                    with np.errstate(all="ignore"):
                        Z = np.ascontiguousarray(stage.transform(Z), dtype=np.float32)
        except BaseException:
            self.dim = None
            raise
        return self

    # ------------------------------------------------------------------ coding
    def _encode_block(self, X: np.ndarray, out: np.ndarray, check: bool = True) -> None:
        if check and not in_range(X, self._limits[0][0]):
            raise _OutOfRange(0)
        Z = X
        for i, stage in enumerate(self.transforms, start=1):
            Z = np.ascontiguousarray(stage.transform(Z), dtype=np.float32)
            if check and not in_range(Z, self._limits[i][0]):
                raise _OutOfRange(i)
        out[...] = self.quantizer.encode(Z)

    def _decode_block(self, codes: np.ndarray, out: np.ndarray) -> None:
        with faiss_threads():  # a pool worker already: faiss kernels run single-threaded in it
            if not self.transforms:
                self.quantizer.decode_into(codes, out)
                return
            Z = self.quantizer.decode(codes)
        for stage in reversed(self.transforms[1:]):
            Z = stage.inverse_transform(Z)
        self.transforms[0].inverse_transform_into(Z, out)

    @overload
    def encode(self, X: np.ndarray, check_finite: bool = True) -> np.ndarray: ...
    @overload
    def encode(self, X: xarray.DataArray, check_finite: bool = True) -> xarray.DataArray: ...
    @overload
    def encode(self, X: dask.array.Array, check_finite: bool = True) -> dask.array.Array: ...
    def encode(self, X: xa.Vectors, check_finite: bool = True) -> xa.Vectors:
        """Encode float vectors (N, D) to uint8 codes (N, bytes_per_vector).

        Values that are NaN, infinite or too large for a stage to code without overflow are
        refused with their count and position. ``check_finite=False`` skips that check (as in
        scipy.linalg) for inputs you trust; bad values then give undefined codes. dask arrays stay
        lazy; a DataArray keeps its other coordinates, its last dimension becoming ``code_byte``.
        """
        self._require_fitted()
        if xa.is_xarray(X) or xa.is_dask(X):
            return xa.apply_rows(X, lambda r: self.encode(r, check_finite), self.bytes_per_vector, np.uint8,
                                 out_dim=xa.CODE_DIM, feature_attr=xa.FEATURE_DIM_ATTR)
        X = check_vectors(X, dim=self.dim, finite=False)
        out = np.empty((len(X), self.bytes_per_vector), dtype=np.uint8)
        try:
            return map_blocks(lambda xb, ob: self._encode_block(xb, ob, check_finite), X, out,
                              row_bytes=4 * self.fitted_dim)
        except _OutOfRange as exc:
            raise self._out_of_range_error(X, exc.stage) from None

    @overload
    def decode(self, codes: np.ndarray) -> np.ndarray: ...
    @overload
    def decode(self, codes: xarray.DataArray) -> xarray.DataArray: ...
    @overload
    def decode(self, codes: dask.array.Array) -> dask.array.Array: ...
    def decode(self, codes: xa.Vectors) -> xa.Vectors:
        """Decode uint8 codes (N, bytes_per_vector) to float32 vectors (N, D); dask stays lazy, xarray keeps coords."""
        self._require_fitted()
        if xa.is_xarray(codes) or xa.is_dask(codes):
            return xa.apply_rows(codes, self.decode, self.fitted_dim, np.float32, out_dim=xa.decoded_dim_name(codes))
        codes = check_codes(codes, self.bytes_per_vector)
        out = np.empty((len(codes), self.fitted_dim), dtype=np.float32)
        self.quantizer.prepare_decode(len(codes))  # faiss loaded here, not by the pool's threads
        if not self.transforms and self.quantizer.decodes_in_parallel:
            self.quantizer.decode_into(codes, out)  # a compiled kernel with its own threads
            return out
        block = TRANSFORM_DECODE_BLOCK_BYTES if self.transforms else DECODE_BLOCK_BYTES
        return map_blocks(self._decode_block, codes, out, row_bytes=4 * self.fitted_dim, block_bytes=block)

    @overload
    def reconstruct(self, X: np.ndarray) -> np.ndarray: ...
    @overload
    def reconstruct(self, X: xarray.DataArray) -> xarray.DataArray: ...
    @overload
    def reconstruct(self, X: dask.array.Array) -> dask.array.Array: ...
    def reconstruct(self, X: xa.Vectors) -> xa.Vectors:
        """``decode(encode(X))`` block by block (no full-size codes in memory): what a reader of the codes gets."""
        self._require_fitted()
        if xa.is_xarray(X) or xa.is_dask(X):
            return xa.apply_rows(X, self.reconstruct, self.fitted_dim, np.float32)
        X = check_vectors(X, dim=self.dim, finite=False)
        out = np.empty_like(X)
        self.quantizer.prepare_decode(len(X))

        def block(xb: np.ndarray, ob: np.ndarray) -> None:
            codes = np.empty((len(xb), self.bytes_per_vector), dtype=np.uint8)
            self._encode_block(xb, codes)
            self._decode_block(codes, ob)

        try:
            return map_blocks(block, X, out, row_bytes=4 * self.fitted_dim)
        except _OutOfRange as exc:
            raise self._out_of_range_error(X, exc.stage) from None

    # ------------------------------------------------------------------ ranges
    def quantizer_input(self, X: xa.Rows) -> np.ndarray:
        """The float32 vectors the quantizer codes: ``X`` (N, D) through every transform."""
        self._require_fitted()
        Z = check_vectors(xa.as_rows(X), dim=self.dim, finite=False)
        with np.errstate(all="ignore"):
            for stage in self.transforms:
                Z = np.ascontiguousarray(stage.transform(Z), dtype=np.float32)
        return Z

    def range_report(self, X: xa.Rows) -> dict[str, Any] | None:
        """How ``X`` fits the quantizer's coded range: per-dimension min/max and the values it clips.

        ``{"min", "max"}`` (arrays over the quantizer's input dims, ``±inf`` for no rows), ``"values"``
        (how many were coded), ``"clipped"`` (values more than half a step outside the range, whose error
        therefore exceeds the half step every value inside keeps to) and ``"worst_steps"`` (the largest
        such error in quantization steps). None when the quantizer has no range (pq, tc, binary, float).
        """
        bounds = self.quantizer.coded_range()
        if bounds is None:
            return None
        X = check_vectors(xa.as_rows(X), dim=self.dim, finite=False)
        low, high, step = (np.asarray(b, np.float32) for b in bounds)
        lo = np.full(len(low), np.inf, np.float32)
        hi = -lo
        report: dict[str, Any] = {"min": lo, "max": hi, "values": 0, "clipped": 0, "worst_steps": 0.0}
        for s in range(0, len(X), _REPORT_ROWS):  # row blocks: a few MB of temporaries per block
            Z = self.quantizer_input(X[s : s + _REPORT_ROWS])
            np.minimum(lo, Z.min(axis=0), out=lo)
            np.maximum(hi, Z.max(axis=0), out=hi)
            with np.errstate(all="ignore"):
                excess = np.maximum(low - Z, Z - high) / step  # > 0.5: beyond half a step outside the range
            clipped = excess > 0.5
            report["values"] += int(Z.size)
            if clipped.any():
                report["clipped"] += int(clipped.sum())
                report["worst_steps"] = max(report["worst_steps"], float(excess.max()))
        return report

    def widen_range(self, lo: np.ndarray, hi: np.ndarray) -> bool:
        """Grow the quantizer's fitted range to ``[lo, hi]`` (its input's min/max over more data); False if fixed.

        What :meth:`fit` on the whole input would give when the transforms were fitted on a sample of it:
        ``compress`` fits on a pixel sample, then widens the ranges to the whole field so nothing is clipped.
        """
        self._require_fitted()
        return self.quantizer.widen_range(np.asarray(lo, np.float32), np.asarray(hi, np.float32))

    def transform(self, X: xa.Vectors) -> xa.Vectors:
        """scikit-learn transform: ``reconstruct(X)`` (output="decoded") or ``encode(X)`` (output="codes")."""
        return self.encode(X) if self.output == "codes" else self.reconstruct(X)

    def inverse_transform(self, X: xa.Vectors) -> xa.Vectors:
        """Back to the original space: decodes codes (output="codes"); decoded vectors are returned as they are."""
        if self.output == "codes":
            return self.decode(X)
        self._require_fitted()
        if xa.is_xarray(X) or xa.is_dask(X):
            return X
        return check_vectors(X, dim=self.dim, finite=False)

    def fit_encode(self, X: xa.Vectors) -> xa.Vectors:
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

    @staticmethod
    def _check_header(meta: object, where: str = "codec") -> dict[str, Any]:
        if not isinstance(meta, dict) or meta.get("format") != FORMAT:
            raise FileFormatError(
                f"{where} is not an eocompress codec (no '{FORMAT}' tag); was it written by Codec.save?"
            )
        version = meta.get("version")
        if not isinstance(version, int) or isinstance(version, bool) or version < 1:
            raise FileFormatError(f"{where} has no valid format version ({version!r}); the file is damaged")
        if version > FORMAT_VERSION:
            raise FileFormatError(
                f"codec format version {version} is newer than this eocompress understands "
                f"({FORMAT_VERSION}); upgrade eocompress (pip install -U eocompress)"
            )
        return meta

    @staticmethod
    def _check_sha256(meta: dict[str, Any], where: str) -> None:
        """Version 2+ metadata carries the sha256 of its canonical JSON: any changed digit is caught."""
        if meta["version"] >= 2 and meta.get("sha256") != canonical_sha256(meta):
            raise FileFormatError(
                f"{where}: the codec parameters do not match their checksum; they were modified or damaged "
                "(re-create the file from the original codec)"
            )

    @classmethod
    def from_state(cls, meta: dict[str, Any], arrays: dict[str, np.ndarray]) -> Codec:
        """Rebuild a fitted codec from :meth:`get_state` output, checking that it is consistent and decodes."""
        meta = cls._check_header(meta)
        try:
            spec, seed, dim = meta["spec"], meta.get("seed", 0), meta["dim"]
            if not isinstance(spec, str) or not isinstance(seed, int) or not isinstance(dim, int):
                raise TypeError("spec, seed or dim has the wrong type")
            codec = cls(spec, seed=seed)
            entries = meta["stages"]
            if not isinstance(entries, list) or len(entries) != len(codec.stages):
                raise ValueError("wrong number of stages")
            d = dim
            for stage, entry in zip(codec.stages, entries, strict=True):
                if entry["token"] != stage.token:
                    raise ValueError(f"stage {entry['token']!r} does not match the spec's {stage.token!r}")
                stage_arrays = {name: arrays[key] for name, key in entry["arrays"].items()}
                stage.set_state(entry["params"], stage_arrays)
                if stage.input_dim != d:
                    raise ValueError(f"{stage.token} takes {stage.input_dim}-d input but receives {d}-d")
                if isinstance(stage, Transform):
                    d = stage.output_dim(d)
            codec.dim = dim
            codec._set_limits()
            bpv = codec.bytes_per_vector
        except (KeyError, TypeError, ValueError, AttributeError, IndexError, OverflowError) as exc:
            raise FileFormatError(f"codec parameters are incomplete or inconsistent ({exc}); file damaged") from exc
        if bpv != meta.get("bytes_per_vector"):
            raise FileFormatError("codec parameters disagree with their declared code size; the file is damaged")
        codec._probe_decode()
        return codec

    def _probe_decode(self) -> None:
        """Decode two probe codes; parameters that cannot decode them to finite vectors are damaged."""
        probe = np.zeros((2, self.bytes_per_vector), dtype=np.uint8)
        if self.quantizer.kind not in ("float32", "float16"):  # all-ones bytes are NaN in IEEE floats
            probe[1] = 255
        try:
            with np.errstate(all="ignore"):
                out = self.decode(probe)
        except Exception as exc:  # any failure of a damaged codec is reported as damage, never raised raw
            raise FileFormatError(
                f"codec parameters cannot decode ({type(exc).__name__}: {exc}); the codec data is damaged"
            ) from exc
        if out.shape != (2, self.dim) or not np.isfinite(out).all():
            raise FileFormatError("codec parameters decode to non-finite values; the codec data is damaged")

    # ------------------------------------------------------------------ JSON string (for file metadata)
    def to_json(self) -> str:
        """A self-contained, checksummed JSON string (arrays base64-encoded) for Parquet/Zarr/GeoTIFF metadata."""
        meta, arrays = self.get_state()
        meta = dict(meta)
        meta["arrays_b64"] = {
            key: {"dtype": arr.dtype.str, "shape": list(arr.shape), "data": base64.b64encode(arr.tobytes()).decode()}
            for key, arr in arrays.items()
        }
        meta["sha256"] = canonical_sha256(meta)
        return json.dumps(meta)

    @classmethod
    def from_json(cls, text: str | bytes) -> Codec:
        """Inverse of :meth:`to_json`; a damaged or modified string raises FileFormatError, nothing else."""
        try:
            meta = json.loads(text)
        except (ValueError, TypeError, RecursionError) as exc:
            raise FileFormatError(f"codec JSON is truncated or malformed ({exc})") from exc
        meta = cls._check_header(meta, "codec JSON")
        cls._check_sha256(meta, "codec JSON")
        try:
            arrays = {}
            for key, v in meta.pop("arrays_b64").items():
                dtype = np.dtype(v["dtype"])
                if dtype.kind not in _ARRAY_KINDS:
                    raise TypeError(f"array dtype {dtype} is not numeric")
                raw = base64.b64decode(v["data"], validate=True)
                arrays[key] = np.frombuffer(raw, dtype=dtype).reshape(v["shape"]).copy()
        except (ValueError, KeyError, TypeError, AttributeError, OverflowError) as exc:
            raise FileFormatError(f"codec JSON is truncated or malformed ({exc})") from exc
        return cls.from_state(meta, arrays)

    # ------------------------------------------------------------------ files
    @staticmethod
    def arrays_path(path: str | os.PathLike) -> Path:
        """The ``.npz`` file holding a saved codec's arrays: ``codec.json`` -> ``codec.npz``."""
        return Path(path).with_suffix(".npz")

    def save(self, path: str | os.PathLike, overwrite: bool = True) -> Path:
        """Write ``path`` (JSON parameters) and its sibling ``.npz`` (arrays), atomically; no pickle.

        With ``overwrite=False`` neither file is written when either exists.
        """
        path = Path(path)
        if path.suffix != ".json":
            raise SpecError(f"save a codec to a .json path (its arrays go beside it as .npz); got {path}")
        for target in (path, self.arrays_path(path)):
            check_output_path(target, overwrite=overwrite)
        meta, arrays = self.get_state()
        buf = io.BytesIO()
        np.savez(buf, allow_pickle=False, **arrays)
        blob = buf.getvalue()
        meta["arrays_file"] = self.arrays_path(path).name
        meta["arrays_sha256"] = hashlib.sha256(blob).hexdigest()
        meta["sha256"] = canonical_sha256(meta)
        with atomic_path(self.arrays_path(path), overwrite=overwrite) as tmp:
            tmp.write_bytes(blob)
        with atomic_path(path, overwrite=overwrite) as tmp:
            tmp.write_text(json.dumps(meta, indent=1))
        return path

    @classmethod
    def load(cls, path: str | os.PathLike) -> Codec:
        """Read a codec written by :meth:`save`, checking its version, its own sha256 and that of its arrays."""
        import zipfile

        path = Path(path)
        if not path.is_file():
            raise FileFormatError(f"codec file {path} does not exist; write one with Codec.save or `eocompress encode`")
        try:
            meta = json.loads(path.read_bytes())
        except (ValueError, UnicodeDecodeError, RecursionError, OSError) as exc:
            raise FileFormatError(f"{path} is truncated or not a codec JSON file ({exc})") from exc
        meta = cls._check_header(meta, str(path))
        cls._check_sha256(meta, str(path))
        name = meta.get("arrays_file", cls.arrays_path(path).name)
        if not isinstance(name, str) or not name or Path(name).name != name:
            raise FileFormatError(f"{path}: its arrays file name {name!r} is not a plain file name; file damaged")
        arrays_file = path.parent / name
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
        except (ValueError, OSError, EOFError, KeyError, zipfile.BadZipFile) as exc:
            raise FileFormatError(f"{arrays_file} cannot be read ({exc})") from exc
        return cls.from_state(meta, arrays)
