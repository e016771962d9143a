"""The default layer's KLT component count: ranked by an HTJ2K layer, only the closest coded by OpenJPEG (training
scenes; a generated one-pixel-wide stack)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from eocompress.imagery.codecs import enhancement
from eocompress.imagery.codecs.klt import component_choices
from eocompress.imagery.readers.bands import S2_L2A_BANDS
from eocompress.imagery.readers.scenes import read_scene

# (training scene, centre crop px or 0 for whole, ratio, counts OpenJPEG codes): a small room ranks the counts of
# component_choices and codes the two closest, a large one ranks LAYER_COMPONENTS and codes the closest.
CASES = [("hydro/patch_0.tif", 0, 450, enhancement.RANKED_KEEP_SMALL),
         ("oscd-s2l1c/aguasclaras/imgs_1", 384, 200, enhancement.RANKED_KEEP)]


def _residual(data_root: Path, name: str, crop: int) -> tuple[np.ndarray, np.ndarray]:
    """(scene DN, its shifted residual over a flat base of 1 DN)."""
    scene = read_scene(data_root / "imagery" / name, bands=list(S2_L2A_BANDS))
    if crop:
        h, w = scene.shape
        scene = scene.crop((h - crop) // 2, (w - crop) // 2, crop, crop)
    data = np.asarray(scene.data)
    return data, enhancement.residual_of(data, np.ones_like(data))


def _coded(monkeypatch, res: np.ndarray, room: int, short: float = 1.0,
           **keep: int) -> tuple[tuple[bytes, bytes, float], list[int]]:
    """The layer ``_code_residual`` makes and the component counts it coded (AV1 or OpenJPEG), in order (``keep``:
    RANKED_KEEP* overrides; ``short``: the first stream is coded for that share of its room, as when the coder's
    sizes step over the room)."""
    counts: list[int] = []
    coded = enhancement._coded_planes

    def spy(planes, klt, budget, *args, **kwargs):
        counts.append(planes.shape[0])
        return coded(planes, klt, int(budget * (short if len(counts) == 1 else 1.0)), *args, **kwargs)

    with monkeypatch.context() as m:
        m.setattr(enhancement, "_coded_planes", spy)
        for name, value in keep.items():
            m.setattr(enhancement, name, value)
        got = enhancement._code_residual(res, room, None, np.zeros(res.shape, bool), lambda _: 0.0)
    assert got is not None
    return got, list(dict.fromkeys(counts))  # the filter codes a count again smaller: each count once


@pytest.mark.parametrize("name, crop, ratio, kept", CASES)
def test_openjpeg_codes_only_the_closest_counts_and_the_layer_is_as_close(data_root: Path, monkeypatch, name: str,
                                                                          crop: int, ratio: int, kept: int) -> None:
    """Only ``kept`` counts reach OpenJPEG, and the layer is within 0.1 dB (squared error 1.024x) of the one coding
    every count with OpenJPEG (what the KLT + JPEG 2000 anchor does with its counts)."""
    data, res = _residual(data_root, name, crop)
    room = data.nbytes // ratio
    ranked, coded = _coded(monkeypatch, res, room)
    every, tried = _coded(monkeypatch, res, room, RANKED_KEEP=5, RANKED_KEEP_SMALL=5)
    assert kept <= len(coded) < len(tried)
    assert set(coded) <= set(tried)
    assert set(tried) == ({12, 8, 6, 4, 3} if kept == enhancement.RANKED_KEEP else set(component_choices(12, room)))
    assert ranked[2] <= 10 ** 0.01 * every[2]
    assert len(ranked[0]) + len(ranked[1]) <= room


def test_a_stack_htj2k_cannot_code_keeps_every_count_of_the_anchor(monkeypatch) -> None:
    """A residual one pixel wide (the last block of a scene 1 px past a block edge) is not ranked: OpenJPEG codes
    every count of ``component_choices``, as before the ranking."""
    rng = np.random.default_rng(0)
    res = (enhancement.SHIFT + rng.normal(0, 200, (12, 300, 1))).astype(np.uint16)
    room = 2000
    _, coded = _coded(monkeypatch, res, room)
    assert sorted(coded) == sorted(component_choices(12, room))


def test_a_stream_short_of_its_room_gets_the_next_count_coded_too(data_root: Path, monkeypatch) -> None:
    """Hydro's patch_0 at 1/200 (a large room: one count kept): when the kept count's OpenJPEG stream falls more than
    2 % short of its room (OpenJPEG's sizes moving in steps), the next count by the HTJ2K ranking is coded too, and
    only then."""
    data, res = _residual(data_root, "hydro/patch_0.tif", 0)
    room = data.nbytes // 200
    _, filled = _coded(monkeypatch, res, room)
    _, short = _coded(monkeypatch, res, room, short=0.9)
    assert len(filled) == enhancement.RANKED_KEEP == 1
    assert len(short) == 2 and short[0] == filled[0]


def test_the_residual_is_0_12_4s_in_one_array() -> None:
    """``residual_of`` (since 0.12.5 made in one int32 array): the original minus the base plus SHIFT, clipped to
    uint16, SHIFT where the base is nodata (0), value for value 0.12.4's expression, at both ends of the range."""
    rng = np.random.default_rng(11)
    data = rng.integers(0, 65536, (3, 40, 50), dtype=np.uint16)
    base = rng.integers(0, 65536, (3, 40, 50), dtype=np.uint16)
    base[:, :4] = 0
    data[0, 10, :3], base[0, 10, :3] = 65535, 1  # clipped high
    data[1, 11, :3], base[1, 11, :3] = 0, 65535  # clipped low
    want = data.astype(np.int32) - base.astype(np.int32)
    want[base == 0] = 0
    want = np.clip(want + enhancement.SHIFT, 0, 65535).astype(np.uint16)
    got = enhancement.residual_of(data, base)
    assert got.dtype == np.uint16
    np.testing.assert_array_equal(got, want)
