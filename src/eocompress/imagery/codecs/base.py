"""The one imagery codec interface and its registry by name.

Every codec — ours and the classical anchors — turns a :class:`~eocompress.imagery.readers.scenes.Scene`
into the bytes of one whole file and back::

    codec = get_codec("jpeg2000")
    blob = codec.encode(scene, target_bytes=35_490)   # or ratio=450 (raw uint16 of the codec's bands / 450)
    dn, georef = codec.decode(blob)                    # uint16 (C, H, W), {"crs", "transform", "bands", "offset", …}
    codec.describe()                                   # {"name": "jpeg2000", …parameters}

A rate target is a ceiling on the whole file: the encoder returns the largest (best) file it finds that is
not larger. ``georef["offset"]`` is the DN offset present in the returned array, so metrics are computed
on ``clip(DN - offset, 0, 10000)`` for both sides (:func:`to_input_convention` aligns a decode with its input).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any, Protocol, runtime_checkable

import numpy as np

from eocompress.errors import InputError
from eocompress.imagery.readers.bands import S2_L2A_BANDS
from eocompress.imagery.readers.scenes import Scene

#: The rate ``imagery encode`` uses when none is given: whole file at most raw uint16 / 450.
DEFAULT_RATIO = 450.0
#: Georeference and DN convention of a decoded array: crs (text or None), transform (6 floats or None),
#: bands (names), offset (DN offset present in the array), height, width.
Georef = dict[str, Any]


@runtime_checkable
class SceneCodec(Protocol):
    """A codec of Sentinel-2 scenes to whole-file bytes (what ``imagery evaluate`` and the benchmark measure)."""

    name: str
    bands: list[str]

    def encode(self, scene: Scene, *, ratio: float | None = None, target_bytes: int | None = None) -> bytes:
        """Bytes of one whole file of ``scene``, at most ``target_bytes`` (or raw uint16 / ``ratio``; default 1/450)."""
        ...

    def decode(self, blob: bytes) -> tuple[np.ndarray, Georef]:
        """uint16 (C, H, W) and the georeference dict of a file made by :meth:`encode`."""
        ...

    def describe(self) -> dict[str, Any]:
        """Name and parameters, JSON-ready (what a report prints about the codec)."""
        ...


_REGISTRY: dict[str, Callable[..., SceneCodec]] = {}


def register(name: str, factory: Callable[..., SceneCodec]) -> None:
    """Register ``factory(**options)`` under ``name`` (one codec per name)."""
    _REGISTRY[name] = factory


def codec_names() -> list[str]:
    """Names ``get_codec`` accepts, in registration order."""
    return list(_REGISTRY)


def get_codec(name: str, **options: Any) -> SceneCodec:
    """The codec registered as ``name``, built with ``options`` (e.g. ``model=``, ``device=``)."""
    if name not in _REGISTRY:
        raise InputError(f"unknown imagery codec {name!r}; choose one of: {', '.join(_REGISTRY)}")
    return _REGISTRY[name](**options)


# --------------------------------------------------------------------------- shared helpers


def select_bands(scene: Scene, bands: list[str], codec: str) -> Scene:
    """``scene`` reduced to ``bands`` (in that order), or one line naming the missing ones."""
    missing = [b for b in bands if b not in scene.bands]
    if missing:
        raise InputError(
            f"the scene lacks band(s) {', '.join(missing)}; {codec} codes {', '.join(bands)} "
            f"(it has {', '.join(scene.bands) or 'none'})"
        )
    return scene.select(bands)


def target_size(scene: Scene, bands: int, ratio: float | None, target_bytes: int | None) -> int:
    """The whole-file byte ceiling from ``target_bytes`` or ``ratio`` (raw uint16 of ``bands`` bands / ratio).

    With neither, :data:`DEFAULT_RATIO` (what ``imagery encode`` uses).
    """
    if ratio is not None and target_bytes is not None:
        raise InputError("give exactly one of ratio= or target_bytes=")
    if ratio is None and target_bytes is None:
        ratio = DEFAULT_RATIO
    if target_bytes is not None:
        if int(target_bytes) < 1:
            raise InputError(f"target_bytes must be a positive number of bytes, got {target_bytes}")
        return int(target_bytes)
    if not (ratio and math.isfinite(ratio) and ratio > 1):
        raise InputError(f"ratio must be a number > 1 (e.g. 450), got {ratio}")
    return int(bands * scene.shape[0] * scene.shape[1] * 2 // ratio)


def largest_under(build: Callable[[float], bytes], target: int, lo: float, hi: float, steps: int,
                  grows: bool = True) -> bytes | None:
    """Search of a quality knob in [lo, hi]: the largest ``build(knob)`` not over ``target`` bytes.

    ``grows``: the size grows with the knob (True) or shrinks (False). Bisection, with the midpoint
    moved to where log(size) interpolates to the target (regula falsi; every third step a plain
    midpoint, so it never stalls). None when even the smallest setting is over ``target``. Stops early
    once a file within 1 % under the target is found.
    """
    small, big = (lo, hi) if grows else (hi, lo)
    best = build(small)
    if len(best) > target:
        return None
    top = build(big)
    if len(top) <= target:
        return top
    n_small, n_big = len(best), len(top)
    for step in range(steps):  # invariant: build(small) fits, build(big) does not
        frac = 0.5
        if step % 3 != 2 and n_big > n_small > 0:
            frac = (math.log(0.997 * target) - math.log(n_small)) / (math.log(n_big) - math.log(n_small))
            frac = min(0.9, max(0.1, frac))
        mid = small + frac * (big - small)
        blob = build(mid)
        if len(blob) <= target:
            small, n_small = mid, len(blob)
            if len(blob) > len(best):
                best = blob
            if len(best) >= 0.99 * target:
                break
        else:
            big, n_big = mid, len(blob)
    return best


def to_input_convention(recon: np.ndarray, georef: Georef, offset: int) -> np.ndarray:
    """A decoded array moved to the input's DN offset ``offset`` (nodata 0 stays 0)."""
    shift = int(offset) - int(georef.get("offset", 0) or 0)
    if shift == 0:
        return recon
    out = np.clip(recon.astype(np.int64) + shift, 0, 65535).astype(np.uint16)
    out[recon == 0] = 0
    return out


DEFAULT_BANDS = list(S2_L2A_BANDS)
