"""Rate–distortion benchmark of the imagery codec against JPEG 2000 and KLT + JPEG 2000 on held-out places.

Groups (``eocompress.imagery.places.held_out_scenes``, never trained on): whole L1C city scenes (OSCD,
6 unseen cities x 2 dates), L2A 264 x 264 scenes (SSL4EO-S12) and L2A 120 x 120 patches cut from a
held-out Major-TOM cell. The 12 L2A bands (B01 … B12, B8A; B10 dropped from L1C) as stored, uint16.

For each scene and each operating point (1/200, 1/450, 1/1000 of raw uint16), our **whole file** is
encoded, decoded and measured; then both classical anchors are fitted **to the same number of bytes**:

- JPEG 2000: OpenJPEG through imagecodecs, all 12 bands as one multi-component image, 9/7 wavelet, no
  colour transform, its PSNR target searched until the whole file fits the budget;
- KLT + JPEG 2000: per-file PCA across the bands (orthonormal, float16 basis, uint16 means and the
  component offsets counted in the size), components coded the same way (JPEG 2000 Part 2 style).

Metrics from the one fidelity module: PSNR pooled over the 12 bands on clip(DN - offset, 0, 10000),
data range 10000; SAM in degrees. Throughput (tiles of 256 x 256 px x 12 bands per second, MB/s of raw
uint16) of our encode/decode beside JPEG 2000's, in the same run. Figures: ``docs/img/imagery_rd.png``
and side-by-side pictures ``docs/img/imagery_{desert,coast,farmland}.png``; table ``docs/benchmarks/imagery.md``.

    nice -n 10 .venv/bin/python benchmarks/imagery_rd.py             # full run (learned codec when present)
    nice -n 10 .venv/bin/python benchmarks/imagery_rd.py --quick     # CI-size: a few scenes, no docs written
    nice -n 10 .venv/bin/python benchmarks/imagery_rd.py --codec vq  # the old fixed-rate VQ tokenizer

Every codec — ours and both anchors — is used through the one imagery codec interface
(:mod:`eocompress.imagery.codecs`): ``encode(scene, ratio=|target_bytes=) -> bytes``, ``decode(bytes)``.
The anchors' files carry the georeference and their side information, like ours, and are searched
(bisection on OpenJPEG's PSNR target) to the largest whole file not over our file's bytes.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from eocompress.errors import EOCompressError
from eocompress.imagery.codecs import SceneCodec, get_codec, to_input_convention
from eocompress.imagery.evaluation.fidelity import dn_psnr_sam
from eocompress.imagery.readers.bands import S2_L2A_BANDS
from eocompress.imagery.readers.scenes import Scene, read_scene

RATIOS = (200, 450, 1000)
GROUPS = {
    "l1c_cities": "held-out L1C city scenes, whole (OSCD)",
    "l2a_264": "held-out L2A scenes, 264 x 264 (SSL4EO-S12)",
    "l2a_120": "L2A patches, 120 x 120 (held-out Major-TOM cell)",
}
TILE_PX = 256 * 256  # throughput unit: a 256 x 256 px tile of 12 bands
PEERS = ("ours", "jpeg2000", "klt+jpeg2000")
DESERT, COAST = "abudhabi/imgs_1", "hongkong/imgs_1"
ROOT = Path(__file__).resolve().parents[1]


# --------------------------------------------------------------------------- our codec, old or new


def pick_codec(choice: str, model: str, device: str) -> SceneCodec:
    """Our codec from the registry: ``learned`` when asked or when its model loads (``auto``), else ``vq``."""
    if choice != "auto":
        return get_codec(choice, model=model, device=device)
    try:
        return get_codec("learned", model=model, device=device)
    except (ImportError, EOCompressError) as exc:
        print(f"learned codec not usable ({exc}); measuring the old VQ tokenizer instead", flush=True)
        return get_codec("vq", model=model, device=device)


# --------------------------------------------------------------------------- items


@dataclass
class Item:
    """One held-out image: 12-band DN stack in the file's convention, its offset and valid mask."""

    group: str
    label: str
    dn: np.ndarray
    offset: int
    valid: np.ndarray
    results: dict[int, dict[str, Any]] = field(default_factory=dict)
    recon: dict[str, np.ndarray] = field(default_factory=dict)

    @property
    def raw_bytes(self) -> int:
        return int(self.dn.nbytes)

    def scene(self) -> Scene:
        """The item as a scene for the codec interface."""
        return Scene(self.dn, list(S2_L2A_BANDS), valid=self.valid, offset=self.offset)


