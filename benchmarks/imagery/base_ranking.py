"""Which learned bases get the whole (AV1) layer near the top of the ladder: the table behind ``enhancement._bases``.

For each training scene (``benchmarks/training_scenes.py``; never the held-out suite), its centre crop and each rate,
every base measured there (near the top rate, ``enhancement.near_top_rate``: the ladder levels of ``--levels``, 10 only
where the rate search reached the top, and the thin base; below it the thin base alone) is measured three ways: the
squared error of the residual's closest HTJ2K layer (``enhancement._ranked_counts``), of its whole layer with OpenJPEG
only (0.11.0's ranking: ``LAYER_AV1`` off) and of its whole default layer (AV1, the filter). Printed per scene-rate (a
JSON line): the base each rule keeps and how many dB its whole layer is behind the best base's (the best of every
base's whole layer), with the seconds each rule spends on layers; then a table per rule:

- ``openjpeg`` (0.11.0): levels 10, 7 and 4 and the thin base ranked by their OpenJPEG layers, the winner's layer coded
  again with AV1;
- ``htj2k+thin`` (0.11.1-0.12.2): levels 10, 7 and 4 ranked by HTJ2K, the closest and the thin base each get the whole
  layer;
- ``0.12.3``: the bases ``enhancement._bases`` tries (``LAYER_BASE_LEVELS`` and the thin base), each with the whole
  layer;
- ``shipped`` (since 0.12.4): the same bases, a learned one's whole layer coded only where its HTJ2K ranking is
  ``enhancement.LEARNED_RANKING_MARGIN_DB`` closer than the thin base's (its layer seconds: the ranking alone where it
  is not coded).

Each row also holds every base's errors (``rows``: HTJ2K ranking, whole layer, and ``proxy``: the HTJ2K-ranked count
coded by AV1 alone at ``--proxy-speed``, a cheaper ranking measured in 0.11.3 and not shipped) and seconds.
docs/design/imagery-codec.md (0.12.3, 0.12.4) tabulates a run of::

    EOCOMPRESS_DATA=../shared/data nice .venv/bin/python benchmarks/imagery/base_ranking.py \\
        --side 512 --rates 50 100 --no-openjpeg
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

from eocompress.imagery.codecs import av1, enhancement, get_codec
from eocompress.imagery.codecs.klt import TOP, rescaled
from eocompress.imagery.evaluation.fidelity import psnr_from_mse

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # benchmarks/: the training scenes
from common import markdown_table
from training_scenes import SCENES, training_crops


def _timed(fn, *args, **kwargs):
    t0 = time.perf_counter()
    out = fn(*args, **kwargs)
    return out, time.perf_counter() - t0


def _proxy(data: np.ndarray, decoded: np.ndarray, ranking, budget: int, blob: bytes, speed: int) -> float:
    """Squared DN error of the residual's closest HTJ2K count coded by AV1 at libaom ``speed`` alone (no second coder,
    no filter): a cheaper ranking of bases by the coder their layer will use."""
    room = budget - len(blob) - enhancement.OVERHEAD
    res = enhancement.residual_of(data, decoded)
    target = res.astype(np.float32) - enhancement.SHIFT
    _, planes, klt = ranking.counts[0]
    want = room - len(klt.to_bytes()) - enhancement._filter_reserve(room, res.shape[0])
    got = av1.av1_at_size(*rescaled(planes, klt, av1.TOP / TOP), want, {}, speed=speed)
    if got is None:
        return float("inf")
    return enhancement._residual_error(target, enhancement._decoded_residual(got[0], got[1], target.shape),
                                       decoded != 0)


def _lost(rows: dict, base: float, best: float) -> float:
    """dB the whole layer under ``base`` is behind the best base's (the same pixels: the squared errors' scale
    cancels)."""
    return round(float(psnr_from_mse(rows[best]["whole"]) - psnr_from_mse(rows[base]["whole"])), 3)


def _rank(data: np.ndarray, blob: bytes, decoded: np.ndarray, budget: int, valid: np.ndarray | None):
    """The HTJ2K ranking of the residual layer's counts under base file ``blob`` (decoded: ``decoded``), as the layer
    makes it (``enhancement._ranked_counts``); None when no layer fits. Its error ranked the learned bases in
    0.11.1-0.12.2."""
    room = budget - len(blob) - enhancement.OVERHEAD
    if room < enhancement.MIN_LAYER_BYTES:
        return None
    res = enhancement.residual_of(data, decoded)
    return enhancement._ranked_counts(res, room, enhancement._filter_reserve(room, res.shape[0]), valid,
                                      res.astype(np.float32) - enhancement.SHIFT, decoded != 0)


def _bases(codec, plain: bytes, levels: list[int]) -> tuple[float, ...]:
    """The bases measured: near the top rate (``enhancement.near_top_rate``) every ladder level of ``levels`` (10 only
    where the rate search reached the top, as 0.11.1-0.12.2 tried it) and the thin base; below it the thin base."""
    if not enhancement.near_top_rate(codec, plain):
        return (enhancement.BASE_SHARE,)
    at_top = enhancement.at_top_rate(codec, plain)
    return (*(q for q in levels if q < 10 or at_top), enhancement.BASE_SHARE)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--side", type=int, default=512)
    ap.add_argument("--rates", type=int, nargs="+", default=[50, 100, 200])
    ap.add_argument("--levels", type=int, nargs="+", default=[10, 7, 4, 3, 2, 1],
                    help="ladder levels measured under the layer near the top rate")
    ap.add_argument("--proxy-speed", type=int, default=9, help="libaom speed of the AV1 proxy ranking (rows' proxy)")
    ap.add_argument("--no-openjpeg", action="store_true", help="skip 0.11.0's OpenJPEG ranking (its rule then reads 0)")
    args = ap.parse_args()
    codec = get_codec("learned").codec
    behind: dict[str, list[tuple[float, float]]] = {}  # per rule: (dB behind the best base, layer seconds)
    for rel, scene in training_crops(SCENES, args.side, codec.bands):
        data, valid, offset = np.asarray(scene.data), scene.valid, int(scene.offset)
        encode_at = codec.scene_encoder(scene)
        for rate in args.rates:
            budget = data.nbytes // rate
            plain = encode_at(ratio=rate)
            rows = {}
            for base in _bases(codec, plain, args.levels):
                blob = enhancement._base_file(encode_at, data.nbytes, budget, base)
                if blob is None or len(blob) + enhancement.OVERHEAD + enhancement.MIN_LAYER_BYTES > budget:
                    continue
                decoded = np.asarray(codec.decode(blob))
                ranking, t_rank = _timed(_rank, data, blob, decoded, budget, valid)
                enhancement.LAYER_AV1 = False
                openjpeg, t_oj = ((None, 0.0), 0.0) if args.no_openjpeg else _timed(
                    enhancement._layer, data, blob, decoded, budget, valid, offset)
                enhancement.LAYER_AV1 = True
                whole, t_av1 = _timed(enhancement._layer, data, blob, decoded, budget, valid, offset)
                if ranking is None or openjpeg is None or whole is None:
                    continue
                proxy, t_proxy = _timed(_proxy, data, decoded, ranking, budget, blob, args.proxy_speed)
                rows[base] = {"htj2k": ranking.error, "openjpeg": openjpeg[1], "whole": whole[1], "proxy": proxy,
                              "t": (t_rank, t_oj, t_av1, t_proxy)}
            if not rows:
                continue
            best = min(rows, key=lambda b: rows[b]["whole"])
            old_learned = [b for b in rows if b in (7, 4) or (b == 10 and enhancement.at_top_rate(codec, plain))]
            by_oj = min(rows, key=lambda b: rows[b]["openjpeg"])
            lead = min(old_learned, key=lambda b: rows[b]["htj2k"]) if old_learned else None
            ranked = [b for b in (lead, enhancement.BASE_SHARE) if b in rows]
            by_ranked = min(ranked, key=lambda b: rows[b]["whole"])
            tried = [b for b in enhancement._bases(codec, plain) if b in rows]
            by_tried = min(tried, key=lambda b: rows[b]["whole"])
            bar = enhancement.ranking_bar(rows.get(enhancement.BASE_SHARE, {}).get("htj2k", np.inf))
            shipped = [b for b in tried if b == enhancement.BASE_SHARE or rows[b]["htj2k"] <= bar]
            by_shipped = min(shipped, key=lambda b: rows[b]["whole"])

            t_old = sum(r["t"][1] for r in rows.values()) + rows[by_oj]["t"][2]
            t_ranked = (sum(rows[b]["t"][0] for b in old_learned) if len(old_learned) > 1 else 0.0) + sum(
                rows[b]["t"][2] for b in ranked)
            t_tried = sum(rows[b]["t"][2] for b in tried)
            t_shipped = sum(rows[b]["t"][2] if b in shipped else rows[b]["t"][0] for b in tried)
            rules = {"openjpeg": [str(by_oj), _lost(rows, by_oj, best), round(t_old, 2)],
                     "htj2k+thin": [str(by_ranked), _lost(rows, by_ranked, best), round(t_ranked, 2)],
                     "0.12.3": [str(by_tried), _lost(rows, by_tried, best), round(t_tried, 2)],
                     "shipped": [str(by_shipped), _lost(rows, by_shipped, best), round(t_shipped, 2),
                                 len(tried) - len(shipped)]}
            for rule, (_, lost, seconds, *skipped) in rules.items():
                behind.setdefault(rule, []).append((lost, seconds, sum(skipped)))
            print(json.dumps({"scene": rel, "side": data.shape[1], "rate": rate, "bases": [str(b) for b in rows],
                              "best": str(best), **rules,
                              "rows": {str(b): {"htj2k": r["htj2k"], "whole": r["whole"], "proxy": r["proxy"],
                                                "t": [round(t, 2) for t in r["t"]]} for b, r in rows.items()}}),
                  flush=True)
    print(markdown_table(["rule", "crop-rates", "the best base's layer", "dB behind it: mean", "most", "layer s",
                          "learned layers not coded"],
                         [[rule, len(got), sum(lost == 0 for lost, _, _ in got),
                           f"{sum(lost for lost, _, _ in got) / len(got):.3f}",
                           f"{max(lost for lost, _, _ in got):.2f}", f"{sum(s for _, s, _ in got):.1f}",
                           sum(n for _, _, n in got)] for rule, got in behind.items()]))


if __name__ == "__main__":
    main()
