"""Downstream accuracy at equal size: a land-cover classifier on original vs reconstructed Sentinel-2 imagery.

The eo-learn Slovenia scenes (``$EOCOMPRESS_DATA/imagery/eolearn-s2l1c-slovenia/ref_scene_{i}_13band_L1C.tif``,
101 x 100 px, EPSG:32633) lie on exactly the grid of the Presto land-cover labels
(``$EOCOMPRESS_DATA/embeddings/presto_lulc_slovenia.npz``: ``y`` row-major over (row, col), same transform;
checked below). The labelled area IS the whole scene, so the whole scene is encoded (no margin exists).

Per clear scene (2015-07-11, 2015-08-30, 2015-09-09; the two cloudy dates are left out) and per split
(stratified random 70/30 and spatial blocks, both from ``embeddings/evaluation/splits.py``):

* a random forest is trained on the ORIGINAL pixels (12 bands the codecs code, as reflectance, plus the
  3 x 3 mean of each band) and tested on the original test pixels and on the same pixels of each codec's
  reconstruction (``learned``, ``jpeg2000``, ``klt+jpeg2000`` through ``eocompress.imagery.codecs`` at
  raw uint16 / 200, 450, 1000);
* a forest trained on each reconstruction is tested on the original test pixels;
* statistics as the embedding study (``embeddings/evaluation/stats.py``): exact McNemar of the
  correctness against the original's, paired bootstrap 95 % CI of the accuracy difference, per-class F1
  drop; plus agreement with the original's predictions and the NDVI (B04/B08) mean absolute error.

    nice -n 10 .venv/bin/python benchmarks/imagery/downstream.py --out /tmp/downstream.json \\
        --md /tmp/downstream_tables.md --plots docs/img

Class 0 (no data) is never trained or scored. The 3 x 3 context of a spatial-split test pixel on a
block edge reads a training neighbour's pixels (never its label).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
from scipy.ndimage import uniform_filter
from sklearn.ensemble import RandomForestClassifier

from eocompress.embeddings.evaluation.splits import random_split, spatial_block_split
from eocompress.embeddings.evaluation.stats import mcnemar_exact, paired_bootstrap_ci, per_class_f1
from eocompress.errors import DataMissingError, EOCompressError, InputError
from eocompress.imagery.codecs import get_codec, to_input_convention
from eocompress.imagery.readers.scenes import QUANTIFICATION_VALUE, Scene, read_scene

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # benchmarks/: the shared helpers
from common import IMAGERY_PACKAGES, data_file, machine, machine_line, markdown_table

CODECS = ("learned", "jpeg2000", "klt+jpeg2000")
RATIOS = (200.0, 450.0, 1000.0)
#: ref_scene_{i} -> acquisition date (embeddings/README.md: scenes matched by NDVI to eo-learn's timestamps).
SCENE_DATES = {0: "2015-08-20", 1: "2015-07-31", 2: "2015-09-09", 3: "2015-08-30", 4: "2015-07-11"}
CLEAR_SCENES = (4, 3, 2)  # 0 and 1 are (near-)fully cloudy
SPLITS = ("random", "spatial")
SPATIAL_BLOCKS = 5  # 5 x 5 blocks of ~20 x 20 px: the 3 x 3 context rarely crosses into a training block
N_TREES = 100


def scene_path(data_root: Path, index: int) -> Path:
    """The eo-learn stacked L1C GeoTIFF of scene ``index``."""
    return data_root / "imagery" / "eolearn-s2l1c-slovenia" / f"ref_scene_{index}_13band_L1C.tif"


def load_labels(data_root: Path, scene: Scene) -> np.ndarray:
    """LULC id per pixel (H, W) of the Presto labels, after checking they lie on ``scene``'s grid."""
    path = data_root / "embeddings" / "presto_lulc_slovenia.npz"
    if not path.exists():
        raise DataMissingError(f"{path} does not exist; set EOCOMPRESS_DATA to the folder holding embeddings/")
    with np.load(path) as npz:
        y, row, col, transform = npz["y"], npz["row"], npz["col"], npz["transform"]
    h, w = scene.shape
    ours = np.array([scene.transform.a, scene.transform.b, scene.transform.c,
                     scene.transform.d, scene.transform.e, scene.transform.f])
    if y.size != h * w or not np.allclose(ours, transform, atol=1e-3):
        raise InputError(f"the labels ({y.size} px, transform {transform.tolist()}) are not on the {h}x{w} grid "
                         f"of the scene ({ours.tolist()}); give the eo-learn Slovenia scene")
    labels = np.zeros((h, w), np.int64)
    labels[row.astype(int), col.astype(int)] = y
    return labels


