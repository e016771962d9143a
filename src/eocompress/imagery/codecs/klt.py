"""KLT + JPEG 2000 anchor: a per-scene spectral PCA, then the components as one JPEG 2000 codestream.

JPEG 2000 Part 2 style: the band means (uint16), an orthonormal basis (float16, C x k), one common scale
and the component lows travel in the file's side information — counted in its size — so squared error
in component units is squared DN error and JPEG 2000's rate allocation minimises the DN error.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from eocompress.errors import FileFormatError, InputError
from eocompress.imagery.codecs.base import DEFAULT_BANDS, register, select_bands, target_size
from eocompress.imagery.codecs.container import AnchorFile
from eocompress.imagery.codecs.jpeg2000 import j2k_at_size, j2k_decode
from eocompress.imagery.evaluation.fidelity import squared_dn_error
from eocompress.imagery.readers.scenes import Scene


@dataclass
class KLTBasis:
    """Per-file spectral KLT: band means (uint16 DN), orthonormal basis (float16, C x k), common scale, lows."""

    mean: np.ndarray
    basis: np.ndarray
    scale: float
    lows: np.ndarray

    def to_bytes(self) -> bytes:
        """Side information: k (1), scale (4), means (2 C), basis (2 C k), component lows (4 k)."""
        k = self.basis.shape[1]
        return (struct.pack("<Bf", k, self.scale) + self.mean.astype("<u2").tobytes()
                + self.basis.astype("<f2").tobytes() + self.lows.astype("<i4").tobytes())

    @classmethod
    def from_bytes(cls, side: bytes, bands: int) -> KLTBasis:
        """Parse :meth:`to_bytes`."""
        try:
            k, scale = struct.unpack_from("<Bf", side, 0)
            pos = 5
            mean = np.frombuffer(side, "<u2", bands, pos).astype(np.uint16)
            pos += 2 * bands
            basis = np.frombuffer(side, "<f2", bands * k, pos).reshape(bands, k).astype(np.float16)
            pos += 2 * bands * k
            lows = np.frombuffer(side, "<i4", k, pos).astype(np.int32)
        except (struct.error, ValueError) as exc:
            raise FileFormatError(f"KLT side information is damaged ({exc})") from exc
        return cls(mean, basis, float(scale), lows)


#: Steps the widest component spans in a 16-bit plane (a little headroom under 65535).
TOP = 65000.0


def rescaled(planes: np.ndarray, klt: KLTBasis, factor: float) -> tuple[np.ndarray, KLTBasis]:
    """Planes scaled by ``factor`` (< 1: coarser, for a coder to fill a byte budget exactly) and the KLT that
    decodes them: the factor goes into the stored scale and lows, so a decoder needs nothing new."""
    scale = float(np.float32(klt.scale * factor))
    lows = np.rint(klt.lows * (scale / klt.scale))
    values = np.rint((planes.astype(np.float64) + klt.lows[:, None, None]) * (scale / klt.scale))
    small = np.clip(values - lows[:, None, None], 0, 65535).astype(np.uint16)
    return small, KLTBasis(klt.mean, klt.basis, scale, lows.astype(np.int32))


def klt_side_bytes(bands: int, components: int) -> int:
    """Bytes of the side information of a KLT with ``components`` of ``bands``."""
    return 1 + 4 + 2 * bands + 2 * bands * components + 4 * components


def klt_forward(data: np.ndarray, components: int, valid: np.ndarray | None = None) -> tuple[np.ndarray, KLTBasis]:
    """Project the DN stack on its first ``components`` principal axes (PCA across bands, fitted on valid pixels).

    Returns uint16 component planes (k, H, W) with one common scale (65000 over the widest component span)
    and the basis quantised as it is stored.
    """
    ((_, planes, klt),) = klt_forward_each(data, (components,), valid)
    return planes, klt


def klt_forward_each(data: np.ndarray, choices: Sequence[int], valid: np.ndarray | None = None,
                     fit_pixels: int | None = None, top: float = TOP) -> Iterator[tuple[int, np.ndarray, KLTBasis]]:
    """(k, planes, basis) of :func:`klt_forward` for each component count in ``choices``, one fit for all.

    The axes are fitted once (float64 covariance) and the stack projected once on the most components
    (float32: integer DN and a float16 basis need no more), so trying several counts costs one PCA.
    ``fit_pixels``: fit the means and axes on at most that many pixels, evenly strided (a 12 x 12 covariance is
    settled long before a million pixels; the fast layer's encode spent a third of its time there).
    ``top``: the widest kept component spans this many steps (:data:`TOP` for 16-bit coders; 12-bit for AV1).
    """
    data = np.asarray(data)
    if data.ndim != 3 or data.dtype != np.uint16:
        raise InputError(f"the KLT takes uint16 (C, H, W) band stacks, got {data.dtype} {data.shape}")
    c, h, w = data.shape
    x = data.reshape(c, -1)
    fit = x[:, valid.ravel()] if valid is not None and valid.any() else x
    if fit_pixels is not None and fit.shape[1] > fit_pixels:
        fit = fit[:, :: -(-fit.shape[1] // fit_pixels)]
    mean = np.round(fit.mean(axis=1, dtype=np.float64)).clip(0, 65535).astype(np.uint16)
    centred = fit.astype(np.float64) - mean[:, None]
    cov = centred @ centred.T / max(1, centred.shape[1] - 1)
    del centred
    vals, vecs = np.linalg.eigh(cov)
    axes = vecs[:, np.argsort(vals)[::-1][: max(choices)]].astype(np.float16)
    centred_x = x.astype(np.float32)
    centred_x -= mean[:, None].astype(np.float32)
    y = axes.astype(np.float32).T @ centred_x
    del centred_x
    spans = np.ptp(y, axis=1) if y.size else np.ones(len(axes.T), np.float32)
    most: tuple[float, np.ndarray, np.ndarray] | None = None  # (scale, planes, lows) of all the components
    for k in choices:
        scale = float(np.float32(top / max(float(np.max(spans[:k])), 1e-6)))
        if most is not None and most[0] == scale:  # the widest component is among the first k: their planes
            yield k, most[1][:k], KLTBasis(mean, axes[:, :k], scale, most[2][:k])
            continue
        planes, lows = _quantised(y[:k], scale)
        planes = planes.reshape(k, h, w)
        if k == y.shape[0]:
            most = scale, planes, lows
        yield k, planes, KLTBasis(mean, axes[:, :k], scale, lows)


def _quantised(y: np.ndarray, scale: float) -> tuple[np.ndarray, np.ndarray]:
    """(uint16 (k, N) planes, int32 (k,) lows) of float32 components ``y`` (k, N) at ``scale``: each component
    rounded to whole steps and shifted by its lowest step (in place in one float32 copy: the values are whole
    numbers under 2^24, so the float32 subtraction is exact)."""
    ys = y * np.float32(scale)
    np.round(ys, out=ys)
    lows = ys.min(axis=1).astype(np.int32) if ys.size else np.zeros(ys.shape[0], np.int32)
    ys -= lows[:, None].astype(np.float32)
    np.clip(ys, 0, 65535, out=ys)
    return ys.astype(np.uint16), lows


def klt_inverse(planes: np.ndarray, klt: KLTBasis) -> np.ndarray:
    """DN stack (C, H, W) uint16 from decoded component planes and the stored basis."""
    _, h, w = planes.shape
    return klt_inverse_values(planes, klt).astype(np.uint16).reshape(-1, h, w)


def klt_inverse_values(planes: np.ndarray, klt: KLTBasis) -> np.ndarray:
    """float32 (C, H*W) of :func:`klt_inverse` before its cast: whole numbers 0..65535 (exact in float32).

    One float32 matmul: the scale folded into the basis, the lows and means into one term per band. A caller
    that adds to the DNs (the enhancement layer) goes on in float32 without another integer copy.
    """
    k = planes.shape[0]
    basis = klt.basis.astype(np.float64)
    gain = (basis / klt.scale).astype(np.float32)
    bias = (basis @ (klt.lows / klt.scale) + klt.mean).astype(np.float32)
    x = gain @ planes.reshape(k, -1).astype(np.float32)
    x += bias[:, None]
    return np.clip(np.rint(x, out=x), 0, 65535, out=x)


def component_choices(bands: int, budget: int) -> tuple[int, ...]:
    """Components tried: all when the side information is under 5 % of the budget, else 6, 4, 3, 2 that fit."""
    if klt_side_bytes(bands, bands) <= 0.05 * budget:
        return (bands,)
    kept = tuple(k for k in (6, 4, 3, 2) if k < bands and klt_side_bytes(bands, k) <= 0.4 * budget)
    return kept or (1,)


class KltJpeg2000Codec:
    """Per-scene spectral KLT, then JPEG 2000 of the components; the kept count is chosen by squared error.

    The component counts tried (:meth:`_choices`), the coder (:meth:`_code`, :meth:`_planes`) and the planes' range
    (:attr:`top`) are hooks, so that a KLT anchor with another coder (``klt_av1``) shares the rest.
    """

    name = "klt+jpeg2000"
    #: Steps the widest kept component spans in the coded planes.
    top = TOP

    def __init__(self, bands: list[str] | None = None, components: int | None = None) -> None:
        self.bands = list(bands or DEFAULT_BANDS)
        self.components = components
        self.last_encodes = 0
        self.last_components = 0

    def _choices(self, bands: int, target: int) -> tuple[int, ...]:
        """Component counts tried for a whole file of ``target`` bytes."""
        return component_choices(bands, target)

    def _code(self, planes: np.ndarray, klt: KLTBasis, room: int,
              stats: dict[str, Any]) -> tuple[bytes, KLTBasis] | None:
        """(codestream of ``planes`` within ``room`` bytes, the KLT it decodes with), or None when none fits."""
        stream = j2k_at_size(planes, room, stats)
        return None if stream is None else (stream, klt)

    def _planes(self, stream: bytes, components: int) -> np.ndarray:
        """uint16 (k, H, W) planes of a codestream; one line when it does not hold ``components``."""
        planes = j2k_decode(stream)
        if planes.shape[0] != components:
            raise FileFormatError(f"codestream holds {planes.shape[0]} components, the header {components}")
        return planes

    def encode(self, scene: Scene, *, ratio: float | None = None, target_bytes: int | None = None) -> bytes:
        """The whole file with the smallest squared DN error among the component counts that fit the target."""
        scene = select_bands(scene, self.bands, self.name)
        target = target_size(scene, len(self.bands), ratio, target_bytes)
        c = len(self.bands)
        choices = (self.components,) if self.components else self._choices(c, target)
        best, best_err, stats = None, np.inf, {"encodes": 0}
        for k, planes, klt in klt_forward_each(scene.data, choices, scene.valid, top=self.top):
            head = AnchorFile(self.name, scene.offset, scene.crs, scene.transform, side=klt.to_bytes())
            got = self._code(planes, klt, target - len(head.header()), stats)
            if got is None:
                continue
            err = squared_dn_error(scene.data, klt_inverse(self._planes(got[0], k), got[1]))
            if err < best_err:
                head.stream, head.side = got[0], got[1].to_bytes()
                best, best_err, self.last_components = head.to_bytes(), err, k
        self.last_encodes = int(stats["encodes"])
        if best is None:
            raise InputError(f"{self.name} cannot fit {target} bytes for a {scene.shape[0]}x{scene.shape[1]} scene "
                             f"(side information alone is {klt_side_bytes(c, min(choices))} B); ask for a larger size")
        return best

    def decode(self, blob: bytes) -> tuple[np.ndarray, dict[str, Any]]:
        """uint16 (C, H, W) in the input's DN convention and its georeference."""
        f = AnchorFile.from_bytes(blob, self.name)
        klt = KLTBasis.from_bytes(f.side, len(self.bands))
        planes = self._planes(f.stream, klt.basis.shape[1])
        return klt_inverse(planes, klt), f.georef(self.bands, planes.shape)

    def describe(self) -> dict[str, Any]:
        """Name and settings."""
        return {"name": self.name, "bands": self.bands, "transform": "per-scene PCA across bands (float16 basis)",
                "components": self.components or "chosen per file by squared error",
                "spatial": "JPEG 2000 (see jpeg2000)", "header": "anchor file: georeference, DN offset, KLT basis"}


register("klt+jpeg2000", KltJpeg2000Codec)