def load_items(quick: bool, max_patches: int, cities_wanted: list[str] | None = None) -> list[Item]:
    """Held-out images of the three groups (quick: one of each kind and a few patches)."""
    from eocompress.imagery import places

    scenes = places.held_out_scenes()
    items: list[Item] = []
    cities = scenes["l1c_cities"]
    if cities_wanted:
        cities = [p for p in cities if any(str(p).endswith(c) for c in cities_wanted)]
    elif quick:
        cities = [p for p in cities if str(p).endswith(DESERT)]
    for path in cities:
        s = read_scene(path).select(S2_L2A_BANDS)
        items.append(Item("l1c_cities", f"{path.parent.name}/{path.name}", s.data, s.offset, s.valid))
    for path in scenes["l2a_264"][: 1 if quick else None]:
        s = read_scene(path).select(S2_L2A_BANDS)
        items.append(Item("l2a_264", path.name, s.data, s.offset, s.valid))
    for path in scenes["l2a_120"]:
        s = read_scene(path).select(S2_L2A_BANDS)
        windows = [(r, c) for r, c in places.patches(s.data, places.PATCH)
                   if s.valid[r : r + places.PATCH, c : c + places.PATCH].mean() >= 0.99]
        keep = np.linspace(0, len(windows) - 1, min(len(windows), max_patches)).round().astype(int)
        for k in sorted(set(keep.tolist())):
            r, c = windows[k]
            crop = s.crop(r, c, places.PATCH, places.PATCH)
            items.append(Item("l2a_120", f"{path.parent.name} r{r} c{c}", crop.data, crop.offset, crop.valid))
    return items


# --------------------------------------------------------------------------- measuring


def _run(codec: SceneCodec, item: Item, **rate: Any) -> tuple[dict[str, Any], np.ndarray] | None:
    """Encode (at ``rate``), decode and measure one codec on ``item``; None when it cannot fit the rate."""
    scene = item.scene()
    t0 = time.perf_counter()
    try:
        blob = codec.encode(scene, **rate)
    except EOCompressError:
        return None
    t1 = time.perf_counter()
    recon, georef = codec.decode(blob)
    t2 = time.perf_counter()
    recon = to_input_convention(recon, georef, item.offset)
    psnr, sam = dn_psnr_sam(item.dn, recon, item.offset, item.valid)
    runs = max(1, int(getattr(codec, "last_encodes", 1) or 1))  # an anchor's time per encoder run
    return {"bytes": len(blob), "psnr_db": psnr, "sam_deg": sam, "encode_s": (t1 - t0) / runs,
            "decode_s": t2 - t1}, recon


def measure(item: Item, ours: SceneCodec, anchors: dict[str, SceneCodec], ratio: int,
            keep_recon: bool) -> dict[str, Any]:
    """Ours at ``ratio``, then JPEG 2000 and KLT + JPEG 2000 at (at most) our file's bytes; sizes, PSNR, SAM, times."""
    out: dict[str, Any] = {}
    got = _run(ours, item, **({"ratio": float(ratio)} if ratio else {}))
    if got is None:
        raise EOCompressError(f"{ours.name} cannot encode {item.label} at 1/{ratio}")
    out["ours"], recon = got
    if keep_recon:
        item.recon["ours"] = recon
    for peer, codec in anchors.items():
        got = _run(codec, item, target_bytes=out["ours"]["bytes"])
        out[peer] = got[0] if got else None
        if got and keep_recon:
            item.recon[peer] = got[1]
        if got and peer == "klt+jpeg2000":
            out[peer]["components"] = int(getattr(codec, "last_components", 0))
    return out