def reflectance(dn: np.ndarray, offset: int) -> np.ndarray:
    """Reflectance float32 (C, H, W) from DN with ``offset`` removed (what the classifier sees)."""
    return (dn.astype(np.float32) - np.float32(offset)) / np.float32(QUANTIFICATION_VALUE)


def pixel_features(refl: np.ndarray) -> np.ndarray:
    """Per-pixel features (H*W, 2C): each band's value and its 3 x 3 mean (edges repeated)."""
    context = uniform_filter(refl, size=(1, 3, 3), mode="nearest")
    c = refl.shape[0]
    return np.concatenate([refl.reshape(c, -1), context.reshape(c, -1)]).T


def ndvi(refl: np.ndarray, bands: list[str]) -> np.ndarray:
    """NDVI (H, W) from B04 and B08 reflectance (0 where both are 0)."""
    red, nir = refl[bands.index("B04")], refl[bands.index("B08")]
    den = nir + red
    return np.where(den != 0, (nir - red) / np.where(den != 0, den, 1), 0.0)


def fit_forest(x: np.ndarray, y: np.ndarray, seed: int = 0, trees: int = N_TREES) -> RandomForestClassifier:
    """A seeded random forest on (pixels, features); two threads (the benchmark machine has two cores)."""
    return RandomForestClassifier(n_estimators=trees, n_jobs=2, random_state=seed).fit(x, y)


def compare(y_true: np.ndarray, pred_base: np.ndarray, pred_other: np.ndarray, classes: np.ndarray,
            seed: int = 0) -> dict[str, Any]:
    """Accuracy of both, difference with bootstrap 95 % CI, exact McNemar p, agreement, per-class F1 change."""
    ok_base, ok_other = pred_base == y_true, pred_other == y_true
    lo, hi = paired_bootstrap_ci(ok_base, ok_other, seed=seed)
    f1_base = per_class_f1(y_true, pred_base, classes)
    f1_other = per_class_f1(y_true, pred_other, classes)
    return {
        "acc_base": float(ok_base.mean()), "acc": float(ok_other.mean()),
        "diff": float(ok_other.mean() - ok_base.mean()), "ci95": [lo, hi],
        "mcnemar_p": mcnemar_exact(ok_base, ok_other),
        "agreement": float(np.mean(pred_base == pred_other)),
        "f1_drop": {int(c): float(b - o) for c, b, o in zip(classes, f1_base, f1_other, strict=True)},
    }


def reconstruct(name: str, codec: Any, scene: Scene, ratio: float) -> tuple[np.ndarray | None, int, str]:
    """(DN in the scene's convention or None, file bytes, note) of one encode/decode at raw uint16 / ``ratio``."""
    try:
        blob = codec.encode(scene, ratio=ratio)
    except EOCompressError as exc:  # e.g. an anchor that cannot fit 242 bytes
        return None, 0, str(exc).splitlines()[0]
    dn, georef = codec.decode(blob)
    return to_input_convention(np.asarray(dn), georef, scene.offset), len(blob), ""


def split_mask(kind: str, labels_flat: np.ndarray, coords: np.ndarray, seed: int) -> np.ndarray:
    """Test mask over the labelled pixels: stratified random 30 % or spatial blocks (30 %)."""
    if kind == "random":
        return random_split(labels_flat, len(labels_flat), test_size=0.3, seed=seed)
    return spatial_block_split(coords, test_size=0.3, seed=seed, blocks_per_side=SPATIAL_BLOCKS)


