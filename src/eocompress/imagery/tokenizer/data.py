"""Training data: scenes split by area, per-band statistics on valid training pixels, seeded patch sampling.

Each training scene is cut into a training strip (top rows) and a validation strip (bottom rows);
patches never cross the line, so validation pixels never overlap training pixels. Whole scenes can be
held out as well. Cloud and nodata pixels are left out of the statistics and carry zero loss weight.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from eocompress.errors import InputError
from eocompress.imagery.readers.scenes import Scene, read_scene

#: Minimum share of valid pixels for a patch to be sampled.
MIN_VALID_SHARE = 0.5


@dataclass
class Area:
    """A window of one scene with its role: ``train`` or ``val``."""

    scene: str
    rows: tuple[int, int]
    cols: tuple[int, int]
    role: str

    def to_dict(self) -> dict:
        """JSON form (stored in the model config)."""
        return {"scene": self.scene, "rows": list(self.rows), "cols": list(self.cols), "role": self.role}


@dataclass
class AreaArrays:
    """The reflectance (C, h, w) float32 and valid mask (h, w) of one area."""

    area: Area
    x: np.ndarray
    valid: np.ndarray


def display_path(path: str | os.PathLike) -> str:
    """Path relative to $EOCOMPRESS_DATA when under it (portable in configs), else as given."""
    path = Path(path).resolve()
    root = os.environ.get("EOCOMPRESS_DATA")
    if root:
        try:
            return str(path.relative_to(Path(root).resolve()))
        except ValueError:
            pass
    return str(path)


def split_scene(scene_id: str, height: int, width: int, val_fraction: float, tile: int) -> list[Area]:
    """Top rows for training, bottom ``val_fraction`` of rows (whole tiles) for validation."""
    if not 0 <= val_fraction < 1:
        raise InputError(f"val_fraction must be in [0, 1), got {val_fraction}")
    if height < tile or width < tile:
        raise InputError(
            f"scene {scene_id} is {height}x{width}, smaller than the training tile {tile}; use larger "
            "scenes or a smaller tile_size"
        )
    val_rows = round(height * val_fraction / tile) * tile if val_fraction else 0
    split = height - val_rows
    areas = []
    if split >= tile:
        areas.append(Area(scene_id, (0, split), (0, width), "train"))
    if val_rows:
        areas.append(Area(scene_id, (split, height), (0, width), "val"))
    return areas


def load_areas(
    scenes: dict[str, Scene], areas: list[Area], bands: list[str]
) -> tuple[list[AreaArrays], list[AreaArrays]]:
    """Reflectance and masks of each area, split into (train, val) lists."""
    train, val = [], []
    for area in areas:
        scene = scenes[area.scene].select(bands)
        (r0, r1), (c0, c1) = area.rows, area.cols
        x = scene.reflectance()[:, r0:r1, c0:c1]
        valid = scene.valid[r0:r1, c0:c1].copy()
        (train if area.role == "train" else val).append(AreaArrays(area, np.ascontiguousarray(x), valid))
    return train, val


def band_statistics(areas: list[AreaArrays]) -> dict[str, list[float]]:
    """Per-band mean and std of reflectance over the valid pixels of the training areas."""
    count, total, total_sq = 0, None, None
    for a in areas:
        px = a.x[:, a.valid].astype(np.float64)
        if px.size == 0:
            continue
        count += px.shape[1]
        total = px.sum(axis=1) if total is None else total + px.sum(axis=1)
        total_sq = (px**2).sum(axis=1) if total_sq is None else total_sq + (px**2).sum(axis=1)
    if count == 0:
        raise InputError(
            "the training areas hold no valid pixel (all nodata or cloud-masked); give scenes with "
            "clear pixels (--data)"
        )
    mean = total / count
    std = np.sqrt(np.maximum(total_sq / count - mean**2, 1e-12))
    return {"mean": [float(v) for v in mean], "std": [float(max(v, 1e-4)) for v in std]}


def _patch_origins(a: AreaArrays, tile: int, stride: int) -> list[tuple[int, int]]:
    h, w = a.valid.shape
    out = []
    for r in range(0, h - tile + 1, stride):
        for c in range(0, w - tile + 1, stride):
            if a.valid[r : r + tile, c : c + tile].mean() >= MIN_VALID_SHARE:
                out.append((r, c))
    return out


class RandomPatches(Dataset):
    """``length`` random tiles from the training areas; item i is fixed by (seed, i), so runs repeat.

    Returns (x reflectance (C, t, t), valid mask (1, t, t)). Random flips/90° rotations augment.
    """

    def __init__(
        self, areas: list[AreaArrays], tile: int, length: int, seed: int = 0, augment: bool = True, start: int = 0
    ):
        # ``start``: item i is the (start + i)-th tile of the seeded sequence, so a run resumed at step k
        # (start = k x batch) sees the tiles an uninterrupted run would have seen.
        self.areas, self.tile, self.length, self.seed, self.augment = areas, tile, length, seed, augment
        self.start = start
        self.origins = [_patch_origins(a, tile, max(1, tile // 8)) for a in areas]
        weights = np.array([len(o) for o in self.origins], dtype=np.float64)
        if weights.sum() == 0:
            raise InputError(
                f"no {tile}x{tile} training patch has >= {MIN_VALID_SHARE:.0%} valid pixels; give clearer "
                "scenes or a smaller tile_size"
            )
        # Areas weighted by the square root of their patch count: big scenes dominate less.
        self.weights = np.sqrt(weights) / np.sqrt(weights).sum()

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        rng = np.random.default_rng([self.seed, self.start + i])
        k = int(rng.choice(len(self.areas), p=self.weights))
        r, c = self.origins[k][int(rng.integers(len(self.origins[k])))]
        r = min(r + int(rng.integers(0, max(1, self.tile // 8))), self.areas[k].valid.shape[0] - self.tile)
        c = min(c + int(rng.integers(0, max(1, self.tile // 8))), self.areas[k].valid.shape[1] - self.tile)
        x = self.areas[k].x[:, r : r + self.tile, c : c + self.tile]
        m = self.areas[k].valid[None, r : r + self.tile, c : c + self.tile]
        if self.augment:
            rot, flip = int(rng.integers(4)), bool(rng.integers(2))
            x, m = np.rot90(x, rot, axes=(1, 2)), np.rot90(m, rot, axes=(1, 2))
            if flip:
                x, m = x[:, :, ::-1], m[:, :, ::-1]
        return torch.from_numpy(np.ascontiguousarray(x)), torch.from_numpy(np.ascontiguousarray(m))


class GridPatches(Dataset):
    """Non-overlapping tiles of the validation areas (at most ``limit``, evenly spread), fixed order."""

    def __init__(self, areas: list[AreaArrays], tile: int, limit: int | None = None):
        items = [(k, r, c) for k, a in enumerate(areas) for r, c in _patch_origins(a, tile, tile)]
        if limit is not None and len(items) > limit:
            items = [items[int(i)] for i in np.linspace(0, len(items) - 1, limit).round()]
        self.areas, self.tile, self.items = areas, tile, items

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        k, r, c = self.items[i]
        x = self.areas[k].x[:, r : r + self.tile, c : c + self.tile]
        m = self.areas[k].valid[None, r : r + self.tile, c : c + self.tile]
        return torch.from_numpy(np.ascontiguousarray(x)), torch.from_numpy(np.ascontiguousarray(m))


def read_training_scenes(paths: list[str | os.PathLike], bands: list[str]) -> dict[str, Scene]:
    """Read each scene (or every scene under a folder) that has the model's bands, keyed by display path."""
    import warnings

    from eocompress.errors import EOCompressError
    from eocompress.imagery.readers.scenes import find_scenes

    scenes: dict[str, Scene] = {}
    skipped: list[str] = []
    for p in paths:
        for found in find_scenes(p):
            try:
                scene = read_scene(found)
            except EOCompressError as exc:  # one unreadable file never stops training on the rest
                skipped.append(str(exc))
                continue
            if not set(bands) <= set(scene.bands):
                continue
            scenes[display_path(found)] = scene
    if skipped:
        warnings.warn(f"skipped {len(skipped)} unreadable scene(s): {'; '.join(skipped[:3])}", stacklevel=2)
    if not scenes:
        what = f" ({len(skipped)} could not be read)" if skipped else ""
        raise InputError(
            f"no Sentinel-2 scene with the bands {', '.join(bands)} under {', '.join(map(str, paths))}{what}; "
            "give band folders, SAFE products or stacked GeoTIFFs with --data"
        )
    return scenes
