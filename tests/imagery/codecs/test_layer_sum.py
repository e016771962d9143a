"""The layer added to its base in strips of rows gives the DNs of the whole-scene sum (0.11.3's decode), value for
value, on real layers: filtered, partly filtered and unfiltered, over nodata, at strip sizes from a few rows to
the whole scene."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from _benchmarks import last_row, load_benchmark
from eocompress.imagery.codecs import enhancement, layer_filter, layer_sum

SHIFT = enhancement.SHIFT
#: ``benchmarks/imagery/layer_sum.py``: its whole-scene sum (0.11.3's decode) is the reference.
BENCH = load_benchmark("imagery/layer_sum.py")


def _whole_scene_sum(base: np.ndarray, planes: np.ndarray, klt, filt: layer_filter.LayerFilter,
                     centred: bool = False) -> np.ndarray:
    return BENCH.whole_scene_sum(base, planes, klt, filt, SHIFT, centred)


@pytest.fixture(scope="module", params=[450, 100])
def layer(request, codec, pisa):
    """(base DNs, KLT planes, basis, filter) of Pisa's 203 x 257 centre encoded at 1/450 and 1/100."""
    h, w = pisa.shape
    scene = pisa.crop((h - 203) // 2, (w - 257) // 2, 203, 257)
    blob = enhancement.encode_with_layer(codec, scene, ratio=request.param)
    assert blob[:4] == enhancement.MAGIC_CENTRED  # a filtered layer, centred on its planes' means (since 0.12.2)
    base_blob, side, stream = enhancement.split(blob)
    base = np.asarray(codec.decode(base_blob))
    klt, filt = enhancement.read_side(side, base.shape[0], enhancement.is_filtered(blob))
    return base, enhancement.layer_planes(stream, klt), klt, filt


@pytest.mark.parametrize("centred", [False, True], ids=["residual means", "plane means"])
@pytest.mark.parametrize("pixels", [1, 700, 1 << 12, 1 << 16, 1 << 30])
def test_strips_give_the_whole_scene_sum(layer, monkeypatch, pixels: int, centred: bool) -> None:
    """One row a strip, strips that end two rows before the scene's edge, and the whole scene in one strip; the
    filter centred as layers before 0.12.2 are and as later ones are."""
    base, planes, klt, filt = layer
    assert filt.on.any()  # the filter's halo rows are what a strip could get wrong
    monkeypatch.setattr(layer_sum, "STRIP_PIXELS", pixels)
    got = layer_sum.add_layer(base.copy(), planes, klt, filt, SHIFT, centre_on_planes=centred)
    np.testing.assert_array_equal(got, _whole_scene_sum(base, planes, klt, filt, centred))


@pytest.mark.parametrize("centred", [False, True], ids=["residual means", "plane means"])
@pytest.mark.parametrize("threads", [1, 2, 5])
def test_any_number_of_threads_gives_the_whole_scene_sum(layer, monkeypatch, threads: int, centred: bool) -> None:
    """The strips are independent: one thread, two, or more threads than cores write the same DNs."""
    base, planes, klt, filt = layer
    monkeypatch.setattr(layer_sum, "STRIP_PIXELS", 1 << 12)
    monkeypatch.setattr(layer_sum, "workers", lambda strips: min(strips, threads))
    got = layer_sum.add_layer(base.copy(), planes, klt, filt, SHIFT, centre_on_planes=centred)
    np.testing.assert_array_equal(got, _whole_scene_sum(base, planes, klt, filt, centred))


def test_the_plane_means_are_the_unrounded_residuals_means(layer) -> None:
    """``plane_means`` is each band's mean of the KLT's output before rounding (float64 over every pixel), and lies
    within a few hundredths of a DN of the rounded residual's mean that layers before 0.12.2 centre on."""
    base, planes, klt, _ = layer
    k = planes.shape[0]
    basis = klt.basis.astype(np.float64)
    unrounded = basis @ ((planes.reshape(k, -1).astype(np.float64) + klt.lows[:, None]) / klt.scale)
    unrounded += klt.mean[:, None].astype(np.float64) - SHIFT
    got = layer_sum.plane_means(planes, klt, SHIFT)
    np.testing.assert_allclose(got, unrounded.mean(axis=1), rtol=0, atol=1e-3)
    bands = np.arange(base.shape[0])
    rounded = layer_sum._filter_means(planes, klt, bands, SHIFT, range(0, planes.shape[1], planes.shape[1]))
    assert np.abs(got - rounded).max() < 0.05 and not np.array_equal(got, rounded)


def test_some_bands_filtered_none_filtered_and_nodata(layer, monkeypatch) -> None:
    """Every other band's filter off, then none: the same DNs as the whole-scene sum; nodata in the base stays 0."""
    base, planes, klt, filt = layer
    base = base.copy()
    base[:, 40:60, 10:90] = 0
    monkeypatch.setattr(layer_sum, "STRIP_PIXELS", 1 << 12)
    for on in (filt.on & (np.arange(filt.on.size) % 2 == 0), np.zeros_like(filt.on)):
        some = dataclasses.replace(filt, on=on)
        got = layer_sum.add_layer(base.copy(), planes, klt, some, SHIFT)
        np.testing.assert_array_equal(got, _whole_scene_sum(base, planes, klt, some))
        assert (got[:, 40:60, 10:90] == 0).all() and (got[:, :40] > 0).all()


@pytest.mark.parametrize("pixels", [1, 700, 1 << 12, 1 << 30])
def test_the_encoders_filtered_residual_in_strips_is_the_whole_filters(layer, monkeypatch, pixels: int) -> None:
    """``filtered_residual`` (the encoder's filtered candidates, in strips on threads) gives the float values of
    ``layer_filter.apply`` on the whole residual, for all bands filtered, some, and none, and leaves its input as it
    was."""
    base, planes, klt, filt = layer
    residual = layer_sum.residual(planes, klt, SHIFT).reshape(base.shape)
    kept = residual.copy()
    monkeypatch.setattr(layer_sum, "STRIP_PIXELS", pixels)
    for on in (np.ones_like(filt.on), filt.on & (np.arange(filt.on.size) % 3 == 0), np.zeros_like(filt.on)):
        some = dataclasses.replace(filt, on=on)
        np.testing.assert_array_equal(layer_sum.filtered_residual(residual, some), layer_filter.apply(residual, some))
        np.testing.assert_array_equal(residual, kept)


def test_the_sum_is_written_into_the_base(layer) -> None:
    """The decode keeps no second scene-sized array: the base it is given is the output."""
    base, planes, klt, filt = layer
    mine = base.copy()
    assert layer_sum.add_layer(mine, planes, klt, filt, SHIFT) is mine
    assert not np.array_equal(mine, base)


def test_the_benchmark_alternates_both_ways_on_the_same_file(capsys, monkeypatch) -> None:
    """``benchmarks/imagery/layer_sum.py`` on a 256 px held-out crop: both ways give the same DNs, and the strips
    are put back afterwards."""
    strips = layer_sum.add_layer
    row = last_row(BENCH, ["--scenes", "oscd-s2l1c/hongkong/imgs_1:256", "--rates", "450", "--repeats", "1"],
                   monkeypatch, capsys)
    assert "1/450" in row and row.endswith("| yes |")
    assert layer_sum.add_layer is strips