def run_scene(data_root: Path, index: int, codecs: dict[str, Any], ratios: tuple[float, ...],
              splits: tuple[str, ...] = SPLITS, seed: int = 0, trees: int = N_TREES,
              window: tuple[int, int, int, int] | None = None) -> dict[str, Any]:
    """All measurements for one scene: reconstructions, NDVI error, both train/test directions per split.

    ``window`` (row, col, height, width) crops the scene first (for a fast test); labels follow the crop.
    """
    first = next(iter(codecs.values()))
    scene = read_scene(scene_path(data_root, index))
    labels = load_labels(data_root, scene)
    scene = scene.select(first.bands)
    if window is not None:
        r, c, h, w = window
        scene, labels = scene.crop(r, c, h, w), labels[r:r + h, c:c + w]
    bands = list(scene.bands)
    h, w = scene.shape
    raw = len(bands) * h * w * 2
    orig_refl = reflectance(scene.data, scene.offset)
    orig_x = pixel_features(orig_refl)
    orig_ndvi = ndvi(orig_refl, bands)
    flat = labels.ravel()
    keep = flat != 0
    rows, cols = np.divmod(np.arange(h * w), w)
    coords = np.stack([rows, cols], axis=1)[keep]
    y = flat[keep]
    classes = np.unique(y)

    recon: dict[tuple[str, float], dict[str, Any]] = {}
    for name, codec in codecs.items():
        for ratio in ratios:
            t0 = time.perf_counter()
            dn, size, note = reconstruct(name, codec, scene, ratio)
            entry: dict[str, Any] = {"codec": name, "ratio": ratio, "bytes": size, "note": note,
                                     "bpp": 8.0 * size / (h * w), "seconds": 0.0}
            if dn is not None:
                refl = reflectance(dn, scene.offset)
                entry["x"] = pixel_features(refl)
                entry["refl"] = refl
                entry["ndvi_mae"] = float(np.mean(np.abs(ndvi(refl, bands) - orig_ndvi)))
                entry["rmse_dn"] = float(np.sqrt(np.mean((dn.astype(np.float64) - scene.data) ** 2)))
            entry["seconds"] = time.perf_counter() - t0
            recon[(name, ratio)] = entry

    out: dict[str, Any] = {"scene": index, "date": SCENE_DATES.get(index), "shape": [h, w], "bands": bands,
                           "raw_bytes": raw, "labelled": int(keep.sum()),
                           "class_counts": {int(c): int((y == c).sum()) for c in classes},
                           "splits": {}, "codecs": []}
    for entry in recon.values():
        out["codecs"].append({k: v for k, v in entry.items() if k not in ("x", "refl")})
    for kind in splits:
        test = split_mask(kind, y, coords, seed)
        train = ~test
        x_orig = orig_x[keep]
        forest = fit_forest(x_orig[train], y[train], seed, trees)
        pred_orig = forest.predict(x_orig[test])
        y_test = y[test]
        majority = float(np.mean(y_test == np.bincount(y[train]).argmax()))
        rows_out = []
        for (name, ratio), entry in recon.items():
            row: dict[str, Any] = {"codec": name, "ratio": ratio, "bytes": entry["bytes"], "note": entry["note"]}
            if "x" in entry:
                x_rec = entry["x"][keep]
                row["test_on_recon"] = compare(y_test, pred_orig, forest.predict(x_rec[test]), classes, seed)
                trained = fit_forest(x_rec[train], y[train], seed, trees)
                row["train_on_recon"] = compare(y_test, pred_orig, trained.predict(x_orig[test]), classes, seed)
            rows_out.append(row)
        out["splits"][kind] = {"n_train": int(train.sum()), "n_test": int(test.sum()),
                               "acc_original": float(np.mean(pred_orig == y_test)), "majority": majority,
                               "f1_original": {int(c): float(f) for c, f in
                                               zip(classes, per_class_f1(y_test, pred_orig, classes), strict=True)},
                               "rows": rows_out}
    out["_recon"] = recon  # arrays for the plots; dropped before JSON
    out["_orig_refl"] = orig_refl
    return out


# --------------------------------------------------------------------------- report


def _fmt_ratio(r: float) -> str:
    return f"1/{int(r)}"


def _pstar(p: float) -> str:
    return f"{p:.3g}" + (" *" if p < 0.05 else "")


