"""Pictures of reconstructions: true colour (B04/B03/B02) and false colour (B08/B04/B03) vs originals."""

from __future__ import annotations

import os

import numpy as np


def _rgb(
    x: np.ndarray, bands: list[str], names: tuple[str, str, str], lo: np.ndarray, hi: np.ndarray
) -> np.ndarray:
    idx = [bands.index(b) for b in names]
    img = (x[idx] - lo[:, None, None]) / np.maximum(hi - lo, 1e-6)[:, None, None]
    return np.clip(img.transpose(1, 2, 0), 0, 1)


def plot_reconstructions(
    x: np.ndarray, recon: np.ndarray, bands: list[str], path: str | os.PathLike, title: str = ""
) -> None:
    """Write a PNG: one row per patch, columns true colour / reconstruction / false colour / reconstruction.

    Each patch is stretched by the 2-98 % range of the original, and the same stretch is applied
    to its reconstruction so colours compare directly.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from eocompress._atomic import atomic_path

    composites = [("true colour", ("B04", "B03", "B02")), ("false colour", ("B08", "B04", "B03"))]
    composites = [c for c in composites if all(b in bands for b in c[1])]
    n = len(x)
    fig, axes = plt.subplots(
        n, 2 * len(composites), figsize=(2.2 * 2 * len(composites), 2.2 * n), squeeze=False
    )
    for i in range(n):
        for j, (label, names) in enumerate(composites):
            idx = [bands.index(b) for b in names]
            lo = np.percentile(x[i, idx], 2, axis=(1, 2))
            hi = np.percentile(x[i, idx], 98, axis=(1, 2))
            for k, (img, what) in enumerate(((x[i], "original"), (recon[i], "reconstruction"))):
                ax = axes[i, 2 * j + k]
                ax.imshow(_rgb(img, bands, names, lo, hi))
                ax.set_xticks([])
                ax.set_yticks([])
                if i == 0:
                    ax.set_title(f"{label}\n{what}", fontsize=8)
    if title:
        fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=90, format="png")
    plt.close(fig)
