"""The poster's quantizer comparison inside the learned transform codec: train briefly, evaluate on held-out places.

Every variant is the same (small) analysis/synthesis transform (:data:`TRAIN`) with another quantizer on
its latent, trained for the same wall-clock budget on the same training places (``places.training_scenes``)
on the CPU, then evaluated on the held-out places (``places.held_out_scenes``: the L2A SSL4EO scenes, the
held-out Major-TOM cell cut into 120 px patches, crops of the held-out L1C cities) in bits per pixel of
the REAL token files (header, georeference, CRC and range-coded payload) against PSNR and SAM.

    EOCOMPRESS_DATA=... nice -n 10 python benchmarks/imagery/quantizers.py train --minutes 7   # resumable
    EOCOMPRESS_DATA=... python benchmarks/imagery/quantizers.py evaluate                    # table + plot

Runs live under ``--work`` (default /tmp/eoq); nothing is written into the repository but the plot
(docs/img/quantizers_rd.png) and the JSON of the numbers (benchmarks/imagery/results/quantizers_<steps>steps.json).
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path

import numpy as np

from eocompress.imagery.codec.learned import LearnedCodec
from eocompress.imagery.evaluation.fidelity import dn_psnr_sam
from eocompress.imagery.places import held_out_scenes, patches, training_scenes
from eocompress.imagery.readers.scenes import read_scene
from eocompress.imagery.tokenizer.fp_data import read_training_scenes, write_cache
from eocompress.imagery.tokenizer.fp_model import FPConfig
from eocompress.imagery.tokenizer.fp_train import train

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # benchmarks/: the shared helpers
from common import IMAGERY_PACKAGES, machine, machine_line, markdown_table

REPO = Path(__file__).resolve().parents[2]
#: Variant name -> FPConfig fields. Every discrete variant codes 8 tokens per 16 x 16 position (RVQ: 8 stages).
VARIANTS: dict[str, dict] = {
    "scalar": {"quantizer": "scalar"},
    "fsq-8-8-8-6-5": {"quantizer": "fsq", "groups": 8, "levels": [8, 8, 8, 6, 5]},
    "vq-K1024-d16": {"quantizer": "vq", "groups": 8, "codebook": 1024, "codebook_dim": 16},
    "vq-K256-d16": {"quantizer": "vq", "groups": 8, "codebook": 256, "codebook_dim": 16},
    "vq-K4096-d16": {"quantizer": "vq", "groups": 8, "codebook": 4096, "codebook_dim": 16},
    "vq-K1024-d64": {"quantizer": "vq", "groups": 8, "codebook": 1024, "codebook_dim": 64},
    "dvq-K1024-d16": {"quantizer": "dvq", "groups": 8, "codebook": 1024, "codebook_dim": 16},
    "gsq-K1024-d16": {"quantizer": "gsq", "groups": 8, "codebook": 1024, "codebook_dim": 16},
    "rvq-K1024-d16": {"quantizer": "rvq", "groups": 8, "codebook": 1024, "codebook_dim": 16},
}
#: Short-run settings shared by every variant (small crops, the CPU budget of the brief).
#: A small transform (the comparison is about the quantizer on its latent): 2 shared CPU cores train ~100x slower.
TRAIN = {"crop": 48, "batch_size": 8, "steps": 100000, "lr": 1e-3, "channels": [16, 24, 32], "latent": 48}
#: Ladder levels the scalar model is evaluated at (one rate per discrete model).
SCALAR_QUALITIES = (1, 3, 5, 7, 10)
#: Held-out crops: at most this many 120 px patches of the Major-TOM cell and one 512 px crop per L1C city scene.
MAX_PATCHES, CITY_CROP = 12, 512


def cmd_train(args: argparse.Namespace) -> None:
    """Train the variants one after the other to ``--steps`` steps each (``--minutes`` of wall at most; resumable)."""
    work = Path(args.work)
    cache = work / "train_cache.npz"
    if not cache.is_file():
        write_cache(read_training_scenes(training_scenes()), cache)
    for name in args.variants or list(VARIANTS):
        out = work / name
        done = 0.0
        if (out / "config.json").is_file():
            done = float(json.loads((out / "config.json").read_text()).get("training", {}).get("wall_s", 0))
        left = args.minutes * 60 - done
        if left < 10:
            print(f"{name}: already trained {done:.0f} s", flush=True)
            continue
        cfg = FPConfig(**(TRAIN | VARIANTS[name]))
        t0 = time.time()
        # Lightning's timer is restored from the checkpoint: the cap is the run's total, resumes included
        res = train(cache, out, cfg, resume=True, export_every=25, threads=args.threads,
                    max_wall_s=args.minutes * 60, stop_step=args.steps)
        print(f"{name}: step {res.steps} in {time.time() - t0:.0f} s (+{done:.0f} s before) {res.note}", flush=True)


def held_out(max_patches: int = MAX_PATCHES) -> list[tuple[str, np.ndarray, int]]:
    """(label, uint16 DN (12, H, W) in the file's convention, DN offset) of every held-out evaluation piece."""
    groups = held_out_scenes()
    out = []
    bands = FPConfig().bands
    for p in groups["l2a_264"]:
        s = read_scene(p, bands=bands)
        out.append((f"l2a_264/{p.name[:8]}", s.data, int(s.offset)))
    for p in groups["l2a_120"]:
        s = read_scene(p, bands=bands)
        for r, c in list(patches(s.data))[:max_patches]:
            out.append((f"l2a_120/{r}_{c}", s.data[:, r : r + 120, c : c + 120], int(s.offset)))
    for p in groups["l1c_cities"]:
        s = read_scene(p, bands=bands)
        h, w = s.data.shape[1:]
        r, c = max(0, (h - CITY_CROP) // 2), max(0, (w - CITY_CROP) // 2)
        out.append((f"l1c/{p.parent.name}_{p.name[-1]}", s.data[:, r : r + CITY_CROP, c : c + CITY_CROP],
                    int(s.offset)))
    return out


def measure(codec: LearnedCodec, pieces: list, quality: int | None) -> dict:
    """Pooled bits per pixel (real files), mean PSNR and SAM over the held-out pieces at one setting."""
    bits = pixels = 0
    psnr, sam, used = [], [], []
    for _, dn, offset in pieces:
        blob = codec.encode(dn, quality=quality or 1, offset=offset)
        rec = codec.decode(blob)
        if codec.config.discrete:
            used.append(codec.tokens(blob).reshape(codec.config.groups, -1))
        p, a = dn_psnr_sam(dn, rec, offset, np.all(dn != 0, axis=0))
        bits += 8 * len(blob)
        pixels += dn.shape[1] * dn.shape[2]
        psnr.append(p)
        sam.append(a)
    out = {"bpp": bits / pixels, "psnr_db": float(np.mean(psnr)), "sam_deg": float(np.mean(sam)),
           "fixed_length_bpp": None}
    if used:  # share of each group's codebook the held-out pieces use, averaged over the groups
        idx = np.concatenate(used, axis=1)
        size = codec.model.quantizer.codebook_size
        out["codes_used"] = float(np.mean([np.unique(g).size / size for g in idx]))
    return out


def mean_spectrum(pieces: list) -> dict:
    """The trivial peer: every pixel of a piece replaced by the piece's band means (12 uint16 = 24 bytes)."""
    bits = pixels = 0
    psnr, sam = [], []
    for _, dn, offset in pieces:
        valid = np.all(dn != 0, axis=0)
        means = np.rint(dn[:, valid].mean(1)).astype(np.uint16)
        rec = np.broadcast_to(means[:, None, None], dn.shape).copy()
        p, a = dn_psnr_sam(dn, rec, offset, valid)
        bits += 8 * 24
        pixels += dn.shape[1] * dn.shape[2]
        psnr.append(p)
        sam.append(a)
    return {"bpp": bits / pixels, "psnr_db": float(np.mean(psnr)), "sam_deg": float(np.mean(sam)),
            "fixed_length_bpp": None, "quality": None}


def cmd_evaluate(args: argparse.Namespace) -> None:
    """Evaluate every trained variant (and the shipped model) on the held-out pieces; JSON, table and plot."""
    import torch

    torch.set_num_threads(args.threads)
    print(machine_line(IMAGERY_PACKAGES), flush=True)
    work = Path(args.work)
    pieces = held_out()
    npix = sum(d.shape[1] * d.shape[2] for _, d, _ in pieces)
    print(f"{len(pieces)} held-out pieces, {npix / 1e6:.2f} Mpx", flush=True)
    results = {}
    models = [(n, work / n) for n in VARIANTS if (work / n / "model.safetensors").is_file()]
    models.append(("shipped scalar (long run)", Path("default")))
    for name, folder in models:
        codec = LearnedCodec.load(str(folder) if str(folder) != "default" else "default")
        cfg = codec.config
        training = {}
        if str(folder) != "default":
            training = json.loads((folder / "config.json").read_text()).get("training", {})
        qualities = [None] if cfg.discrete else list(SCALAR_QUALITIES)
        points = []
        for q in qualities:
            t0 = time.time()
            pt = measure(codec, pieces, q)
            pt["quality"] = q
            pt["eval_s"] = round(time.time() - t0, 1)
            if cfg.discrete:
                pt["fixed_length_bpp"] = cfg.groups * math.ceil(math.log2(codec.model.quantizer.codebook_size)) / 256
            points.append(pt)
            print(name, pt, flush=True)
        results[name] = {"quantizer": cfg.quantizer, "groups": cfg.groups if cfg.discrete else None,
                         "codebook": codec.model.quantizer.codebook_size if cfg.discrete else None,
                         "codebook_dim": cfg.codebook_dim if cfg.quantizer in ("vq", "dvq", "gsq", "rvq") else None,
                         "steps": training.get("steps"), "wall_s": training.get("wall_s"), "points": points}
    results["ref: mean spectrum per piece"] = {"quantizer": "none", "groups": None, "codebook": None,
                                               "codebook_dim": None, "steps": None, "wall_s": None,
                                               "points": [mean_spectrum(pieces)]}
    steps = max((r["steps"] or 0) for n, r in results.items() if not n.startswith("shipped"))
    out = REPO / "benchmarks" / "imagery" / "results" / f"quantizers_{steps}steps.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"machine": machine(IMAGERY_PACKAGES), "pieces": len(pieces), "megapixels": npix / 1e6,
                               "results": results}, indent=1))
    plot(results, REPO / "docs" / "img" / "quantizers_rd.png")
    print(table(results))