def markdown(results: list[dict[str, Any]]) -> str:
    """Per-row tables (scene x split x codec x ratio) of both directions, NDVI error and per-class F1 drops."""
    lines: list[str] = []
    lines.append("### Reconstruction size and fidelity\n")
    lines.append(markdown_table(
        ["scene", "codec", "ratio", "bytes", "bits/px", "RMSE (DN)", "NDVI MAE", "note"],
        [[res["date"], e["codec"], _fmt_ratio(e["ratio"]), e["bytes"] or "—", f"{e['bpp']:.3f}",
          f"{e.get('rmse_dn', float('nan')):.1f}", f"{e.get('ndvi_mae', float('nan')):.4f}", e["note"][:70]]
         for res in results for e in res["codecs"]]))
    for direction, title in (("test_on_recon", "Trained on originals, tested on reconstructions"),
                             ("train_on_recon", "Trained on reconstructions, tested on originals")):
        lines.append(f"\n### {title}\n")
        lines.append("Δ = accuracy − the original-trained, original-tested accuracy on the same test pixels; "
                     "CI: paired bootstrap 95 %; p: exact McNemar (* < 0.05); agree: same label as the "
                     "original's prediction.\n")
        rows: list[list[object]] = []
        for res in results:
            for kind, sp in res["splits"].items():
                for row in sp["rows"]:
                    head = [res["date"], kind, f"{sp['acc_original']:.4f}", row["codec"], _fmt_ratio(row["ratio"])]
                    m = row.get(direction)
                    if m is None:
                        rows.append([*head, "—", "—", "—", "—", "—"])
                        continue
                    rows.append([*head, f"{m['acc']:.4f}", f"{m['diff']:+.4f}",
                                 f"[{m['ci95'][0]:+.4f}, {m['ci95'][1]:+.4f}]", _pstar(m["mcnemar_p"]),
                                 f"{m['agreement']:.3f}"])
        lines.append(markdown_table(
            ["scene", "split", "orig acc", "codec", "ratio", "acc", "Δ", "95 % CI", "McNemar p", "agree"], rows))
    lines.append("\n### Per-class F1 drop (original-trained, tested on reconstructions; F1 original − F1 recon)\n")
    classes = sorted({c for res in results for c in res["class_counts"]})
    f1_rows: list[list[object]] = []
    for res in results:
        for kind, sp in res["splits"].items():
            f1_rows.append([res["date"], kind, "original F1", "—",
                            *(f"{sp['f1_original'].get(c, float('nan')):.3f}" for c in classes)])
            for row in sp["rows"]:
                m = row.get("test_on_recon")
                if m is None:
                    continue
                f1_rows.append([res["date"], kind, row["codec"], _fmt_ratio(row["ratio"]),
                                *(f"{m['f1_drop'].get(c, float('nan')):+.3f}" for c in classes)])
    lines.append(markdown_table(["scene", "split", "codec", "ratio", *(f"F1 drop {c}" for c in classes)], f1_rows))
    lines.append("\n### Mean over scenes (Δ accuracy, trained on originals, tested on reconstructions)\n")
    mean_rows: list[list[object]] = []
    for kind in SPLITS:
        keys = sorted({(r["codec"], r["ratio"]) for res in results if kind in res["splits"]
                       for r in res["splits"][kind]["rows"]}, key=lambda k: (k[1], CODECS.index(k[0])
                                                                           if k[0] in CODECS else 9))
        for codec, ratio in keys:
            ms = [r["test_on_recon"] for res in results if kind in res["splits"] for r in res["splits"][kind]["rows"]
                  if r["codec"] == codec and r["ratio"] == ratio and "test_on_recon" in r]
            if not ms:
                mean_rows.append([kind, codec, _fmt_ratio(ratio), "not reachable", "—"])
                continue
            sig = sum(m["mcnemar_p"] < 0.05 for m in ms)
            mean_rows.append([kind, codec, _fmt_ratio(ratio), f"{np.mean([m['diff'] for m in ms]):+.4f}",
                              f"{sig} of {len(ms)}"])
    lines.append(markdown_table(["split", "codec", "ratio", "mean Δ", "scenes with McNemar p < 0.05"], mean_rows))
    return "\n".join(lines) + "\n"