def aggregate(items: list[Item], ratios: tuple[int, ...]) -> dict[str, dict[str, Any]]:
    """Per group and operating point: mean bytes, ratio, PSNR, SAM per codec; our wins against each anchor."""
    agg: dict[str, dict[str, Any]] = {}
    for group in GROUPS:
        rows = [i for i in items if i.group == group]
        if not rows:
            continue
        per_ratio: dict[str, Any] = {}
        for ratio in ratios:
            entry: dict[str, Any] = {"images": len(rows)}
            raw = float(np.mean([i.raw_bytes for i in rows]))
            for peer in PEERS:
                vals = [i.results[ratio][peer] for i in rows if i.results.get(ratio, {}).get(peer)]
                if not vals:
                    entry[peer] = {"images": 0}
                    continue
                mean_bytes = float(np.mean([v["bytes"] for v in vals]))
                entry[peer] = {
                    "images": len(vals),
                    "bytes": mean_bytes,
                    "ratio": float(np.mean([i.raw_bytes / i.results[ratio][peer]["bytes"] for i in rows
                                            if i.results[ratio].get(peer)])),
                    "psnr_db": float(np.mean([v["psnr_db"] for v in vals])),
                    "sam_deg": float(np.mean([v["sam_deg"] for v in vals])),
                }
            for peer in PEERS[1:]:
                pairs = [(i.results[ratio]["ours"], i.results[ratio][peer]) for i in rows if i.results[ratio].get(peer)]
                entry[f"wins_vs_{peer}"] = {
                    "psnr": sum(o["psnr_db"] > p["psnr_db"] for o, p in pairs),
                    "sam": sum(o["sam_deg"] < p["sam_deg"] for o, p in pairs),
                    "of": len(pairs),
                }
            entry["raw_bytes"] = raw
            per_ratio[str(ratio)] = entry
        agg[group] = per_ratio
    return agg


def throughput(items: list[Item], ratio: int) -> dict[str, dict[str, float]]:
    """Encode/decode speed per group at ``ratio``: ours and JPEG 2000 (one encode at the final rate)."""
    out: dict[str, dict[str, float]] = {}
    for group in GROUPS:
        rows = [i for i in items if i.group == group and i.results.get(ratio)]
        if not rows:
            continue
        px = sum(i.dn.shape[1] * i.dn.shape[2] for i in rows)
        mb = sum(i.raw_bytes for i in rows) / 1e6
        entry: dict[str, float] = {"tiles": px / TILE_PX, "raw_MB": mb}
        for peer in ("ours", "jpeg2000"):
            done = [i.results[ratio][peer] for i in rows if i.results[ratio].get(peer)]
            if len(done) != len(rows):
                continue
            for step in ("encode", "decode"):
                seconds = sum(d[f"{step}_s"] for d in done)
                entry[f"{peer}_{step}_tiles_per_s"] = px / TILE_PX / seconds
                entry[f"{peer}_{step}_MB_per_s"] = mb / seconds
        out[group] = entry
    return out


# --------------------------------------------------------------------------- reporting


