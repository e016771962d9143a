"""Training tiles for the factorized-prior tokenizer: every training place, standardised per crop.

Scenes are read once (any layout :func:`eocompress.imagery.readers.read_scene` knows), offset removed,
reduced to the model's 12 bands and cached as one ``.npz``; random crops are standardised with their
own band means and scale by :func:`~eocompress.imagery.tokenizer.standardise.standardise`, the function
the codec's encoder calls per file: training sees exactly what encoding feeds the model.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from eocompress._atomic import atomic_path
from eocompress.errors import EOCompressError, InputError
from eocompress.imagery.readers.bands import S2_L2A_BANDS
from eocompress.imagery.tokenizer.augment import bright_layer
from eocompress.imagery.tokenizer.spectral import crop_klt
from eocompress.imagery.tokenizer.standardise import (  # the encoder's own (rounded as the header stores)
    apply_standardise,
    standardise,
)


def read_dn(path: str | os.PathLike, bands: list[str] | tuple[str, ...] = S2_L2A_BANDS) -> np.ndarray:
    """A scene as float32 DN reflectance x 10000 (offset removed), (len(bands), H, W)."""
    from eocompress.imagery.readers.scenes import read_scene

    scene = read_scene(path, bands=list(bands))
    return scene.data.astype(np.float32) - np.float32(scene.offset)


def _unusable(x: np.ndarray, min_size: int) -> str | None:
    """Why a scene (C, H, W) of DN cannot train the codec, or None: too small, no valid pixel, or constant."""
    if min(x.shape[1:]) < min_size:
        return f"smaller than {min_size} px"
    valid = np.all(x > 0, axis=0)
    if not valid.any():
        return "no valid pixel (every pixel has a band at 0, the nodata value)"
    if float(x[:, valid].std(axis=1, dtype=np.float64).max()) < 1.0:
        return "every band is constant (spread below 1 DN): nothing to learn"
    return None


def read_training_scenes(
    paths: list[Path], min_size: int = 96, log: Callable[[str], None] = print
) -> dict[str, np.ndarray]:
    """Every usable training scene as uint16 DN (offset removed), keyed ``s<i>``, plus ``names``; nothing written.

    Scenes that cannot be read or cannot train (too small, all nodata, constant) are skipped with one line
    each; when none is left, one :class:`InputError` line names why and what to give instead.
    """
    arrays: dict[str, np.ndarray] = {}
    names, skipped = [], []
    for i, p in enumerate(paths):
        try:
            x = read_dn(p)
        except EOCompressError as exc:
            skipped.append(f"{p}: {exc}")
            continue
        reason = _unusable(x, min_size)
        if reason:
            skipped.append(f"{p}: {reason}")
            continue
        arrays[f"s{i}"] = np.clip(x, 0, 65535).astype(np.uint16)
        names.append(str(p))
    if not arrays:
        if not paths:
            raise InputError("no Sentinel-2 scene found in the data given; give scene files or folders of scenes")
        why = "; ".join(skipped[:3]) + (f"; and {len(skipped) - 3} more" if len(skipped) > 3 else "")
        raise InputError(
            f"no usable training scene ({len(skipped)} skipped: {why}); give scenes with valid, varying pixels"
        )
    for s in skipped:
        log(f"skipped {s}")
    arrays["names"] = np.array(names)
    return arrays


def write_cache(arrays: dict[str, np.ndarray], out: str | os.PathLike) -> Path:
    """Save :func:`read_training_scenes`' arrays as the ``.npz`` cache (atomically)."""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(out) as tmp, open(tmp, "wb") as fh:
        np.savez(fh, **arrays)  # type: ignore[arg-type]  # numpy's stub reads **arrays as allow_pickle
    return out


class RandomCrops(Dataset):
    """Random standardised crops (C, crop, crop) with flips/rotations; area-weighted over scenes.

    ``spectral="klt"``: each crop is handed over as its components under its own KLT (:mod:`spectral`), as
    the codec of such a model hands over a scene's. ``bright``: the share of crops overlaid with a synthetic
    cloud, haze or snow layer (:func:`~eocompress.imagery.tokenizer.augment.bright_layer`).
    """

    def __init__(self, cache: str | os.PathLike, crop: int, length: int, seed: int = 0, start: int = 0,
                 spectral: str = "bands", bright: float = 0.0) -> None:
        # ``start``: item i is the (start + i)-th crop of the seeded sequence, so a run resumed at step k
        # (start = k x batch) sees the crops an uninterrupted run would have seen.
        with np.load(cache) as z:
            self.scenes = [z[k] for k in z.files if k != "names"]
        if not self.scenes:
            raise InputError(f"{cache} holds no training scene; delete it and train again with scenes")
        small = [s.shape[1:] for s in self.scenes if min(s.shape[1:]) < crop]
        if small:
            raise InputError(
                f"{cache} holds scenes of {small[0][0]}x{small[0][1]} px, smaller than --crop {crop}; "
                "use a smaller --crop or delete the cache to read the scenes again"
            )
        areas = np.array([s.shape[1] * s.shape[2] for s in self.scenes], dtype=np.float64)
        self.p = np.sqrt(areas) / np.sqrt(areas).sum()  # sqrt: small places still get seen
        self.crop, self.length, self.seed, self.start = crop, length, seed, start
        self.klt = spectral == "klt"
        self.bright = float(bright)  # share of crops under a synthetic cloud, haze or snow layer (:mod:`augment`)

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, i: int) -> torch.Tensor:
        rng = np.random.default_rng((self.seed, self.start + i))
        s = self.scenes[rng.choice(len(self.scenes), p=self.p)]
        r = rng.integers(0, s.shape[1] - self.crop + 1)
        c = rng.integers(0, s.shape[2] - self.crop + 1)
        x = s[:, r : r + self.crop, c : c + self.crop].astype(np.float32)
        x = np.rot90(x, int(rng.integers(4)), axes=(1, 2))
        if rng.random() < 0.5:
            x = x[:, :, ::-1]
        valid = np.all(x > 0, axis=0)
        if self.bright and rng.random() < self.bright:
            x = bright_layer(x, rng)
        x = np.ascontiguousarray(x)
        z, means, scale = standardise(x, valid)
        if not valid.all():  # a pixel 0 in some bands only: its other bands, as the encoder hands them over
            z = apply_standardise(x, means, scale, valid, band_zeros=True)
        if self.klt:
            z = crop_klt(z, valid if valid.any() else None)
        return torch.from_numpy(z)
