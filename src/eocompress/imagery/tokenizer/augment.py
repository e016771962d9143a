"""Synthetic bright layers for training crops: cloud, haze and snow the training places hardly have.

Of the 34 training scenes, none has more than a trace of pixels brighter than 0.6 in B02: every cloudy
and snowy scene of ``../shared`` is held out, so the codec met thick cloud and snow only at test time
and lost most there. A share of the training crops is therefore overlaid with one of three layers, each
a smooth fractal opacity map (sums of upsampled noise, as in procedural cloud generators) times a
spectrum drawn around published top-of-atmosphere reflectances:

- ``cloud``: thick cumulus, flat from B01 to B8A (0.35-0.9), lower in B09 (water vapour above the
  cloud is thin, so less absorbed than over land) and in the SWIR (B11 ~0.7x, B12 ~0.45x the visible),
  with its own texture and a shadow displaced beside it;
- ``haze``: the cloud spectrum at 5-35 % opacity over the whole crop;
- ``snow``: bright visible (0.7-0.95) falling through the red edge and NIR, dark SWIR (B11/B12 0.02-0.15).

Values are reflectance x 10000 (the cache holds DN with any offset removed); nodata (0) stays 0.
"""

from __future__ import annotations

import numpy as np
from scipy.ndimage import zoom

from eocompress.imagery.readers.bands import S2_L2A_BANDS

#: Kinds of layer and how often each is drawn.
KINDS = {"cloud": 0.5, "haze": 0.25, "snow": 0.25}
#: Relative spectra (B01 ... B12 in :data:`S2_L2A_BANDS` order), scaled by a drawn brightness.
CLOUD = np.array([1.0, 1.0, 0.98, 0.97, 0.98, 0.99, 0.99, 0.98, 0.98, 0.55, 0.70, 0.45], np.float32)
SNOW = np.array([1.0, 1.0, 0.98, 0.95, 0.92, 0.88, 0.85, 0.82, 0.78, 0.40, 0.10, 0.07], np.float32)


def fractal_noise(shape: tuple[int, int], rng: np.random.Generator, octaves: int = 4) -> np.ndarray:
    """Smooth noise in [0, 1] of ``shape``: octaves of bilinearly upsampled random grids, coarse ones weighted most."""
    h, w = shape
    out = np.zeros(shape, np.float32)
    weight = 1.0
    for k in range(octaves):
        cells = 2 + 2**k
        grid = rng.random((cells, cells)).astype(np.float32)
        up = zoom(grid, (h / cells, w / cells), order=1, mode="nearest", grid_mode=True)
        out += weight * up[:h, :w]
        weight *= 0.5
    out -= out.min()
    return out / max(float(out.max()), 1e-6)


def bright_layer(x: np.ndarray, rng: np.random.Generator, kind: str | None = None) -> np.ndarray:
    """``x`` (12, H, W) float32 reflectance x 10000 under a synthetic cloud, haze or snow layer (drawn by ``rng``)."""
    if x.shape[0] != len(S2_L2A_BANDS):
        raise ValueError(f"bright layers are defined for the 12 bands {', '.join(S2_L2A_BANDS)}, got {x.shape[0]}")
    kind = kind or str(rng.choice(list(KINDS), p=list(KINDS.values())))
    shape = x.shape[1:]
    jitter = rng.uniform(0.93, 1.07, len(S2_L2A_BANDS)).astype(np.float32)
    if kind == "snow":
        spectrum = SNOW * jitter * np.float32(rng.uniform(7000, 9500))
        alpha = np.clip((fractal_noise(shape, rng) - rng.uniform(0.1, 0.6)) * rng.uniform(4, 12), 0, 1)
        texture = 0.8 + 0.2 * fractal_noise(shape, rng, octaves=5)  # terrain shading, drifts
        layer = spectrum[:, None, None] * texture
    else:
        spectrum = CLOUD * jitter * np.float32(rng.uniform(3500, 9000))
        texture = 0.7 + 0.3 * fractal_noise(shape, rng, octaves=5)
        layer = spectrum[:, None, None] * texture
        if kind == "haze":
            alpha = np.full(shape, rng.uniform(0.05, 0.35), np.float32) * (0.6 + 0.4 * fractal_noise(shape, rng))
        else:
            m = max(shape) // 6  # the shadow falls up to m px beside the cloud: both cut from one larger map
            big = np.clip((fractal_noise((shape[0] + 2 * m, shape[1] + 2 * m), rng) - rng.uniform(0.3, 0.7))
                          * rng.uniform(3, 10), 0, 1)
            dy, dx = (int(v) for v in rng.integers(0, 2 * m + 1, 2))
            alpha = big[m : m + shape[0], m : m + shape[1]]
            shadow = big[dy : dy + shape[0], dx : dx + shape[1]]
            x = x * (1 - rng.uniform(0.3, 0.7) * shadow * (1 - alpha))[None]
    out = x * (1 - alpha[None]) + layer * alpha[None]
    out[x == 0] = 0.0  # nodata stays nodata
    return np.clip(out, 1, 15000, out=out, where=x != 0).astype(np.float32)
