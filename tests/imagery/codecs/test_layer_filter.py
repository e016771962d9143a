"""The enhancement layer's per-band Wiener filter: its bytes, fit and decode agree (generated arrays), and on real
scenes it is sent where it pays and older layered files decode as they did."""

from __future__ import annotations

import hashlib
import struct
import sys
import zlib
from pathlib import Path

import numpy as np
import pytest

from _benchmarks import load_benchmark
from _scenes import held_out_scene
from eocompress.errors import FileFormatError
from eocompress.imagery.codecs import av1, enhancement, layer_filter
from eocompress.imagery.codecs.klt import KLTBasis, klt_side_bytes
from eocompress.imagery.codecs.layer_filter import LayerFilter
from eocompress.imagery.evaluation.fidelity import psnr_db
from eocompress.imagery.readers.bands import S2_L2A_BANDS
from eocompress.imagery.readers.scenes import read_scene


def _smooth_and_noisy(bands: int = 3, side: int = 96, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(true residual, a noisy decode of it): smooth fields plus white noise, as JPEG 2000 leaves at low rates."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:side, 0:side] / side
    truth = np.stack([300 * np.sin(3 * xx + b) * np.cos(2 * yy - b) + 50 * b for b in range(bands)])
    return truth.astype(np.float32), (truth + rng.normal(0, 40, truth.shape)).astype(np.float32)


def test_bytes_round_trip_and_damage_is_one_line() -> None:
    taps = np.arange(-36, 36, dtype=np.int8).reshape(12, 6)
    on = np.zeros(12, bool)
    on[[0, 5, 11]] = True
    f = LayerFilter(taps, on)
    data = f.to_bytes()
    assert len(data) == layer_filter.MASK_BYTES + 3 * layer_filter.BAND_BYTES
    back = LayerFilter.from_bytes(data, 12)
    assert np.array_equal(back.on, on) and np.array_equal(back.taps[on], taps[on]) and not back.taps[~on].any()
    assert LayerFilter.from_bytes(LayerFilter.none(12).to_bytes(), 12).on.sum() == 0
    for bad in (data[:-1], data + b"\0", b"\x01", (1 << 13).to_bytes(2, "little")):
        with pytest.raises(FileFormatError, match="damaged"):
            LayerFilter.from_bytes(bad, 12)


def test_the_identity_filter_changes_nothing_and_the_decode_matches_the_fit() -> None:
    """All-zero taps are the identity; the decode's depthwise convolution is the fit's class sums."""
    _, noisy = _smooth_and_noisy()
    assert np.allclose(layer_filter.apply(noisy, LayerFilter(np.zeros((3, 6), np.int8), np.ones(3, bool))), noisy,
                       atol=1e-3)
    rng = np.random.default_rng(1)
    f = LayerFilter(rng.integers(-40, 40, (3, 6)).astype(np.int8), np.array([True, False, True]))
    got = layer_filter.apply(noisy, f)
    assert np.array_equal(got[1], noisy[1])
    centred, mean = layer_filter._centred(noisy)
    for b in (0, 2):
        want = np.tensordot(f.weights()[b], layer_filter._class_sums(centred[b]), axes=1) + mean[b]
        assert np.allclose(got[b], want, atol=1e-2)


def test_the_gram_solves_are_the_least_squares_fits_on_the_samples() -> None:
    """Both fits solved from the 7 x 7 Gram matrix are the least-squares solutions on the samples themselves:
    the free taps ``lstsq(a', t)``, the taps that sum to one the outer classes' ``lstsq`` on their differences
    from the centre with the centre tap making the sum one; and the Gram error is the residual's squared sum."""
    truth, noisy = _smooth_and_noisy(bands=1, side=64, seed=3)
    centred, mean = layer_filter._centred(noisy)
    a = layer_filter._class_sums(centred[0]).reshape(6, -1).astype(np.float64)
    t = truth[0].ravel().astype(np.float64) - float(mean[0])
    m = np.vstack([a, t])
    gram = m @ m.T
    free = np.linalg.lstsq(a.T, t, rcond=None)[0]
    assert np.array_equal(layer_filter._free(gram),
                          np.clip(np.rint((free - layer_filter._IDENTITY) / layer_filter.STEP), -127, 127))
    diffs = a[1:] - layer_filter.COUNTS[1:, None] * a[0]
    outer = np.clip(np.rint(np.linalg.lstsq(diffs.T, t - a[0], rcond=None)[0] / layer_filter.STEP), -127, 127)
    q = layer_filter._sums_to_one(gram)
    assert np.array_equal(q[1:], outer) and q[0] == -layer_filter.COUNTS[1:] @ outer
    w = q.astype(np.float64) * layer_filter.STEP + layer_filter._IDENTITY
    assert layer_filter._error(gram, w) == pytest.approx(float(np.sum((w @ a - t) ** 2)), rel=1e-9)
    assert (layer_filter.COUNTS @ w) == pytest.approx(1.0)  # the taps sum to one over the 25 positions

def test_the_fit_takes_off_noise_and_pays_only_where_bytes_are_cheap() -> None:
    truth, noisy = _smooth_and_noisy()
    keep = np.ones(truth.shape, bool)
    (fitted, gains), _ = layer_filter.fit(noisy, truth, keep)
    before = np.sum((noisy - truth) ** 2, axis=(1, 2))
    after = np.sum((np.rint(layer_filter.apply(noisy, fitted)) - truth) ** 2, axis=(1, 2))
    assert np.all(gains > 0.5 * before) and np.all(after < 0.5 * before)
    error = float(before.sum())
    assert layer_filter.choose(fitted, gains, error, coded_bytes=100_000).on.all()  # bytes are cheap: every band
    assert not layer_filter.choose(fitted, gains, error, coded_bytes=10).on.any()  # 6 B cost more than they take off
    # pixels left out (nodata: the decode sets them to 0) do not count: a fit on the rest takes off as much there
    keep[:, :, :10] = False
    (_, part_gains), _ = layer_filter.fit(noisy, truth, keep)
    assert np.all(part_gains < gains) and np.all(part_gains > 0.5 * np.sum(((noisy - truth) ** 2)[:, :, 10:],
                                                                            axis=(1, 2)))


def test_the_fit_pixels_drawn_once_give_the_same_fits() -> None:
    """A layer draws the fit's pixels once (``fit_samples``) for all its candidates: bands larger than FIT_PIXELS
    (sampled at random) and with pixels left out, the fits on the drawn samples are the fits ``fit`` draws itself,
    bit for bit, and a band with too few kept pixels draws nothing."""
    truth, noisy = _smooth_and_noisy(bands=3, side=560, seed=5)  # 313,600 pixels a band: sampled
    keep = np.ones(truth.shape, bool)
    keep[1, :40] = False
    keep[2] = False
    keep[2, :2, :10] = True  # 20 pixels: too few for six taps
    samples = layer_filter.fit_samples(keep)
    assert samples[2] is None and samples[0][0] == 560 * 560 and samples[1][0] == 520 * 560
    assert samples[0][1].size == samples[1][1].size == layer_filter.FIT_PIXELS
    assert not np.array_equal(samples[0][1][:100], samples[1][1][:100])  # each band its own draw
    for drawn, itself in zip(layer_filter.fit(noisy, truth, keep, samples), layer_filter.fit(noisy, truth, keep),
                             strict=True):
        assert np.array_equal(drawn.filter.taps, itself.filter.taps) and np.array_equal(drawn.gains, itself.gains)
    assert np.any(layer_filter.fit(noisy, truth, keep, samples)[0].gains[:2] > 0)


def test_the_taps_sum_to_one_so_a_flat_dark_region_keeps_its_level() -> None:
    """A decode whose contrast JPEG 2000 squeezed (a bright cloud beside flat dark water): a free fit would undo the
    squeeze by scaling the band around its mean, moving the water; the fitted taps sum to one, so the water's level
    stays where the decode put it while the noise is taken off."""
    rng = np.random.default_rng(2)
    truth = np.full((2, 128, 128), 150.0)
    truth[:, :, :64] = 6000.0 + 400 * np.sin(np.mgrid[0:128, 0:64][0] / 9)  # cloud
    mean = truth.mean()
    noisy = (mean + 0.97 * (truth - mean) + rng.normal(0, 30, truth.shape)).astype(np.float32)
    (fitted, gains), (free, _) = layer_filter.fit(noisy, truth.astype(np.float32), np.ones(truth.shape, bool))
    assert np.all(gains > 0)
    assert np.all(fitted.weights() @ layer_filter.COUNTS == 1.0)  # exactly, in steps of 1/128
    out = layer_filter.apply(noisy, fitted)
    water = np.s_[:, 8:-8, 72:-8]
    assert np.allclose(out[water].mean(axis=(1, 2)), noisy[water].mean(axis=(1, 2)), atol=0.5)
    assert out[water].std() < 0.75 * noisy[water].std()
    # the free fit undoes the squeeze instead: its taps sum to more than one and move the water down
    assert np.all(free.weights() @ layer_filter.COUNTS > 1.01)
    assert np.all(layer_filter.apply(noisy, free)[water].mean(axis=(1, 2)) < noisy[water].mean(axis=(1, 2)) - 50)


def test_an_exact_decode_is_left_alone() -> None:
    truth = np.rint(_smooth_and_noisy()[0])
    for fitted, gains in layer_filter.fit(truth, truth, np.ones(truth.shape, bool)):
        assert not gains.any() and not layer_filter.choose(fitted, gains, 1.0, 5000).on.any()


# --------------------------------------------------------------------------- on real scenes

FILES = Path(__file__).parent / "files"


@pytest.fixture(scope="module")
def codec():
    pytest.importorskip("torch")
    from eocompress.imagery.codecs import get_codec

    return get_codec("learned")


def _with_filter(blob: bytes, filt: bytes) -> bytes:
    """A whole-scene layer file with its filter bytes replaced (CRC made good again)."""
    base, side, stream = enhancement.split(blob)
    klt = KLTBasis.from_bytes(side, 12)
    side = side[: klt_side_bytes(12, klt.basis.shape[1])] + filt
    body = (blob[:4] + struct.pack("<I", len(base)) + base + struct.pack("<H", len(side)) + side + stream)
    return body + struct.pack("<I", zlib.crc32(body))


def test_the_encoder_filters_the_bands_where_it_pays_on_a_held_out_city(codec, data_root: Path) -> None:
    """Held-out Abu Dhabi (L1C desert city) at 1/450, centre 384 px: the layer's filter is on for some bands and the
    file decodes closer with it than the same codestream without it; a filter that does not match its mask is
    one line."""
    scene = held_out_scene(data_root, "abudhabi/imgs_1", side=384)
    budget = scene.data.nbytes // 450
    blob = codec.encode(scene, ratio=450)
    assert blob[:4] == enhancement.MAGIC_CENTRED and len(blob) <= budget  # filtered around its planes' means ...
    _, side, stream = enhancement.split(blob)
    assert av1.is_grouped(stream)  # ... an AV1 layer, its groups apart at 384 px
    _, filt = enhancement.read_side(side, 12, filtered=True)
    assert 0 < filt.on.sum() <= 12
    with_filter = psnr_db(scene.data, codec.decode(blob)[0], scene.valid)
    without = psnr_db(scene.data, codec.decode(_with_filter(blob, LayerFilter.none(12).to_bytes()))[0], scene.valid)
    assert with_filter > without + 0.05
    with pytest.raises(FileFormatError, match="filter does not match"):
        codec.decode(_with_filter(blob, filt.to_bytes()[:-1]))


def test_a_filtered_layer_of_0_12_1_decodes_as_it_did_and_one_written_now_is_centred_on_its_planes(
        codec, data_root: Path) -> None:
    """Written by eocompress 0.12.1 (``EOE7``: an AV1 layer whose filter centres each band on its decoded residual's
    mean): Pisa imgs_1, rows 100-196, cols 200-296, ``get_codec("learned").encode(scene, ratio=100)``, 2182 B, 11 bands
    filtered; the sha-256 of its decode then. The same crop encoded now is ``EOEB`` (centred on its planes' means),
    within the same bytes and as close."""
    blob = (FILES / "pisa_r100_c200_96_r100_0.12.1.eotok").read_bytes()
    assert blob[:4] == enhancement.MAGIC_OBU and not enhancement.is_plane_centred(blob)
    out, _ = codec.decode(blob)
    digest = hashlib.sha256(np.ascontiguousarray(out).tobytes()).hexdigest()
    assert digest == "3c212abb7b0b17c971bb34e8c88ed07d86bd7aeafb6a6e1f652bf5f40aa32ab3"
    scene = read_scene(data_root / "imagery/oscd-s2l1c/pisa/imgs_1", bands=list(S2_L2A_BANDS)).crop(100, 200, 96, 96)
    now = codec.encode(scene, ratio=100)
    assert now[:4] == enhancement.MAGIC_CENTRED and enhancement.is_plane_centred(now) and len(now) <= 2182
    assert psnr_db(scene.data, codec.decode(now)[0]) > psnr_db(scene.data, out) - 0.05


def test_a_layered_file_of_0_7_decodes_as_it_did(codec) -> None:
    """Written by eocompress 0.7.0 (``EOE1``: the side is the KLT alone): Pisa imgs_1, rows 100-164, cols 200-264,
    ``get_codec("learned").encode(scene, ratio=50)``, 1965 B; the sha-256 of its decode then."""
    blob = (FILES / "pisa_r100_c200_64_r50_0.7.0.eotok").read_bytes()
    assert blob[:4] == enhancement.MAGIC_V07
    out, _ = codec.decode(blob)
    digest = hashlib.sha256(np.ascontiguousarray(out).tobytes()).hexdigest()
    assert digest == "93a3dce21ca55817046d29e7eb773a460a80c288f5c3ac9f9a3db925f7ee8155"
    base, side, stream = enhancement.split(blob)  # stray bytes after the KLT of an EOE1 side are damage
    body = (enhancement.MAGIC_V07 + struct.pack("<I", len(base)) + base + struct.pack("<H", len(side) + 2) + side
            + b"\0\0" + stream)
    with pytest.raises(FileFormatError, match="stray bytes"):
        codec.decode(body + struct.pack("<I", zlib.crc32(body)))


def _benchmark():
    """``benchmarks/imagery/layer_filter.py`` as a module."""
    return load_benchmark("imagery/layer_filter.py")


@pytest.mark.parametrize("ratio, kept", [(100, "sum one"), (200, "free")])
def test_the_free_fit_is_kept_only_where_it_is_closer_and_no_wider_in_angle(codec, data_root: Path, monkeypatch,
                                                                         ratio: int, kept: str) -> None:
    """Aguas Claras (a training city), centre 256 px, its residual over a flat base in one KLT + JPEG 2000 layer:
    the layer keeps the free fit's filter exactly where that file is closer and its spectral angle (measured on the
    decoded file as the benchmarks measure it) is no wider, else the filter whose taps sum to one. At 1/100 the
    free fit is closer but wider in angle; at 1/200 it is closer and narrower."""
    from eocompress.imagery.codecs.jpeg2000 import j2k_at_size
    from eocompress.imagery.codecs.klt import component_choices, klt_forward_each
    from eocompress.imagery.evaluation.fidelity import dn_psnr_sam

    scene = read_scene(data_root / "imagery" / "oscd-s2l1c/aguasclaras/imgs_1", bands=list(codec.bands))
    h, w = scene.shape
    scene = scene.crop((h - 256) // 2, (w - 256) // 2, 256, 256)
    data = np.asarray(scene.data)
    base = np.ones_like(data)
    res = enhancement.residual_of(data, base)
    room = data.nbytes // ratio
    _, planes, klt = next(iter(klt_forward_each(res, component_choices(12, room)[-1:], None)))
    side = klt.to_bytes()
    stream = j2k_at_size(planes, room - len(side) - layer_filter.MASK_BYTES)
    target, keep = res.astype(np.float32) - enhancement.SHIFT, np.ones(data.shape, bool)
    decoded = enhancement._decoded(stream, klt, target.shape)
    count = enhancement._Count(planes, klt, klt, stream, enhancement._residual_error(target, decoded.values, keep))
    args = (target, count, decoded, room, keep, enhancement._file_angle(data, base, scene.offset, None),
            layer_filter.fit_samples(keep))
    files = {"as shipped": enhancement._filtered_layer(*args)}
    for kind, name in enumerate(("sum one", "free")):
        with monkeypatch.context() as m:
            m.setattr(layer_filter, "fit", _benchmark()._one_fit(kind))
            files[name] = enhancement._filtered_layer(*args)
    angle = {name: dn_psnr_sam(data, enhancement._enhanced_in_place(base.copy(), f.side, f.stream, True, True),
                               scene.offset)[1] for name, f in files.items()}
    closer = files["free"].err < files["sum one"].err
    assert closer and (files["free"].side, files["free"].stream) != (files["sum one"].side, files["sum one"].stream)
    assert (angle["free"] <= angle["sum one"]) == (kept == "free")
    shipped = files["as shipped"]
    assert (shipped.side, shipped.stream, shipped.err) == (files[kept].side, files[kept].stream, files[kept].err)


def test_the_benchmark_switches_the_filter_off_and_on(capsys, monkeypatch) -> None:
    """``benchmarks/imagery/layer_filter.py`` on one training patch: the file with the filter is never farther than
    the one without it (a small room: both code the same codestream first), and a held-out scene is refused."""
    bench = _benchmark()
    monkeypatch.setattr(sys, "argv", ["layer_filter.py", "--scenes", "hydro/patch_0.tif", "--ratios", "200",
                                      "--side", "160"])
    bench.main()
    out = capsys.readouterr().out
    row = next(line for line in out.splitlines() if line.startswith("| hydro/patch_0.tif | 1/200 |"))
    assert float(row.rstrip(" |").rsplit("|", 1)[1]) >= 0.0
    monkeypatch.setattr(sys, "argv", ["layer_filter.py", "--scenes", "oscd-s2l1c/hongkong/imgs_1"])
    with pytest.raises(SystemExit, match="not a training scene"):
        bench.main()


def test_the_filter_is_fitted_only_under_counts_near_the_closest(data_root: Path, monkeypatch) -> None:
    """Hydro's patch_0 (a training patch, 256 px) over a flat base at 1/450: with all four of 6, 4, 3 and 2 KLT
    components coded by OpenJPEG (the HTJ2K ranking keeping them all), the filter is fitted only under those whose
    unfiltered error is within ``FILTER_MARGIN`` of the closest, and the layer is the one fitting under every count
    makes."""

    scene = read_scene(data_root / "imagery/hydro/patch_0.tif", bands=list(S2_L2A_BANDS))
    data = np.asarray(scene.data)
    base = np.ones_like(data)
    res, room = enhancement.residual_of(data, base), data.nbytes // 450
    zeros = np.zeros(data.shape, bool)
    fitted = []
    filtered_layer = enhancement._filtered_layer

    def spy(target, count, *args):
        fitted.append((count.planes.shape[0], count.err))  # (components, unfiltered error)
        return filtered_layer(target, count, *args)

    monkeypatch.setattr(enhancement, "_filtered_layer", spy)
    monkeypatch.setattr(enhancement, "RANKED_KEEP_SMALL", 4)
    angle = enhancement._file_angle(data, base, scene.offset, None)
    with monkeypatch.context() as m:
        m.setattr(enhancement, "FILTER_MARGIN", np.inf)
        every = enhancement._code_residual(res, room, None, zeros, angle)
    tried = dict(fitted)
    fitted.clear()
    got = enhancement._code_residual(res, room, None, zeros, angle)
    least = min(tried.values())
    assert sorted(tried) == [2, 3, 4, 6]
    assert dict(fitted) == {k: e for k, e in tried.items() if e <= enhancement.FILTER_MARGIN * least}
    assert len(fitted) < len(tried) and got == every


def test_the_sample_is_the_sorted_draw_without_a_sort() -> None:
    """``sample_pixels`` marks the drawn positions instead of sorting the draw: the same pixels as the sorted draw
    (what 0.11.3 computed, so the same taps and files) and the generator left in the same state."""
    rng = np.random.default_rng(3)
    for size in (layer_filter.FIT_PIXELS - 5, layer_filter.FIT_PIXELS + 1, 3 * layer_filter.FIT_PIXELS):
        indices = np.flatnonzero(rng.random(size + size // 9) < 0.9)
        ours, sorted_draw = np.random.default_rng(0), np.random.default_rng(0)
        got = layer_filter.sample_pixels(indices, ours)
        want = (np.sort(sorted_draw.choice(indices, layer_filter.FIT_PIXELS, replace=False))
                if indices.size > layer_filter.FIT_PIXELS else indices)
        np.testing.assert_array_equal(got, want)
        assert ours.random() == sorted_draw.random()