def plot_histograms(res: dict[str, Any], ratio: float, path: Path) -> None:
    """Per-band reflectance histograms: original vs each codec's reconstruction at ``ratio``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    bands = res["bands"]
    orig = res["_orig_refl"]
    fig, axes = plt.subplots(3, 4, figsize=(14, 9))
    colours = {"learned": "tab:red", "jpeg2000": "tab:blue", "klt+jpeg2000": "tab:green"}
    for b, ax in enumerate(axes.ravel()[: len(bands)]):
        lo, hi = np.percentile(orig[b], [0.5, 99.5])
        edges = np.linspace(lo - 0.1 * (hi - lo), hi + 0.1 * (hi - lo), 60)
        ax.hist(orig[b].ravel(), bins=edges, histtype="stepfilled", color="0.75", label="original")
        for (name, r), entry in res["_recon"].items():
            if r == ratio and "refl" in entry:
                ax.hist(entry["refl"][b].ravel(), bins=edges, histtype="step", lw=1.4,
                        color=colours.get(name), label=f"{name} ({entry['bytes']} B)")
        ax.set_title(bands[b], fontsize=10)
        ax.tick_params(labelsize=7)
    axes.ravel()[0].legend(fontsize=7)
    fig.suptitle(f"eo-learn Slovenia {res['date']}: per-band reflectance histograms, original vs reconstructions "
                 f"at {_fmt_ratio(ratio)} of raw uint16")
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def plot_accuracy(results: list[dict[str, Any]], path: Path) -> None:
    """Δ accuracy vs bits per pixel, each codec, both splits (one point per scene, line through the mean)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(12, 4.5), sharey=True)
    colours = {"learned": "tab:red", "jpeg2000": "tab:blue", "klt+jpeg2000": "tab:green"}
    for ax, kind in zip(axes, SPLITS, strict=True):
        for codec in CODECS:
            pts = []
            for res in results:
                h, w = res["shape"]
                for row in res["splits"].get(kind, {"rows": []})["rows"]:
                    if row["codec"] == codec and "test_on_recon" in row:
                        pts.append((row["ratio"], 8.0 * row["bytes"] / (h * w), row["test_on_recon"]["diff"]))
            if not pts:
                continue
            ratio, xs, ys = np.array(pts).T
            ax.scatter(xs, ys, s=14, color=colours[codec], alpha=0.5)
            means = np.array([(xs[ratio == r].mean(), ys[ratio == r].mean()) for r in np.unique(ratio)])
            ax.plot(means[:, 0], means[:, 1], "-o", color=colours[codec], label=f"{codec} (mean over scenes)")
        ax.axhline(0, color="0.5", lw=0.8)
        ax.set_xscale("log")
        ax.set_xlabel("bits per pixel (whole file, 12 bands)")
        ax.set_title(f"{kind} split: trained on originals, tested on reconstructions")
        ax.legend(fontsize=8)
    axes[0].set_ylabel("accuracy − original accuracy")
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark over the clear scenes and write JSON, markdown tables and plots."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=None, help="the shared data folder (default: $EOCOMPRESS_DATA)")
    ap.add_argument("--scenes", type=int, nargs="+", default=list(CLEAR_SCENES))
    ap.add_argument("--codecs", nargs="+", default=list(CODECS))
    ap.add_argument("--ratios", type=float, nargs="+", default=list(RATIOS))
    ap.add_argument("--trees", type=int, default=N_TREES)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, help="JSON results")
    ap.add_argument("--md", type=Path, help="markdown tables")
    ap.add_argument("--plots", type=Path, help="folder for downstream_*.png")
    args = ap.parse_args(argv)
    if args.data is None:  # the scenes' folder is there, or one line saying what to set (exit 2)
        args.data = data_file("imagery/eolearn-s2l1c-slovenia").parents[1]
    elif not args.data.is_dir():
        raise SystemExit(f"error: --data {args.data} is not a folder; give the shared data folder")
    print(machine_line(IMAGERY_PACKAGES), flush=True)
    t0 = time.perf_counter()
    codecs = {name: get_codec(name) for name in args.codecs}
    results = []
    for index in args.scenes:
        res = run_scene(Path(args.data), index, codecs, tuple(args.ratios), seed=args.seed, trees=args.trees)
        results.append(res)
        print(f"scene {index} ({res['date']}) done at {time.perf_counter() - t0:.0f} s", flush=True)
    wall = time.perf_counter() - t0
    table = markdown(results)
    print(table)
    print(f"wall time {wall:.0f} s")
    if args.plots:
        args.plots.mkdir(parents=True, exist_ok=True)
        plot_histograms(results[0], 450.0, args.plots / "downstream_histograms_450.png")
        plot_accuracy(results, args.plots / "downstream_accuracy.png")
    if args.md:
        args.md.write_text(table)
    if args.out:
        clean = [{k: v for k, v in r.items() if not k.startswith("_")} for r in results]
        args.out.write_text(json.dumps({"machine": machine(IMAGERY_PACKAGES), "wall_s": wall,
                                        "codecs": {n: c.describe() for n, c in codecs.items()}, "results": clean},
                                       indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
