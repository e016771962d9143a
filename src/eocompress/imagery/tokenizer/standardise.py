"""The one standardisation of Sentinel-2 DNs, shared by training and the learned codec's encoder.

A scene (or a training crop) is centred on its own band means and divided by one scale (the mean of
the band standard deviations, at least ``MIN_SCALE`` DN). The means and the scale are rounded to the
integers the token-file header stores, so the model trains on exactly what the encoder feeds it and the
decoder can undo it from the header alone. Nodata pixels sit at the band means (0 after standardising).
"""

from __future__ import annotations

import numpy as np

#: Lower bound of the per-file scale (DN): keeps flat scenes (water, cloud) from blowing up the noise.
MIN_SCALE = 50.0


def standardise(
    x: np.ndarray, valid: np.ndarray | None = None, live: list[int] | None = None
) -> tuple[np.ndarray, np.ndarray, int]:
    """(x - band means) / scale for (C, H, W) DN over the ``valid`` pixels; returns (float32, uint16 means, int scale).

    ``live``: the bands whose spread sets the scale (default all; the encoder leaves out constant bands).
    """
    pix = x.reshape(x.shape[0], -1)
    if valid is not None and valid.any():
        pix = pix[:, valid.ravel()]
    means = np.clip(np.rint(pix.mean(1)), 0, 65535).astype(np.uint16)
    stds = pix.std(1)[live] if live else pix.std(1)
    scale = int(np.clip(np.rint(max(stds.mean(), MIN_SCALE)), 1, 65535))
    z = (x - means[:, None, None].astype(np.float32)) / np.float32(scale)
    if valid is not None:
        z[:, ~valid] = 0.0  # nodata sits at the band means: costs nothing, restored as 0 by the decoder
    return z.astype(np.float32), means, scale
