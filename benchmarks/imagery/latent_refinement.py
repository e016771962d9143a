"""Encoder-side latent refinement (``imagery encode --refine STEPS``): does it pay, per held-out scene?

For each scene of ``places.held_out_suite()`` (centre crop ``--side`` px, default 256), at each ``--ratio``:
the learned codec without refinement and with each ``--steps`` count (same ``--ratio``: the file must
still fit), decoded by the normal decoder, PSNR/SAM against the input (``dn_psnr_sam``), bytes and encode
time; and KLT + JPEG 2000 fitted to the unrefined file's bytes. Prints a markdown table per ratio.

    EOCOMPRESS_DATA=... nice -n 10 python benchmarks/imagery/latent_refinement.py --scenes 5 --steps 50 150
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from eocompress.imagery import places
from eocompress.imagery.codec.learned import LearnedCodec
from eocompress.imagery.codecs import get_codec, to_input_convention
from eocompress.imagery.evaluation.fidelity import dn_psnr_sam
from eocompress.imagery.readers.bands import S2_L2A_BANDS
from eocompress.imagery.readers.scenes import Scene, read_scene

#: One scene per kind first (round robin), so a short run covers the most kinds.
DEFAULT_KINDS = ("desert", "coast", "city", "farmland", "cloud", "water", "snow_ice", "jp2_bands")


def scenes(count: int, side: int) -> list[tuple[str, str, Scene]]:
    """(label, kind, centre crop) of the first scene of each kind, up to ``count`` scenes."""
    seen, out = set(), []
    for s in places.held_out_suite():
        if s.kind in seen or s.seen_by_shipped_model or len(out) >= count:
            continue
        sc = read_scene(s.path, bands=list(S2_L2A_BANDS), offset=s.offset)
        h, w = sc.shape
        hh, ww = min(h, side), min(w, side)
        out.append((s.label, s.kind, sc.crop((h - hh) // 2, (w - ww) // 2, hh, ww)))
        seen.add(s.kind)
    return out


def ours(codec: LearnedCodec, sc: Scene, ratio: float, steps: int) -> tuple[int, float, float, float]:
    """(bytes, PSNR dB, SAM deg, encode s) of the learned codec with ``steps`` refinement steps."""
    t0 = time.perf_counter()
    blob = codec.encode(sc.data, ratio=ratio, offset=sc.offset, valid=sc.valid, refine_steps=steps)
    t = time.perf_counter() - t0
    recon = codec.decode(blob)
    psnr, sam = dn_psnr_sam(sc.data, recon, sc.offset, sc.valid)
    return len(blob), psnr, sam, t


def klt(sc: Scene, nbytes: int) -> tuple[int, float, float]:
    """(bytes, PSNR dB, SAM deg) of KLT + JPEG 2000 at (at most) ``nbytes``."""
    codec = get_codec("klt+jpeg2000")
    blob = codec.encode(sc, target_bytes=nbytes)
    recon, georef = codec.decode(blob)
    recon = to_input_convention(recon, georef, sc.offset)
    psnr, sam = dn_psnr_sam(sc.data, recon, sc.offset, sc.valid)
    return len(blob), psnr, sam


def main() -> None:
    """Print the per-scene table of refinement gains for each ratio."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--scenes", type=int, default=5)
    ap.add_argument("--side", type=int, default=256)
    ap.add_argument("--ratio", type=float, nargs="+", default=[450.0])
    ap.add_argument("--steps", type=int, nargs="+", default=[50, 150])
    ap.add_argument("--threads", type=int, default=1)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    codec = LearnedCodec.load("default")
    items = scenes(a.scenes, a.side)
    for ratio in a.ratio:
        head = " | ".join(f"refine {s}: B / dB / ° / time ×" for s in a.steps)
        print(f"\n1/{ratio:g}, {a.side}² centre crops\n")
        print(f"| scene (kind) | no refine: B / dB / ° | {head} | KLT+J2K same B: B / dB / ° |")
        print("|---|---|" + "---|" * len(a.steps) + "---|")
        gains = {s: [] for s in a.steps}
        for label, kind, sc in items:
            b0, p0, s0, t0 = ours(codec, sc, ratio, 0)
            cells = [f"{b0} / {p0:.2f} / {s0:.2f}"]
            for steps in a.steps:
                b, p, s, t = ours(codec, sc, ratio, steps)
                gains[steps].append(p - p0)
                cells.append(f"{b} / {p:.2f} ({p - p0:+.2f}) / {s:.2f} / {t / t0:.0f}×")
            kb, kp, ks = klt(sc, b0)
            print(f"| {label} ({kind}) | " + " | ".join(cells) + f" | {kb} / {kp:.2f} / {ks:.2f} |", flush=True)
        for steps in a.steps:
            print(f"\nmean PSNR gain with {steps} steps at 1/{ratio:g}: {np.mean(gains[steps]):+.3f} dB")


if __name__ == "__main__":
    main()
