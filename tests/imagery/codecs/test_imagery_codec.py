"""Imagery codec: tiling, nodata, georeference, bands, model checks and file round trips.

A small deterministic stand-in tokenizer (f x f block means, 8-bit scalar quantized, one index per
band) exercises the codec exactly; the real default model is measured in benchmarks/imagery_rd.py.
"""

from __future__ import annotations

import hashlib
from types import SimpleNamespace

import numpy as np
import pytest

from eocompress.errors import EOCompressError
from eocompress.imagery.codec.pipeline import ImageryCodec
from eocompress.imagery.codec.tokenfile import ModelMismatchError, TokenFile, TokenFileError
from eocompress.imagery.readers.bands import S2_L2A_BANDS

LO, HI, LEVELS = -0.1, 1.6, 256


class BlockMeanTokenizer:
    """Tokenizer-shaped stand-in: block means per band, quantized to 256 levels (G = C)."""

    def __init__(self, f: int = 4, tile: int = 16, seed: str = "a") -> None:
        self.config = SimpleNamespace(
            bands=list(S2_L2A_BANDS), downsample=f, tile_size=tile, codebook_size=LEVELS, quantizer="test"
        )
        self.model_id = hashlib.sha256(seed.encode()).hexdigest()
        self.indices_per_position = len(S2_L2A_BANDS)
        self.calls = 0

    def encode(self, x: np.ndarray) -> np.ndarray:
        self.calls += 1
        n, c, h, w = x.shape
        f = self.config.downsample
        assert h % f == 0 and w % f == 0 and x.dtype == np.float32
        means = x.reshape(n, c, h // f, f, w // f, f).mean(axis=(3, 5))
        return np.clip(np.round((means - LO) / (HI - LO) * (LEVELS - 1)), 0, LEVELS - 1).astype(np.int64)

    def decode(self, idx: np.ndarray) -> np.ndarray:
        f = self.config.downsample
        values = (LO + idx / (LEVELS - 1) * (HI - LO)).astype(np.float32)
        return values.repeat(f, axis=2).repeat(f, axis=3)


def _expected(data: np.ndarray, offset: int, f: int) -> np.ndarray:
    tok = BlockMeanTokenizer(f=f)
    _, h, w = data.shape
    refl = (data.astype(np.float32) - offset) / 10000
    ph, pw = -(-h // f) * f, -(-w // f) * f
    refl = np.pad(refl, ((0, 0), (0, ph - h), (0, pw - w)), mode="edge")
    rec = tok.decode(tok.encode(refl[None]))[0, :, :h, :w]
    return np.clip(np.round(rec * 10000 + offset), 1, 65535).astype(np.uint16)


@pytest.mark.parametrize(("h", "w", "halo"), [(37, 53, 0), (64, 64, 2), (100, 75, 1), (3, 5, 2)])
def test_tiled_encode_decode_equals_whole_image(h: int, w: int, halo: int) -> None:
    rng = np.random.default_rng(h * w)
    data = rng.integers(1000, 6000, size=(12, h, w)).astype(np.uint16)
    codec = ImageryCodec(BlockMeanTokenizer(), halo=halo, batch_size=3)
    tf = codec.encode_array(data, offset=1000)
    assert tf.indices.shape == (12, -(-h // 4), -(-w // 4))
    assert tf.header["tiling"]["tiles"] == [-(-h // 16), -(-w // 16)]
    back = codec.decode_array(TokenFile.from_bytes(tf.to_bytes()))
    np.testing.assert_array_equal(back, _expected(data, 1000, 4))
    assert codec.tile_count(h, w) == -(-h // 16) * -(-w // 16)


def test_band_selection_and_missing_bands() -> None:
    codec = ImageryCodec(BlockMeanTokenizer())
    data = np.full((13, 8, 8), 2000, np.uint16)
    l1c = ["B01", "B02", "B03", "B04", "B05", "B06", "B07", "B08", "B8A", "B09", "B10", "B11", "B12"]
    tf = codec.encode_array(data, bands=l1c)  # the extra cirrus band B10 is dropped
    assert tf.header["bands"] == list(S2_L2A_BANDS)
    with pytest.raises(EOCompressError, match="B01, B05"):
        codec.encode_array(data[:4], bands=["B02", "B03", "B04", "B08"])
    with pytest.raises(EOCompressError, match="uint16"):
        codec.encode_array(data.astype(np.float32))


def test_nodata_restored_per_band_and_not_leaking() -> None:
    data = np.full((12, 32, 32), 3000, np.uint16)
    data[:, :8, :] = 0  # a nodata strip in all bands
    data[3, 20, 20] = 0  # a speck in one band only
    codec = ImageryCodec(BlockMeanTokenizer())
    back = codec.decode_array(TokenFile.from_bytes(codec.encode_array(data).to_bytes()))
    np.testing.assert_array_equal(back == 0, data == 0)
    # Filled from the nearest valid pixel: the block means next to the strip see 3000, not 0.
    assert np.abs(back[data != 0].astype(int) - 3000).max() <= 4


def test_all_nodata_scene_is_stored_empty() -> None:
    codec = ImageryCodec(BlockMeanTokenizer())
    data = np.zeros((12, 20, 20), np.uint16)
    with pytest.warns(UserWarning, match="entirely nodata"):
        tf = codec.encode_array(data)
    blob = tf.to_bytes()
    assert len(blob) < 1000 and codec.tokenizer.calls == 0
    np.testing.assert_array_equal(codec.decode_array(TokenFile.from_bytes(blob)), data)


def test_model_mismatch_and_corruption() -> None:
    data = np.full((12, 16, 16), 1500, np.uint16)
    tf_bytes = ImageryCodec(BlockMeanTokenizer(seed="a")).encode_array(data).to_bytes()
    other = ImageryCodec(BlockMeanTokenizer(seed="b"))
    needed = hashlib.sha256(b"a").hexdigest()
    with pytest.raises(ModelMismatchError, match=needed):
        other.decode_array(TokenFile.from_bytes(tf_bytes))
    with pytest.raises(TokenFileError, match="checksum"):
        TokenFile.from_bytes(tf_bytes[:-3] + b"xyz")


def test_real_scene_file_roundtrip_keeps_georeference_and_nodata(data_root, tmp_path) -> None:
    """Real Hydro patch (offset +1000, nodata specks): encode_file -> decode_file -> GeoTIFF."""
    import rasterio

    src = data_root / "imagery/hydro/patch_100.tif"
    from eocompress.imagery.readers.scenes import read_scene

    codec = ImageryCodec(BlockMeanTokenizer())
    assert read_scene(src).offset == 0  # no metadata: the offset is never guessed from the pixels
    scene = read_scene(src, offset=1000)  # the Hydro NOTES say this patch carries +1000
    tf = codec.encode_scene(scene)
    tf.save(tmp_path / "p.eotok")
    out = codec.decode_file(tmp_path / "p.eotok", tmp_path / "p.tif")
    assert tf.header["offset"] == scene.offset == 1000
    with rasterio.open(src) as a, rasterio.open(out) as b:
        assert b.crs == a.crs and b.transform == a.transform and (b.height, b.width) == (a.height, a.width)
        assert list(b.descriptions) == list(S2_L2A_BANDS) and b.dtypes[0] == "uint16" and b.nodata == 0
        assert b.tags()["eocompress_dn_offset"] == "1000"  # level unknown: no ESA-named tag
        rec = b.read()
    np.testing.assert_array_equal(rec == 0, scene.data == 0)
    assert (scene.data == 0).sum() > 0
    # Away from nodata the decoded DNs equal the block means (same DN convention, offset kept).
    valid = scene.valid
    expected = _expected(np.where(scene.data == 0, np.uint16(1000), scene.data), 1000, 4)
    close = np.abs(rec.astype(int) - expected.astype(int))[:, valid]
    assert np.median(close) <= 5


def test_no_georeference_warns_and_works(tmp_path) -> None:
    import rasterio
    from rasterio.errors import NotGeoreferencedWarning

    path = tmp_path / "plain.tif"
    data = np.random.default_rng(0).integers(500, 3000, size=(12, 20, 24)).astype(np.uint16)
    with pytest.warns(NotGeoreferencedWarning):
        with rasterio.open(path, "w", driver="GTiff", width=24, height=20, count=12, dtype="uint16") as dst:
            dst.write(data)
    codec = ImageryCodec(BlockMeanTokenizer())
    with pytest.warns(UserWarning, match="no georeference"):
        codec.encode_file(path, tmp_path / "plain.eotok")
    with pytest.warns(NotGeoreferencedWarning):
        out = codec.decode_file(tmp_path / "plain.eotok", tmp_path / "plain_rec.tif")
        with rasterio.open(out) as ds:
            assert ds.crs is None and ds.shape == (20, 24)


@pytest.mark.slow
def test_directory_mode_encodes_skips_and_repairs(data_root, tmp_path) -> None:
    """Two real Hydro crops in nested folders on a threaded Dask cluster; re-runs skip verified outputs."""
    import rasterio

    from eocompress.imagery.codec.parallel import encode_directory

    src = tmp_path / "in"
    for i, name in enumerate(["patch_0", "patch_1"]):
        with rasterio.open(data_root / f"imagery/hydro/{name}.tif") as ds:
            profile = ds.profile
            profile.update(width=40, height=40)  # the window starts at (0, 0): same transform
            data = ds.read(window=((0, 40), (0, 40)))
        (src / f"d{i}").mkdir(parents=True)
        with rasterio.open(src / f"d{i}/{name}.tif", "w", **profile) as dst:
            dst.write(data)
    tok = BlockMeanTokenizer()
    seen = []
    out = encode_directory(src, tmp_path / "out", model=tok, processes=False, n_workers=1,
                           on_done=lambda o, done, total: seen.append((o.status, done, total)))
    assert sorted(o.status for o in out) == ["encoded", "encoded"] and len(seen) == 2
    targets = sorted((tmp_path / "out").rglob("*.eotok"))
    names = [t.relative_to(tmp_path / "out").as_posix() for t in targets]
    assert names == ["d0/patch_0.eotok", "d1/patch_1.eotok"]
    targets[1].write_bytes(targets[1].read_bytes()[:-5])  # damage one output
    again = encode_directory(src, tmp_path / "out", model=tok, processes=False, n_workers=1)
    assert sorted(o.status for o in again) == ["encoded", "skipped"]
    assert TokenFile.load(targets[1]).header["height"] == 40


def test_crs_is_stored_compactly_and_exactly(tmp_path) -> None:
    import rasterio
    from affine import Affine
    from rasterio.crs import CRS

    from eocompress.imagery.codec.pipeline import _crs_text, write_geotiff

    assert _crs_text(CRS.from_epsg(32648)) == "EPSG:32648"
    custom = CRS.from_proj4("+proj=laea +lat_0=52 +lon_0=10 +x_0=4321000 +y_0=3210000 +ellps=sphere +units=m")
    text = _crs_text(custom)
    assert not text.startswith("EPSG") and CRS.from_user_input(text) == custom
    data = np.full((12, 8, 8), 1234, np.uint16)
    tf = ImageryCodec(BlockMeanTokenizer()).encode_array(data, crs=custom, transform=Affine(20, 0, 5.5, 0, -20, 7.25))
    header = TokenFile.from_bytes(tf.to_bytes()).header
    out = write_geotiff(tmp_path / "c.tif", data, header)
    with rasterio.open(out) as ds:
        assert ds.crs == custom and ds.transform == Affine(20, 0, 5.5, 0, -20, 7.25)