def markdown(results: dict[str, Any]) -> str:
    """The results tables (one per group) and the throughput table, as Markdown."""
    agg, thr = results["aggregates"], results["throughput"]
    lines = []
    for group, per_ratio in agg.items():
        n = next(iter(per_ratio.values()))["images"]
        lines += [f"### {GROUPS[group]}: {n} image{'s' if n != 1 else ''}", "",
                  "| target | ours: ratio, PSNR dB / SAM ° | JPEG 2000, same size | KLT + JPEG 2000, same size "
                  "| ours beats JPEG 2000 (PSNR, SAM) | ours beats KLT + JPEG 2000 (PSNR, SAM) |",
                  "|---|---|---|---|---|---|"]
        for ratio, e in per_ratio.items():
            cells = []
            for peer in PEERS:
                v = e[peer]
                if not v.get("images"):
                    cells.append("does not fit")
                    continue
                short = f" ({v['images']}/{e['images']} fit)" if v["images"] != e["images"] else ""
                size = f"{v['ratio']:.0f}x, " if peer == "ours" else ""
                cells.append(f"{size}{v['psnr_db']:.2f} / {v['sam_deg']:.2f}{short}")
            wins = [f"{e[f'wins_vs_{p}']['psnr']}/{e[f'wins_vs_{p}']['of']}, "
                    f"{e[f'wins_vs_{p}']['sam']}/{e[f'wins_vs_{p}']['of']}" for p in PEERS[1:]]
            target = f"1/{ratio}" if results["ladder"] else "fixed rate"
            lines.append(f"| {target} | " + " | ".join(cells + wins) + " |")
        lines.append("")
    ratio = results["throughput_ratio"]
    rate = f"1/{ratio}" if ratio else "the fixed rate"
    lines += [f"### Throughput at {rate} ({results['machine']})", "",
              "| group | tiles (256² px x 12 bands) | ours encode tiles/s (MB/s) | ours decode tiles/s (MB/s) "
              "| JPEG 2000 encode tiles/s (MB/s) | JPEG 2000 decode tiles/s (MB/s) |", "|---|---|---|---|---|---|"]
    for group, t in thr.items():
        cells = []
        for key in ("ours_encode", "ours_decode", "jpeg2000_encode", "jpeg2000_decode"):
            cells.append(f"{t[f'{key}_tiles_per_s']:.2f} ({t[f'{key}_MB_per_s']:.2f})" if f"{key}_tiles_per_s" in t
                         else "–")
        lines.append(f"| {GROUPS[group]} | {t['tiles']:.1f} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def plot_rd(results: dict[str, Any], path: Path) -> None:
    """PSNR and SAM against the whole-file ratio, one column per group, the three codecs as curves."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    agg = results["aggregates"]
    fig, axes = plt.subplots(2, len(agg), figsize=(4.6 * len(agg), 7), squeeze=False)
    style = {"ours": ("C3", "o", "ours (" + results["codec"] + ")"), "jpeg2000": ("C0", "s", "JPEG 2000"),
             "klt+jpeg2000": ("C2", "^", "KLT + JPEG 2000")}
    for col, (group, per_ratio) in enumerate(agg.items()):
        for peer, (color, marker, label) in style.items():
            pts = sorted((e[peer]["ratio"], e[peer]["psnr_db"], e[peer]["sam_deg"])
                         for e in per_ratio.values() if e[peer].get("images"))
            if not pts:
                continue
            x, p, s = zip(*pts, strict=True)
            axes[0, col].plot(x, p, color=color, marker=marker, label=label)
            axes[1, col].plot(x, s, color=color, marker=marker, label=label)
        n = next(iter(per_ratio.values()))["images"]
        axes[0, col].set_title(f"{GROUPS[group]}\n({n} images, means)", fontsize=9)
        for row, ylabel in enumerate(("PSNR dB (pooled, range 10000)", "SAM ° (lower is better)")):
            ax = axes[row, col]
            ax.set_xscale("log")
            ax.set_xlabel("compression ratio vs raw uint16 (whole files)")
            ax.set_ylabel(ylabel)
            ax.grid(alpha=0.3)
        axes[0, col].legend(fontsize=8)
    fig.suptitle("Held-out Sentinel-2, 12 bands: ours vs JPEG 2000 and KLT + JPEG 2000 at the same file size")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _rgb(dn: np.ndarray, offset: int, idx: tuple[int, int, int], lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    x = np.clip(dn[list(idx)].astype(np.float32) - offset, 0, None)
    return np.clip((x - lo[:, None, None]) / (hi - lo)[:, None, None], 0, 1).transpose(1, 2, 0)


def plot_pictures(item: Item, ratio: int, title: str, path: Path) -> None:
    """Original / ours / JPEG 2000 / KLT + JPEG 2000 at the same size, true colour and false colour rows."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    bands = list(S2_L2A_BANDS)
    combos = {"true colour (B04, B03, B02)": tuple(bands.index(b) for b in ("B04", "B03", "B02")),
              "false colour (B08, B04, B03)": tuple(bands.index(b) for b in ("B08", "B04", "B03"))}
    panels = [("original", item.dn)] + [(p, item.recon[p]) for p in PEERS if p in item.recon]
    fig, axes = plt.subplots(2, len(panels), figsize=(3.6 * len(panels), 7.4), squeeze=False)
    res = item.results[ratio]
    for row, (name, idx) in enumerate(combos.items()):
        ref = np.clip(item.dn[list(idx)].astype(np.float32) - item.offset, 0, None).reshape(3, -1)
        lo, hi = np.percentile(ref, 1, axis=1), np.percentile(ref, 99, axis=1)
        hi = np.maximum(hi, lo + 1)
        for col, (label, dn) in enumerate(panels):
            ax = axes[row, col]
            ax.imshow(_rgb(dn, item.offset, idx, lo, hi), interpolation="nearest")
            ax.set_xticks([])
            ax.set_yticks([])
            if row == 0:
                if label == "original":
                    ax.set_title(f"original\n{item.raw_bytes:,} B raw", fontsize=9)
                else:
                    r = res[label]
                    ax.set_title(f"{label}\n{r['bytes']:,} B ({item.raw_bytes / r['bytes']:.0f}x), "
                                 f"{r['psnr_db']:.1f} dB, SAM {r['sam_deg']:.1f}°", fontsize=9)
            if col == 0:
                ax.set_ylabel(name, fontsize=9)
    rate = f"1/{ratio} of raw" if ratio else "our fixed rate"
    fig.suptitle(f"{title}: {item.label}, held out, at {rate} (same file size for all)", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=80)  # photographic panels: keeps each PNG well under 2 MB
    plt.close(fig)


def write_docs(results: dict[str, Any], table: str, page: Path) -> None:
    """Replace the generated block of the docs page (between the markers) with the latest tables."""
    begin, end = "<!-- imagery_rd:begin -->", "<!-- imagery_rd:end -->"
    text = page.read_text() if page.exists() else ""
    block = (f"{begin}\n\nLatest run: `{results['command']}` ({results['seconds']:.0f} s, codec "
             f"`{results['codec']}`, {results['machine']}).\n\n{table}\n{end}")
    if begin in text and end in text:
        text = text[: text.index(begin)] + block + text[text.index(end) + len(end):]
    else:
        text = (text.rstrip() + "\n\n" if text else "") + block + "\n"
    page.write_text(text)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--codec", choices=("auto", "learned", "vq"), default="auto",
                    help="our codec: the learned ladder (default when installed) or the old fixed-rate VQ tokenizer")
    ap.add_argument("--model", default="default", help="model name or folder")
    ap.add_argument("--device", default="cpu", help="torch device (cpu, cuda)")
    ap.add_argument("--quick", action="store_true", help="CI size: one city, one 264 scene, 4 patches; no docs")
    ap.add_argument("--max-patches", type=int, default=16, help="120 x 120 patches, evenly spread (default 16)")
    ap.add_argument("--cities", default=None,
                    help="comma-separated held-out city scenes to measure (e.g. abudhabi/imgs_1,hongkong/imgs_1); "
                    "default: all 12 (quick: the desert city)")
    ap.add_argument("--out", default="outputs/imagery_rd", help="folder for results.json and results.md")
    ap.add_argument("--docs", default=None, help="write docs/img figures and docs/benchmarks/imagery.md "
                    "(default: on for full runs, off with --quick)", action=argparse.BooleanOptionalAction)
    args = ap.parse_args()
    os.environ.setdefault("EOCOMPRESS_DATA", str(ROOT.parent / "shared" / "data"))
    t_start = time.time()
    ours = pick_codec(args.codec, args.model, args.device)
    ladder = ours.name != "vq"  # the VQ tokenizer has one fixed rate: the anchors follow its sizes
    anchors = {p: get_codec(p, bands=list(S2_L2A_BANDS)) for p in PEERS[1:]}
    cities = args.cities.split(",") if args.cities else None
    items = load_items(args.quick, 4 if args.quick else args.max_patches, cities)
    ratios = RATIOS if ladder else (0,)
    picture_labels = {DESERT, COAST}
    farm = next((i.label for i in items if i.group == "l2a_120"), None)
    for n, item in enumerate(items):
        keep = item.label in picture_labels or item.label == farm
        for ratio in ratios:
            item.results[ratio] = measure(item, ours, anchors, ratio, keep_recon=keep and ratio in (450, 0))
        print(f"[{time.time() - t_start:6.0f} s] {n + 1}/{len(items)} {item.group} {item.label}", flush=True)
    thr_ratio = 450 if ladder else 0
    results = {
        "codec": ours.name, "model": args.model, "ladder": ladder, "quick": args.quick,
        "command": "benchmarks/imagery_rd.py" + (" --quick" if args.quick else "") + (
            f" --codec {args.codec}" if args.codec != "auto" else "") + (
            f" --model {args.model}" if args.model != "default" else "") + (
            f" --cities {args.cities}" if args.cities else "") + (
            f" --max-patches {args.max_patches}" if args.max_patches != 16 and not args.quick else ""),
        "machine": f"{os.cpu_count()} CPU cores ({platform.machine()}), device {args.device}",
        "aggregates": aggregate(items, ratios), "throughput_ratio": thr_ratio,
        "throughput": throughput(items, thr_ratio),
        "images": [{"group": i.group, "label": i.label, "shape": list(i.dn.shape), "offset": i.offset,
                    "results": {str(r): v for r, v in i.results.items()}} for i in items],
    }
    results["seconds"] = time.time() - t_start
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    table = markdown(results)
    (out / "results.json").write_text(json.dumps(results, indent=1, default=float))
    (out / "results.md").write_text(table)
    print(table)
    docs = (not args.quick) if args.docs is None else args.docs
    img = ROOT / "docs" / "img" if docs else out
    plot_rd(results, img / "imagery_rd.png")
    shown = {"desert city": DESERT, "coast": COAST, "farmland patch": farm}
    for key, label in shown.items():
        item = next((i for i in items if i.label == label), None)
        if item is not None and item.recon:
            plot_pictures(item, thr_ratio, key, img / f"imagery_{key.split()[0]}.png")
    if docs:
        write_docs(results, table, ROOT / "docs" / "benchmarks" / "imagery.md")
    print(f"wrote {out}/results.json, results.md and figures in {img} in {time.time() - t_start:.0f} s")


if __name__ == "__main__":
    main()
