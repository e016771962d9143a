"""Windowed and block-streamed decodes of the learned codec: the same pixels as a full decode, less work/memory."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from eocompress.cli import main
from eocompress.errors import InputError
from eocompress.imagery.archives.dataset import TokenArchiveDataset
from eocompress.imagery.codec.learned_format import STRIDE
from eocompress.imagery.codec.learned_transforms import WINDOW_HALO, latent_window, synthesis, synthesis_window
from eocompress.imagery.readers.scenes import read_scene

CELL = "imagery/majortom-core-s2l2a/0U_199R/S2A_MSIL2A_20220706T085611_N0400_R007_T33NZA_20220706T153419"
PISA = "imagery/oscd-s2l1c/pisa/imgs_1"  # 776 x 718: synthesised in one pass (no blocks)


@pytest.fixture(scope="module")
def cell(codec, data_root):
    """A real 1068² Major-TOM cell (synthesised in haloed blocks), its token file and its full decode."""
    scene = read_scene(data_root / CELL, bands=codec.bands)
    blob = codec.encode_scene(scene, ratio=450)
    return blob, codec.decode(blob)


def test_window_halo_covers_the_synthesis_reach(codec):
    # one latent position changes pixels only within WINDOW_HALO positions of its own 16 px cell
    torch.manual_seed(0)
    x = torch.randn(1, codec.config.latent, 12, 12)
    with torch.no_grad():
        a = codec.model.synthesis(x)
        bumped = x.clone()
        bumped[0, :, 6, 6] += 5.0
        b = codec.model.synthesis(bumped)
    changed = torch.nonzero((a - b).abs().amax(dim=(0, 1)) > 0)
    assert changed.numel() > 0
    lo, hi = int(changed.min()), int(changed.max())
    assert lo >= (6 - WINDOW_HALO) * STRIDE and hi < (7 + WINDOW_HALO) * STRIDE


def test_latent_window_is_clamped_to_the_grid():
    assert latent_window((0, 0, 16, 16), 10, 10) == (0, 1 + WINDOW_HALO, 0, 1 + WINDOW_HALO)
    assert latent_window((17, 150, 20, 10), 10, 10) == (max(0, 1 - WINDOW_HALO), 3 + WINDOW_HALO, 9 - WINDOW_HALO, 10)


@pytest.mark.realdata
def test_window_decode_equals_the_full_decodes_window(codec, cell):
    blob, full = cell
    h, w = full.shape[1:]
    # corners, the interior across block edges (1024 px), unaligned and tiny windows
    for r, c, wh, ww in [(0, 0, 256, 256), (812, 812, 256, 256), (900, 1000, 168, 68), (17, 1003, 100, 65),
                         (500, 700, 256, 256), (1067, 1067, 1, 1), (0, 0, h, w)]:
        part = codec.decode(blob, window=(r, c, wh, ww))
        ref = full[:, r : r + wh, c : c + ww]
        assert part.shape == ref.shape and part.dtype == np.uint16
        diff = np.abs(part.astype(np.int32) - ref.astype(np.int32))
        # float sums in another order may round to the neighbouring DN, rarely
        assert diff.max() <= 1 and (diff > 0).mean() < 1e-3, (r, c, wh, ww)
    assert np.array_equal(codec.decode(blob, window=(0, 0, h, w)), full)  # the whole scene: the same path


@pytest.mark.realdata
def test_window_synthesis_matches_in_floats(codec, cell):
    blob, _ = cell
    tokens = codec.tokens(blob)
    head, _ = codec.read_header(blob)
    z = synthesis(codec.model, tokens, head.delta, head.height, head.width, 12)
    part = synthesis_window(codec.model, tokens, head.delta, (300, 1010, 200, 58), 12)
    assert np.abs(part - z[:, 300:500, 1010:1068]).max() < 1e-3


@pytest.mark.realdata
def test_window_keeps_nodata_and_refuses_outside(codec, data_root):
    scene = read_scene(data_root / PISA, bands=codec.bands).crop(0, 0, 200, 180)
    dn = scene.data.copy()
    dn[:, 40:60, 10:30] = 0  # a nodata hole
    blob = codec.encode(dn, quality=5)
    full = codec.decode(blob)
    part = codec.decode(blob, window=(30, 5, 50, 40))
    assert (part[:, 10:30, 5:25] == 0).all() and (part[:, :10] > 0).all()
    assert np.abs(part.astype(int) - full[:, 30:80, 5:45].astype(int)).max() <= 1
    for bad in [(0, 0, 201, 10), (-1, 0, 5, 5), (0, 0, 0, 5), (190, 170, 20, 20), (1, 2, 3)]:
        with pytest.raises(InputError, match="window"):
            codec.decode(blob, window=bad)


@pytest.mark.realdata
def test_decode_to_geotiff_streams_the_same_pixels_as_decode(codec, cell, tmp_path):
    import rasterio

    blob, full = cell
    tok, tif = tmp_path / "cell.eotok", tmp_path / "cell.tif"
    tok.write_bytes(blob)
    try:
        code = main(["imagery", "decode", str(tok), "-o", str(tif)])
    except SystemExit as exc:  # the console entry point may exit instead of returning
        code = exc.code
    assert code in (0, None)
    with rasterio.open(tif) as ds:
        assert np.array_equal(ds.read(), full)  # the same blocks and halos: bit-identical
        assert ds.tags(ns="IMAGE_STRUCTURE").get("LAYOUT") == "COG" and ds.crs.to_epsg() == 32633
        assert ds.descriptions[0] == "B01" and ds.nodata == 0 and ds.overviews(1)
        assert ds.tags().get("eocompress_model_id") == codec.model_id.hex()
    before = tif.read_bytes()
    with pytest.raises(Exception, match="overwrite"):
        codec.decode_to_geotiff(blob, tif)
    assert tif.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cell.eotok", "cell.tif"]  # no stage file left


@pytest.mark.realdata
def test_dataset_crops_are_windows_of_the_full_decode(codec, cell, tmp_path):
    blob, full = cell
    (tmp_path / "a.eotok").write_bytes(blob)
    ds = TokenArchiveDataset(tmp_path, crop=256, seed=3)
    for epoch in range(2):
        ds.set_epoch(epoch)
        sample = ds[0]
        r, c, h, w = (int(v) for v in sample["window"])
        ref = full[:, r : r + h, c : c + w].astype(np.float32)
        head, _ = codec.read_header(blob)
        ref = (ref - np.float32(head.offset)) / np.float32(10000.0)
        ref[:, ~np.all(full[:, r : r + h, c : c + w] != 0, axis=0)] = 0.0
        assert sample["image"].shape == (12, 256, 256)
        assert float(np.abs(sample["image"].numpy() - ref).max()) <= 1.01e-4  # at most 1 DN
