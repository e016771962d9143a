"""Rate–distortion benchmark of the imagery codec against JPEG 2000 (and JPEG XL) on held-out real imagery.

Held-out data comes from the first model's ``config.json``: the whole scenes it never saw
(``data.held_out_scenes``) and the bottom validation strips of its training scenes
(``data.val_areas``, not trained on). Each is cut into 120 x 120 patches (the issue's setting),
12 bands, DNs as stored. Per patch:

- every tokenizer: index payload bytes, PSNR (per band, on clip(DN - offset, 0, 10000), range
  10000, averaged), SAM, NDVI MAE;
- JPEG 2000 (multi-component, no colour transform, largest codestream within the budget) and JPEG
  XL (per band) at the first tokenizer's payload size, and JPEG 2000 at 1/100 … 1/700 of raw.

Throughput: tiles/s of encode and decode on a whole real Major-TOM cell (1068 x 1068), with JPEG
2000 encoding of the same cell (MB/s) measured in the same run as the peer.

    nice -n 10 .venv/bin/python benchmarks/imagery_rd.py --model default --model ABLATION_DIR --j2k-reference \
        --out outputs/imagery_rd      # results.json, results.md, rd_<group>.png
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import numpy as np

from eocompress.imagery.codec.pipeline import ImageryCodec, load_tokenizer
from eocompress.imagery.codec.tokenfile import TokenFile
from eocompress.imagery.evaluation.baselines import jpeg2000_at_budget, jpeg2000_encode, jpegxl_at_budget
from eocompress.imagery.evaluation.fidelity import image_metrics
from eocompress.imagery.evaluation.report import plot_rate_distortion
from eocompress.imagery.readers.scenes import read_scene

ISSUE_J2K = {450: (24.4, 12.2), 200: (30.4, 5.8), 100: (33.7, 4.1)}  # quoted in issue 6, for scale
J2K_CURVE = (100, 200, 300, 450, 700)  # JPEG 2000 rate–distortion curve, ratios against raw uint16
FALLBACK_HELD_OUT = ("imagery/hydro/patch_10.tif", "imagery/hydro/patch_1000.tif",
                     "imagery/hydro/patch_100000.tif", "imagery/ssl4eo-s12/s2a/0000200")


def held_out_regions(cfg, root: Path) -> list[tuple[str, str, Path, tuple[int, int, int, int] | None]]:
    """(group, label, path, window or None) for every held-out scene and validation strip of the model."""
    from eocompress.imagery.readers.scenes import find_scenes

    data = getattr(cfg, "data", None) or {}
    regions = []
    for rel in data.get("held_out_scenes") or FALLBACK_HELD_OUT:
        path = Path(rel) if Path(rel).is_absolute() else root / rel
        for scene_path in find_scenes(path):
            kind = "ocean, Hydro" if "hydro" in str(scene_path) else "land"
            regions.append((f"held-out scenes ({kind})", str(scene_path.relative_to(root)), scene_path, None))
    for area in data.get("val_areas", []):
        (r0, r1), (c0, c1) = area["rows"], area["cols"]
        rel = area["scene"]
        path = Path(rel) if Path(rel).is_absolute() else root / rel
        regions.append(("validation strips of training scenes", f"{rel} rows {r0}:{r1}", path,
                        (r0, c0, r1 - r0, c1 - c0)))
    return regions


def patches(scene, size: int):
    """Non-overlapping size x size windows (row-major) of a scene with >= 99% valid pixels."""
    h, w = scene.shape
    for r in range(0, h - size + 1, size):
        for c in range(0, w - size + 1, size):
            crop = scene.crop(r, c, size, size)
            if crop.valid.mean() >= 0.99:
                yield (r, c), crop


def measure_patch(crop, codecs: dict[str, ImageryCodec], jxl: bool) -> dict:
    """All codecs on one patch: bytes, PSNR, SAM, NDVI MAE (SSIM skipped for speed)."""
    data, bands, offset, valid = crop.data, crop.bands, crop.offset, crop.valid
    out: dict = {}
    budget = None
    for name, codec in codecs.items():
        tf = codec.encode_array(data, bands, offset)
        blob = tf.to_bytes()
        parsed = TokenFile.from_bytes(blob)
        recon = codec.decode_array(parsed)
        payload = int(parsed.header["index_nbytes"])
        budget = budget or payload
        out[name] = {"bytes": payload, "file_bytes": len(blob),
                     **_m(image_metrics(data, recon, bands, offset, valid, ssim=False))}
    res = jpeg2000_at_budget(data, budget)
    out["jpeg2000@same"] = {"bytes": res.nbytes, **_m(image_metrics(data, res.recon, bands, offset, valid,
                                                                   ssim=False))} if res else None
    if jxl:
        res = jpegxl_at_budget(data, budget)
        out["jpegxl@same"] = {"bytes": res.nbytes, **_m(image_metrics(data, res.recon, bands, offset, valid,
                                                                     ssim=False))} if res else None
    for ratio in J2K_CURVE:
        res = jpeg2000_at_budget(data, data.nbytes // ratio)
        out[f"jpeg2000@1/{ratio}"] = {"bytes": res.nbytes, **_m(image_metrics(
            data, res.recon, bands, offset, valid, ssim=False))} if res else None
    return out


def _m(metrics: dict) -> dict:
    return {k: metrics[k] for k in ("psnr_db", "sam_deg", "ndvi_mae", "rmse") if k in metrics}


def aggregate(rows: list[dict], raw_bytes: int) -> dict:
    """Mean bytes/PSNR/SAM/NDVI MAE per codec over patches (a codec that misses a patch is reported)."""
    names = sorted({k for r in rows for k in r["codecs"]}, key=lambda n: (n.startswith("jpeg"), n))
    out = {}
    for name in names:
        vals = [r["codecs"][name] for r in rows if r["codecs"].get(name)]
        if not vals:
            out[name] = {"patches": 0, "missed": len(rows)}
            continue
        mean_bytes = float(np.mean([v["bytes"] for v in vals]))
        out[name] = {
            "patches": len(vals),
            "missed": len(rows) - len(vals),
            "bytes": mean_bytes,
            "ratio_vs_raw": raw_bytes / mean_bytes,
            "bits_per_pixel_per_band": 8 * mean_bytes / (raw_bytes / 2),
            **{k: float(np.mean([v[k] for v in vals if k in v])) for k in ("psnr_db", "sam_deg", "ndvi_mae")},
        }
    return out


def head_to_head(rows: list[dict]) -> list[dict]:
    """Each tokenizer against each same-size baseline on the patches where the baseline fits the budget."""
    names = sorted({k for r in rows for k in r["codecs"]})
    out = []
    for tok in [n for n in names if n.startswith("tokenizer")]:
        for base in [n for n in names if n.endswith("@same")]:
            pairs = [(r["codecs"][tok], r["codecs"][base]) for r in rows if r["codecs"].get(tok)]
            both = [(t, b) for t, b in pairs if b]
            entry = {"tokenizer": tok, "baseline": base, "patches": len(pairs), "compared": len(both),
                     "baseline_cannot_fit": len(pairs) - len(both)}
            if both:
                entry.update(
                    tokenizer_bytes=float(np.mean([t["bytes"] for t, _ in both])),
                    baseline_bytes=float(np.mean([b["bytes"] for _, b in both])),
                    tokenizer_psnr_db=float(np.mean([t["psnr_db"] for t, _ in both])),
                    baseline_psnr_db=float(np.mean([b["psnr_db"] for _, b in both])),
                    tokenizer_sam_deg=float(np.mean([t["sam_deg"] for t, _ in both])),
                    baseline_sam_deg=float(np.mean([b["sam_deg"] for _, b in both])),
                    psnr_wins=sum(t["psnr_db"] > b["psnr_db"] for t, b in both),
                    sam_wins=sum(t["sam_deg"] < b["sam_deg"] for t, b in both),
                )
            out.append(entry)
    return out


def head_to_head_table(entries: list[dict], title: str) -> str:
    head = ("| tokenizer | baseline (same size) | patches compared | baseline cannot fit | bytes tok / base "
            "| PSNR dB tok / base | SAM ° tok / base | tokenizer wins PSNR | wins SAM |")
    lines = [f"### {title}", "", head, "|---|---|---|---|---|---|---|---|---|"]
    for e in entries:
        if not e["compared"]:
            lines.append(f"| {e['tokenizer']} | {e['baseline']} | 0 | {e['baseline_cannot_fit']} | | | | | |")
            continue
        lines.append(
            f"| {e['tokenizer']} | {e['baseline']} | {e['compared']} | {e['baseline_cannot_fit']} | "
            f"{e['tokenizer_bytes']:.0f} / {e['baseline_bytes']:.0f} | {e['tokenizer_psnr_db']:.2f} / "
            f"{e['baseline_psnr_db']:.2f} | {e['tokenizer_sam_deg']:.2f} / {e['baseline_sam_deg']:.2f} | "
            f"{e['psnr_wins']}/{e['compared']} | {e['sam_wins']}/{e['compared']} |"
        )
    return "\n".join(lines)


def throughput(codec: ImageryCodec, root: Path, device: str = "cpu", repeats: int = 1) -> dict:
    """Encode/decode tiles per second on a whole real Major-TOM cell; JPEG 2000 on the same cell as peer."""
    scene = read_scene(root / "imagery/majortom-core-s2l2a/199U_1099R").select(codec.bands)
    tiles = codec.tile_count(*scene.shape)
    t0 = time.perf_counter()
    for _ in range(repeats):
        tf = codec.encode_array(scene.data, scene.bands, scene.offset)
    enc = (time.perf_counter() - t0) / repeats
    t0 = time.perf_counter()
    for _ in range(repeats):
        codec.decode_array(tf)
    dec = (time.perf_counter() - t0) / repeats
    level = 40
    t0 = time.perf_counter()
    jpeg2000_encode(scene.data, level)
    j2k = time.perf_counter() - t0
    mb = scene.data.nbytes / 1e6
    return {"scene": "majortom 199U_1099R", "shape": list(scene.data.shape), "tiles": tiles,
            "tile_size": codec.tokenizer.config.tile_size, "halo": codec.halo,
            "encode_s": enc, "decode_s": dec, "encode_tiles_per_s": tiles / enc, "decode_tiles_per_s": tiles / dec,
            "encode_MB_per_s": mb / enc, "jpeg2000_encode_s": j2k, "jpeg2000_MB_per_s": mb / j2k,
            "torch_threads": __import__("torch").get_num_threads(), "device": device}


def j2k_reference(root: Path, size: int) -> dict:
    """JPEG 2000 alone at 1/450, 1/200, 1/100 on every 120 px patch of both Major-TOM cells (issue's setting)."""
    out = {}
    for cell in ("199U_1099R", "0U_199R"):
        scene = read_scene(root / f"imagery/majortom-core-s2l2a/{cell}")
        per_ratio = {}
        for ratio in ISSUE_J2K:
            vals = []
            for _, crop in patches(scene, size):
                res = jpeg2000_at_budget(crop.data, crop.data.nbytes // ratio)
                if res is not None:
                    vals.append(_m(image_metrics(crop.data, res.recon, crop.bands, crop.offset, crop.valid,
                                                 ssim=False)))
            per_ratio[f"1/{ratio}"] = {"patches": len(vals), "psnr_db": float(np.mean([v["psnr_db"] for v in vals])),
                                       "sam_deg": float(np.mean([v["sam_deg"] for v in vals]))}
        out[cell] = per_ratio
    return out


def table(agg: dict, title: str) -> str:
    head = "| codec | patches | bytes | ratio vs raw | bits/px/band | PSNR dB | SAM ° | NDVI MAE |"
    lines = [f"### {title}", "", head, "|---|---|---|---|---|---|---|---|"]
    for name, a in agg.items():
        if not a.get("patches"):
            lines.append(f"| {name} | 0 (budget not reachable on {a['missed']}) | | | | | | |")
            continue
        miss = f" (+{a['missed']} unreachable)" if a["missed"] else ""
        lines.append(f"| {name} | {a['patches']}{miss} | {a['bytes']:.0f} | {a['ratio_vs_raw']:.0f} | "
                     f"{a['bits_per_pixel_per_band']:.4f} | {a['psnr_db']:.2f} | {a['sam_deg']:.2f} | "
                     f"{a['ndvi_mae']:.4f} |")
    return "\n".join(lines)


def plot_groups(results: dict, out: Path) -> None:
    """One rate–distortion figure per patch group (ocean and land behave too differently to pool)."""
    for k, (group, agg) in enumerate(results["aggregates"].items()):
        n = max(a.get("patches", 0) + a.get("missed", 0) for a in agg.values())
        pts = {"tokenizers": {name: [(a["bits_per_pixel_per_band"], a["psnr_db"], a["sam_deg"])]
                              for name, a in agg.items() if name.startswith("tokenizer") and a.get("patches")},
               "curves": {"jpeg2000 (fixed ratios)": [(a["bits_per_pixel_per_band"], a["psnr_db"], a["sam_deg"])
                                                      for name, a in agg.items() if name.startswith("jpeg2000@1/")
                                                      and a.get("patches") and not a["missed"]]},
               "references": [(16 / r, p, s) for r, (p, s) in ISSUE_J2K.items()]}
        for name, a in agg.items():  # same-size baselines only where they fit every patch (else subsets mix)
            if name.endswith("@same") and a.get("patches") and not a["missed"]:
                pts["tokenizers"][name] = [(a["bits_per_pixel_per_band"], a["psnr_db"], a["sam_deg"])]
        plot_rate_distortion(pts, out / f"rd_{k}.png",
                             title=f"{group}: {n} real S2 L2A patches of {results['patch']} px (means)")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", action="append", help="model name or folder (repeatable; first = budget)")
    ap.add_argument("--out", default="outputs/imagery_rd", help="folder for results.json, results.md, rd.png")
    ap.add_argument("--patch", type=int, default=120, help="patch size in pixels (default 120, as in the issue)")
    ap.add_argument("--max-patches", type=int, default=0, help="at most this many patches per region (0 = all)")
    ap.add_argument("--halo", type=int, default=2, help="codec halo in index positions")
    ap.add_argument("--no-jxl", action="store_true", help="skip the JPEG XL baseline")
    ap.add_argument("--device", default="cpu", help="torch device for the tokenizer (cpu, cuda)")
    ap.add_argument("--no-throughput", action="store_true", help="skip the throughput measurement")
    ap.add_argument("--j2k-reference", action="store_true",
                    help="also JPEG 2000 alone at 1/450, 1/200, 1/100 on all patches of both Major-TOM cells")
    args = ap.parse_args()
    root = Path(os.environ.get("EOCOMPRESS_DATA", "../shared/data"))
    models = args.model or ["default"]
    codecs = {}
    for m in models:
        name = "tokenizer:" + ("default" if m == "default" else Path(m).name)
        codecs[name] = ImageryCodec(load_tokenizer(m, args.device), halo=args.halo)
    first = next(iter(codecs.values()))
    regions = held_out_regions(first.tokenizer.config, root)
    rows = []
    t_start = time.time()
    for group, label, path, window in regions:
        scene = read_scene(path).select(first.bands)
        if window is not None:
            scene = scene.crop(*window)
        for k, ((r, c), crop) in enumerate(patches(scene, args.patch)):
            if args.max_patches and k >= args.max_patches:
                break
            rows.append({"group": group, "region": label, "row": r, "col": c, "offset": crop.offset,
                         "codecs": measure_patch(crop, codecs, jxl=not args.no_jxl)})
        print(f"[{time.time() - t_start:6.0f} s] {group}: {label} ({sum(r['region'] == label for r in rows)} patches)",
              flush=True)
    raw = 12 * args.patch * args.patch * 2
    groups = {"all held-out patches": rows}
    for g in sorted({r["group"] for r in rows}):
        groups[g] = [r for r in rows if r["group"] == g]
    results = {"patch": args.patch, "models": {n: {"model_id": c.tokenizer.model_id,
                                                    "nominal_ratio": float(c.tokenizer.compression_ratio)}
                                                for n, c in codecs.items()},
               "halo": args.halo, "aggregates": {g: aggregate(rs, raw) for g, rs in groups.items()},
               "head_to_head": {g: head_to_head(rs) for g, rs in groups.items()},
               "patches": rows}
    if not args.no_throughput:
        results["throughput"] = throughput(first, root, args.device)
    if args.j2k_reference:
        results["j2k_reference_majortom"] = j2k_reference(root, args.patch)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "results.json").write_text(json.dumps(results, indent=1, default=float))
    md = [head_to_head_table(e, f"head to head: {g}") for g, e in results["head_to_head"].items()]
    md += [table(a, f"{g} ({len(groups[g])} patches of {args.patch}x{args.patch}, 12 bands)")
           for g, a in results["aggregates"].items()]
    if "throughput" in results:
        t = results["throughput"]
        md.append(f"Throughput on {t['scene']} {t['shape']} ({t['tiles']} tiles of {t['tile_size']} px, halo "
                  f"{t['halo']}, {t['device']}, {t['torch_threads']} torch threads): "
                  f"encode {t['encode_tiles_per_s']:.1f} tiles/s "
                  f"({t['encode_MB_per_s']:.2f} MB/s of raw uint16), decode {t['decode_tiles_per_s']:.1f} tiles/s; "
                  f"JPEG 2000 encode of the same cell {t['jpeg2000_MB_per_s']:.2f} MB/s "
                  f"(tokenizer/JPEG 2000 encode speed = {t['encode_MB_per_s'] / t['jpeg2000_MB_per_s']:.2f}).")
    if "j2k_reference_majortom" in results:
        ref = ["| Major-TOM cell | " + " | ".join(f"1/{r}: PSNR dB / SAM °" for r in ISSUE_J2K) + " |",
               "|---|" + "---|" * len(ISSUE_J2K),
               "| issue 6 (quoted) | " + " | ".join(f"{p} / {s}" for p, s in ISSUE_J2K.values()) + " |"]
        for cell, per in results["j2k_reference_majortom"].items():
            ref.append(f"| {cell} ({per['1/450']['patches']} patches) | " + " | ".join(
                f"{v['psnr_db']:.1f} / {v['sam_deg']:.1f}" for v in per.values()) + " |")
        md.append("### JPEG 2000 alone on the Major-TOM cells (reproducing the issue's figures)\n\n" + "\n".join(ref))
    text = "\n\n".join(md)
    (out / "results.md").write_text(text + "\n")
    print(text)
    plot_groups(results, out)
    print(f"wrote {out}/results.json, results.md, rd_*.png in {time.time() - t_start:.0f} s")


if __name__ == "__main__":
    main()