def table(results: dict) -> str:
    """The markdown table of the docs page."""
    rows: list[list[object]] = []
    for name, r in results.items():
        for p in r["points"]:
            book = (f"{r['codebook']} x {r['groups']}" if r["codebook"] else
                    f"step, q{p['quality']}" if p["quality"] else "12 band means")
            fl = f"{p['fixed_length_bpp']:.3f}" if p["fixed_length_bpp"] else "–"
            cu = f"{100 * p['codes_used']:.0f} %" if p.get("codes_used") is not None else "–"
            rows.append([name, r["steps"] or "–", r["wall_s"] or "–", book, cu, fl, f"{p['bpp']:.3f}",
                         f"{p['psnr_db']:.2f}", f"{p['sam_deg']:.2f}"])
    return markdown_table(["variant", "steps", "wall (s)", "codebook x tokens", "codes used", "fixed-length bpp",
                           "file bpp", "PSNR (dB)", "SAM (deg)"], rows, align="lrrlrrrrr")


def plot(results: dict, path: Path) -> None:
    """PSNR and SAM against bits per pixel of the real files, one marker per variant."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2))
    markers = "osD^v<>phX*"
    for i, (name, r) in enumerate(results.items()):
        if name.startswith("shipped"):  # 7-12 dB above: quoted in the table, kept off the axes
            continue
        x = [p["bpp"] for p in r["points"]]
        for ax, key in zip(axes, ("psnr_db", "sam_deg"), strict=True):
            ax.plot(x, [p[key] for p in r["points"]], marker=markers[i % len(markers)],
                    linestyle="-" if len(x) > 1 else "none", label=name)
    axes[0].set_ylabel("PSNR (dB, reflectance, higher is better)")
    axes[1].set_ylabel("SAM (degrees, lower is better)")
    for ax in axes:
        ax.set_xlabel("bits per pixel (12 bands; real token files)")
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=7)
    fig.suptitle("Quantizers inside the learned transform codec, held-out places (short CPU training; the shipped "
                 "model is 7-12 dB higher)", fontsize=10)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)


def main(argv: list[str] | None = None) -> None:
    """``train`` or ``evaluate``."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("command", choices=("train", "evaluate"))
    ap.add_argument("--work", default="/tmp/eoq")
    ap.add_argument("--minutes", type=float, default=8.0, help="wall-clock cap per variant")
    ap.add_argument("--steps", type=int, default=100, help="optimizer steps per variant (constant learning rate)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--variants", nargs="*", help="default: all of VARIANTS")
    args = ap.parse_args(argv)
    {"train": cmd_train, "evaluate": cmd_evaluate}[args.command](args)


if __name__ == "__main__":
    sys.exit(main())
