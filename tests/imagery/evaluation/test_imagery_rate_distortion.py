"""The RD benchmark's pieces: the held-out suite and its "seen" flags, the bytes-the-anchor-needs figure, the
targets, and one real measurement through every codec. The full run is ``benchmarks/imagery/rate_distortion.py``."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from _benchmarks import last_row, load_benchmark
from eocompress.imagery import places
from eocompress.imagery.codecs import get_codec
from eocompress.imagery.readers.bands import S2_L2A_BANDS

rd = load_benchmark("imagery/rate_distortion.py")
CONFIG = Path(__file__).resolve().parents[3] / "src" / "eocompress" / "models" / "learned" / "config.json"


def _rec(ours: dict[int, tuple[int, float]], anchor: dict[int, tuple[int, float]], seen: bool = False) -> dict:
    res = {str(q): {"ours": {"bytes": b, "psnr_db": p, "sam_deg": 1.0},
                    "jpeg2000": {"bytes": anchor[q][0], "psnr_db": anchor[q][1], "sam_deg": 2.0}}
           for q, (b, p) in ours.items()}
    return {"label": "x", "kind": "desert", "seen": seen, "raw_bytes": 200 * 4000, "results": res}


def test_bytes_the_anchor_needs_interpolates_in_log_bytes_and_says_when_it_is_a_bound() -> None:
    # the anchor gains 6 dB per doubling of bytes; ours at 1000 B has the anchor's PSNR at 2000 B
    anchor = {200: (4000, 42.0), 450: (2000, 36.0), 1000: (1000, 30.0)}
    rec = _rec({200: (4000, 45.0), 450: (2000, 39.0), 1000: (1000, 36.0)}, anchor)
    v, sign = rd.needs(rec, "jpeg2000", 1000)
    assert sign == "" and math.isclose(v, 2.0)
    v, sign = rd.needs(rec, "jpeg2000", 450)
    assert sign == "" and math.isclose(v, 2 ** 0.5)
    v, sign = rd.needs(rec, "jpeg2000", 200)  # above the anchor's whole curve: a lower bound
    assert sign == ">" and math.isclose(v, 1.0)
    worse = _rec({200: (4000, 29.0), 450: (2000, 28.0), 1000: (1000, 27.0)}, anchor)
    assert rd.needs(worse, "jpeg2000", 1000) == (1.0, "<")  # below the whole curve: fewer than its last point
    g, sign = rd.geomean_needs([rec, rec], "jpeg2000", 1000)
    assert math.isclose(g, 2.0) and sign == ""


def test_targets_ignore_seen_scenes_and_report_a_loss() -> None:
    anchor = {200: (4000, 42.0), 450: (2000, 36.0), 1000: (1000, 30.0)}
    losing = _rec({200: (4000, 41.0), 450: (2000, 35.0), 1000: (1000, 29.0)}, anchor)
    winning = _rec({200: (4000, 45.0), 450: (2000, 39.0), 1000: (1000, 36.0)}, anchor, seen=True)
    got = {name.split(",")[0]: (status, why) for name, status, why in rd.targets([losing, winning])}
    assert got["above JPEG 2000 at our bytes"][0] == "**not met**"
    assert "3 scene-rungs" in got["above JPEG 2000 at our bytes"][1]
    assert got["no ceiling: our ladder reaches 1/200 on every scene"][0] == "met"
    capped = _rec({200: (2000, 39.0), 450: (1500, 38.0), 1000: (1000, 36.0)}, anchor)  # asked 1/200, made 1/400
    got = {name.split(",")[0]: status for name, status, _ in rd.targets([capped])}
    assert got["no ceiling: our ladder reaches 1/200 on every scene"] == "**not met**"
    nothing = {name.split(",")[0]: why for name, _, why in rd.targets([winning])}  # nothing unseen: nothing judged
    assert nothing["above JPEG 2000 at our bytes"].startswith("below JPEG 2000 at 0")


def test_time_per_rung_sums_over_scenes_and_names_the_slowest_decode() -> None:
    """Our time over JPEG 2000's per rung is a ratio of sums (not a mean of ratios), a run without first decodes says
    so with a dash, and the slowest scene is the one with the largest decode ratio."""
    def rec(label: str, ours: float, j2k: float, first: bool = True) -> dict:
        timing = {"encode_s": 2 * ours, "decode_s": ours} | ({"decode_first_s": 2 * ours} if first else {})
        return {"label": label, "results": {"450": {"ours": timing, "jpeg2000": {
            "encode_s": j2k, "decode_s": j2k} | ({"decode_first_s": j2k} if first else {})}}}
    (row,) = rd.time_per_rung([rec("small", 0.01, 0.005), rec("large", 0.09, 0.1)])
    assert row == ["1/450", "2", "1.90x", "0.95x", "1.90x", "small 2.00x"]
    (row,) = rd.time_per_rung([rec("small", 0.01, 0.005, first=False), rec("large", 0.09, 0.1)])
    assert row[4] == "–"


def test_suite_holds_every_hard_kind_and_flags_what_the_shipped_model_trained_on(data_root) -> None:
    suite = places.held_out_suite(data_root / "imagery")
    kinds = {s.kind for s in suite}
    assert {"desert", "coast", "water", "snow_ice", "cloud", "jp2_bands", "farmland"} <= kinds
    assert {s.level for s in suite} == {"L1C", "L2A"} and any(s.offset == 1000 for s in suite)
    recorded = set(json.loads(CONFIG.read_text())["training"]["scenes"])
    train = {p.relative_to(data_root / "imagery").as_posix() for p in places.training_scenes(data_root / "imagery")}
    assert recorded and recorded <= train  # the shipped model trained on training places only ...
    assert places.shipped_training_scenes() == recorded
    assert not any(s.seen_by_shipped_model for s in suite)  # ... so it has seen none of the suite
    assert not train & {s.path.relative_to(data_root / "imagery").as_posix() for s in suite}


@pytest.mark.realdata
def test_one_real_scene_through_ours_and_every_anchor_at_our_bytes(data_root) -> None:
    item = next(i for i in rd.load_items(quick=True, patches=0, only=["hydro patch_10000"]))
    assert item.offset == 1000 and not item.seen  # the shipped model never trained on it
    ours = get_codec("learned")
    anchors = {p: get_codec(p, bands=list(S2_L2A_BANDS)) for p in rd.ANCHORS}
    out = rd.measure(item, ours, anchors, 450, None)
    assert out["ours"]["bytes"] <= item.dn.nbytes // 450
    for p in rd.ANCHORS:
        assert out[p] is not None and out[p]["bytes"] <= out["ours"]["bytes"], p
        assert np.isfinite(out[p]["native_psnr_db"]) and out[p]["psnr_db"] > 25, (p, out[p])
    assert out["ours"]["psnr_db"] > 30
    for p in rd.PEERS:  # every codec's decode timed alike: the median of its runs, the first kept beside it
        assert out[p]["decode_s"] > 0 and out[p]["decode_first_s"] > 0, (p, out[p])


@pytest.mark.realdata
def test_the_decode_in_turn_benchmark_keeps_its_files_and_decodes_them_again(tmp_path, monkeypatch, capsys) -> None:
    """``benchmarks/imagery/decode_in_turn.py`` on one held-out scene at 1/450: the per-rate row names the rate and the
    slowest scene; the files it kept are read back by a second run (another release's code decodes the same ones)."""
    bench = load_benchmark("imagery/decode_in_turn.py")
    files = tmp_path / "files.pkl"
    argv = ["--only", "hydro patch_10000", "--patches", "0", "--rates", "450", "--repeats", "1", "--files", str(files)]
    row = last_row(bench, argv, monkeypatch, capsys)
    assert row.startswith("| 1/450 |") and "hydro patch_10000" in row
    kept = files.read_bytes()
    monkeypatch.setattr(bench, "encoded", lambda *a: pytest.fail("the kept files were encoded again"))
    assert last_row(bench, argv, monkeypatch, capsys).startswith("| 1/450 |") and files.read_bytes() == kept
