"""Training tiles for the factorized-prior tokenizer: every training place, standardised per crop.

Scenes are read once (any layout :func:`eocompress.imagery.readers.read_scene` knows), offset removed,
reduced to the model's 12 bands and cached as one ``.npz``; random crops are standardised with their
own band means and scale — exactly what the codec does per file at encode time.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from eocompress.errors import EOCompressError
from eocompress.imagery.readers.bands import S2_L2A_BANDS

#: Lower bound of the per-file scale (DN): keeps flat scenes (water, cloud) from blowing up the noise.
MIN_SCALE = 50.0


def standardise(x: np.ndarray, valid: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray, float]:
    """(x - band means) / scale for (C, H, W) DN; returns (standardised, means, scale)."""
    pix = x.reshape(x.shape[0], -1)
    if valid is not None and valid.any():
        pix = pix[:, valid.reshape(-1)]
    means = pix.mean(axis=1).astype(np.float32)
    scale = float(max(pix.std(axis=1).mean(), MIN_SCALE))
    return ((x - means[:, None, None]) / scale).astype(np.float32), means, scale


def read_dn(path: str | os.PathLike, bands: list[str] | tuple[str, ...] = S2_L2A_BANDS) -> np.ndarray:
    """A scene as float32 DN reflectance x 10000 (offset removed), (len(bands), H, W)."""
    from eocompress.imagery.readers.scenes import read_scene

    scene = read_scene(path, bands=list(bands))
    return scene.data.astype(np.float32) - np.float32(scene.offset)


def build_cache(paths: list[Path], out: str | os.PathLike, min_size: int = 96, log=print) -> Path:
    """Read every training scene once into ``out`` (.npz of float16-safe uint16 arrays)."""
    arrays, names, skipped = {}, [], []
    for i, p in enumerate(paths):
        try:
            x = read_dn(p)
        except EOCompressError as exc:
            skipped.append(f"{p}: {exc}")
            continue
        if min(x.shape[1:]) < min_size:
            skipped.append(f"{p}: smaller than {min_size} px")
            continue
        arrays[f"s{i}"] = np.clip(x, 0, 65535).astype(np.uint16)
        names.append(str(p))
    if not arrays:
        raise EOCompressError(f"no training scene could be read ({len(skipped)} skipped)")
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    np.savez(out, names=np.array(names), **arrays)
    for s in skipped:
        log(f"skipped {s}")
    return out


class RandomCrops(Dataset):
    """Random standardised crops (C, crop, crop) with flips/rotations; area-weighted over scenes."""

    def __init__(self, cache: str | os.PathLike, crop: int, length: int, seed: int = 0) -> None:
        with np.load(cache) as z:
            self.scenes = [z[k] for k in z.files if k != "names"]
        areas = np.array([s.shape[1] * s.shape[2] for s in self.scenes], dtype=np.float64)
        self.p = np.sqrt(areas) / np.sqrt(areas).sum()  # sqrt: small places still get seen
        self.crop, self.length, self.seed = crop, length, seed

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, i: int) -> torch.Tensor:
        rng = np.random.default_rng((self.seed, i))
        s = self.scenes[rng.choice(len(self.scenes), p=self.p)]
        r = rng.integers(0, s.shape[1] - self.crop + 1)
        c = rng.integers(0, s.shape[2] - self.crop + 1)
        x = s[:, r : r + self.crop, c : c + self.crop].astype(np.float32)
        x = np.rot90(x, rng.integers(4), axes=(1, 2))
        if rng.random() < 0.5:
            x = x[:, :, ::-1]
        z, _, _ = standardise(np.ascontiguousarray(x), np.all(x > 0, axis=0))
        return torch.from_numpy(z)
