"""Tokenizer ablation: the poster's comparisons trained with the same small budget and the same real data.

Codebook size (1k / 4k / 8k / 16k), latent dim (vq with D=8 vs D=64, and D=64 decomposed into groups),
quantizer (vq vs gsq vs dvq vs fsq at the same 26 bits per position = 473x) and the discriminator off/on.
Reports validation PSNR (dB, reflectance clamped to [0, 1]), SAM (deg), codebook utilisation and the
compression ratio against raw uint16, as a Markdown table and a PNG.

    EOCOMPRESS_DATA=../shared/data nice -n 10 .venv/bin/python benchmarks/tokenizer_ablation.py --steps 200
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

#: name -> settings (on top of the shared budget); the comparison each row belongs to.
CONFIGS: dict[str, tuple[str, dict]] = {
    "vq V=1k": ("codebook size", dict(quantizer="vq", codebook_size=1024, groups=2, latent_dim=32)),
    "vq V=4k": ("codebook size", dict(quantizer="vq", codebook_size=4096, groups=2, latent_dim=32)),
    "vq V=8k": ("codebook size / quantizer", dict(quantizer="vq", codebook_size=8192, groups=2, latent_dim=32)),
    "vq V=16k": ("codebook size", dict(quantizer="vq", codebook_size=16384, groups=2, latent_dim=32)),
    "gsq V=8k G=2": ("quantizer", dict(quantizer="gsq", codebook_size=8192, groups=2, latent_dim=32)),
    "dvq V=8k G=2": ("quantizer", dict(quantizer="dvq", codebook_size=8192, groups=2, latent_dim=32)),
    "fsq 8-8-8-4-4 G=2": ("quantizer", dict(quantizer="fsq", fsq_levels=[8, 8, 8, 4, 4], groups=2, latent_dim=10)),
    "vq D=8 G=1": ("latent dim", dict(quantizer="vq", codebook_size=4096, groups=1, latent_dim=8)),
    "vq D=64 G=1": ("latent dim", dict(quantizer="vq", codebook_size=4096, groups=1, latent_dim=64)),
    "dvq D=64 G=4": ("latent dim", dict(quantizer="dvq", codebook_size=4096, groups=4, latent_dim=64)),
    "fsq G=2 + disc": (
        "discriminator",
        dict(quantizer="fsq", fsq_levels=[8, 8, 8, 4, 4], groups=2, latent_dim=10, discriminator=True),
    ),
}


def run(args: argparse.Namespace) -> list[dict]:
    """Train every selected config with the same budget; results are appended to results.json as they come."""
    from eocompress.data import data_dir
    from eocompress.imagery.tokenizer.config import TokenizerConfig
    from eocompress.imagery.tokenizer.train import DEFAULT_HELD_OUT, DEFAULT_TRAIN_DATA, train_tokenizer

    root = data_dir()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    results_file = out / "results.json"
    done = {r["name"]: r for r in json.loads(results_file.read_text())} if results_file.exists() else {}
    names = args.only or list(CONFIGS)
    for name in names:
        if name in done and not args.rerun:
            continue
        group, settings = CONFIGS[name]
        cfg = TokenizerConfig(
            steps=args.steps,
            batch_size=args.batch_size,
            channels=args.channels,
            tile_size=64,
            seed=0,
            disc_start=args.steps // 4,
            **settings,
        )
        t0 = time.time()
        res = train_tokenizer(
            cfg,
            [root / p for p in DEFAULT_TRAIN_DATA],
            out / name.replace(" ", "_").replace("=", ""),
            hold_out=[root / p for p in DEFAULT_HELD_OUT],
            val_every=10**9,
            val_patches=args.val_tiles,
            checkpoint_every=0,
            progress=False,
            plot=False,
        )
        done[name] = {
            "name": name,
            "comparison": group,
            "ratio": round(cfg.compression_ratio, 1),
            "bits_per_position": cfg.groups * cfg.bits_per_index,
            "psnr_db": res.val["psnr_db"],
            "sam_deg": res.val["sam_deg"],
            "utilisation": res.val["utilisation"],
            "perplexity": res.val["perplexity"],
            "codebook": cfg.effective_codebook_size,
            "seconds": round(time.time() - t0),
            "tiles": res.val["tiles"],
        }
        print(json.dumps(done[name]), flush=True)
        results_file.write_text(json.dumps(list(done.values()), indent=1))
    return [done[n] for n in CONFIGS if n in done]


def references(val_tiles: int) -> list[dict]:
    """PSNR/SAM of two trivial peers on the same validation tiles: training-mean image, tile-mean spectrum."""
    import numpy as np

    from eocompress.data import data_dir
    from eocompress.imagery.evaluation.fidelity import reflectance_psnr as psnr
    from eocompress.imagery.evaluation.fidelity import reflectance_sam as sam_degrees
    from eocompress.imagery.readers.bands import S2_L2A_BANDS
    from eocompress.imagery.tokenizer.data import (
        GridPatches,
        band_statistics,
        load_areas,
        read_training_scenes,
        split_scene,
    )
    from eocompress.imagery.tokenizer.train import DEFAULT_TRAIN_DATA

    bands = list(S2_L2A_BANDS)
    scenes = read_training_scenes([data_dir() / p for p in DEFAULT_TRAIN_DATA], bands)
    areas = [a for sid, sc in scenes.items() for a in split_scene(sid, *sc.shape, 0.25, 64)]
    train, val = load_areas(scenes, areas, bands)
    ds = GridPatches(val, 64, limit=val_tiles)
    x = np.stack([ds[i][0].numpy() for i in range(len(ds))])
    valid = np.stack([ds[i][1].numpy()[0] for i in range(len(ds))]).astype(bool)
    mean_img = np.array(band_statistics(train)["mean"], np.float32).reshape(1, -1, 1, 1) * np.ones_like(x)
    tile_mean = x.mean(axis=(2, 3), keepdims=True) * np.ones_like(x)
    out = []
    for name, y, ratio in (
        ("ref: training-mean image", mean_img, None),
        ("ref: tile-mean spectrum", tile_mean, 4096.0),
    ):
        out.append(
            {
                "name": name,
                "comparison": "trivial peer",
                "ratio": ratio,
                "bits_per_position": None,
                "psnr_db": round(psnr(y, x, valid), 3),
                "sam_deg": round(sam_degrees(y, x, valid), 3),
                "utilisation": None,
                "perplexity": None,
            }
        )
    return out


def table(rows: list[dict]) -> str:
    """Markdown table of the results."""
    lines = [
        "| config | comparison | bits/pos | ratio vs uint16 | val PSNR (dB) | val SAM (°) | utilisation | perplexity |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        util = "–" if r["utilisation"] is None else f"{r['utilisation']:.3f}"
        perp = "–" if r["perplexity"] is None else f"{r['perplexity']:.0f}"
        ratio = "–" if r["ratio"] is None else f"{r['ratio']}x"
        lines.append(
            f"| {r['name']} | {r['comparison']} | {r['bits_per_position'] or '–'} | {ratio} | {r['psnr_db']:.2f} "
            f"| {r['sam_deg']:.2f} | {util} | {perp} |"
        )
    return "\n".join(lines)


def plot(rows: list[dict], path: Path) -> None:
    """Two panels: PSNR against compression ratio, and codebook utilisation per config."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    refs = [r for r in rows if r["utilisation"] is None]
    rows = [r for r in rows if r["utilisation"] is not None]
    fig, (a, b) = plt.subplots(1, 2, figsize=(12, 4.5))
    for r, color in zip(refs, ("grey", "black"), strict=False):
        a.axhline(r["psnr_db"], color=color, ls=":", lw=1, label=r["name"])
    if refs:
        a.legend(fontsize=7, loc="center right")
    for r in rows:
        a.scatter(r["ratio"], r["psnr_db"], s=30)
        a.annotate(r["name"], (r["ratio"], r["psnr_db"]), fontsize=7, xytext=(3, 3), textcoords="offset points")
    a.set_xscale("log")
    a.set_xlabel("compression ratio vs raw uint16 (log)")
    a.set_ylabel("validation PSNR (dB, reflectance 0-1)")
    a.axvline(450, color="grey", ls="--", lw=0.8)
    a.set_title("fidelity vs size")
    b.barh([r["name"] for r in rows], [r["utilisation"] for r in rows], color="tab:blue")
    b.set_xlabel("codebook utilisation on validation tiles")
    b.set_xlim(0, 1)
    b.invert_yaxis()
    b.set_title("share of codes used")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def main() -> None:
    """Parse arguments, run the configs, print the table, write results.md and ablation.png."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=200, help="training steps per config")
    parser.add_argument("--batch-size", type=int, default=8, help="tiles (64x64) per step")
    parser.add_argument("--channels", type=int, nargs="+", default=[8, 16, 32, 64], help="encoder widths")
    parser.add_argument("--val-tiles", type=int, default=200, help="validation tiles (64x64) per config")
    parser.add_argument("--out", default="outputs/tokenizer_ablation", help="output folder")
    parser.add_argument("--only", nargs="+", choices=list(CONFIGS), help="run only these configs")
    parser.add_argument("--rerun", action="store_true", help="retrain configs already in results.json")
    parser.add_argument(
        "--merge", nargs="*", default=[], help="also tabulate results.json of these folders (parallel runs)"
    )
    args = parser.parse_args()
    os.environ.setdefault("EOCOMPRESS_DATA", str(Path(__file__).resolve().parents[2] / "shared" / "data"))
    rows = run(args)
    for folder in args.merge:
        if not (Path(folder) / "results.json").exists():
            print(f"{folder}: no results.json yet, skipped")
            continue
        extra = {r["name"]: r for r in json.loads((Path(folder) / "results.json").read_text())}
        have = {r["name"] for r in rows}
        rows += [extra[n] for n in CONFIGS if n in extra and n not in have]
    rows.sort(key=lambda r: list(CONFIGS).index(r["name"]))
    rows += references(args.val_tiles)
    text = table(rows)
    print(text)
    out = Path(args.out)
    (out / "results.md").write_text(
        f"steps={args.steps} batch={args.batch_size} channels={args.channels} f=8 tile=64\n\n{text}\n"
    )
    plot(rows, out / "ablation.png")


if __name__ == "__main__":
    main()
