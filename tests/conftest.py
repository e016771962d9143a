"""Shared fixtures: the real data under $EOCOMPRESS_DATA (tests skip with a reason when absent)."""

from __future__ import annotations

import os
from pathlib import Path

import matplotlib
import numpy as np
import pytest

matplotlib.use("Agg")


@pytest.fixture(scope="session")
def data_root() -> Path:
    """The real data folder; skip (with the reason) where $EOCOMPRESS_DATA is not available."""
    value = os.environ.get("EOCOMPRESS_DATA", "")
    if not value or not Path(value).is_dir():
        if os.environ.get("CI"):
            pytest.fail("CI must test on the real data: ../shared/data is missing beside the checkout")
        pytest.skip("real data not available: set EOCOMPRESS_DATA (make test sets it to ../shared/data)")
    return Path(value)


@pytest.fixture(scope="session")
def lulc(data_root: Path) -> dict[str, np.ndarray]:
    """Real Presto land-cover embeddings (10,100 x 128) with labels and pixel positions."""
    with np.load(data_root / "embeddings/presto_lulc_slovenia.npz") as npz:
        return {k: npz[k] for k in npz.files}


@pytest.fixture(scope="session")
def algae(data_root: Path) -> dict[str, np.ndarray]:
    """Real Presto algae-bloom embeddings (1,122 x 128), 5 severity classes, geographic split."""
    with np.load(data_root / "embeddings/presto_algae_blooms.npz") as npz:
        return {k: npz[k] for k in npz.files}


@pytest.fixture(scope="session")
def lulc_tif(data_root: Path) -> Path:
    """The real Presto land-cover embedding field: 128-band float32 GeoTIFF, 101 x 100, EPSG:32633."""
    return data_root / "embeddings/presto_lulc_slovenia_embeddings.tif"


@pytest.fixture(scope="session")
def majortom_tif(data_root: Path) -> Path:
    """The real Presto Major-TOM embedding field: 128-band float32 GeoTIFF, 256 x 256, EPSG:32648."""
    return data_root / "embeddings/presto_majortom_199U_1099R_256.tif"
