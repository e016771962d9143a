"""Train several learned-codec candidates at once on a lent GPU, in one timed run, on the same crops.

A lent GPU comes for about 15 minutes a session, so one prepared run trains every candidate side by side:
each step draws one batch of training crops (the trainer's own :class:`RandomCrops`, so per-crop
standardisation, KLT and the synthetic cloud/haze/snow layer are what ``tokenizer train`` does) and one
quantisation step per tile, and every candidate takes an Adam step on that batch. The learning rate follows
the clock (constant, then a cosine down to 2 % over the second half of ``--wall``), so the run ends decayed
however fast the machine is. Every ``--export-every`` seconds and at the end each candidate is written as
a model folder (``config.json`` + ``model.safetensors``, the format the codec loads) with its validation
losses on held-out crops (``pack_data.py``), so a run cut short still returns models.

    python3 training/gpu/train.py --data .gpu_data --out "$OUT" --wall 450

Candidates: ``hp64`` (the shipped transforms + a 64-channel mean-scale hyperprior), ``fp256`` (the
shipped model trained on 256 px crops), ``wide`` (48-64-96 channels, from scratch), ``hp64c`` (the hp64 of
the first GPU run, ``training/gpu/hp64``, trained on).
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import lzma
import math
import os
import sys
import time
import types
from pathlib import Path

# One BLAS/OpenMP thread per process, set before numpy loads: 14 loader workers each running 16 BLAS threads
# (the per-crop KLT) thrashed the first run on the H200 at 3 steps/s; one thread each gave 21 steps/s.
for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import numpy as np  # noqa: E402
from packing import unpack  # noqa: E402  # beside this script

ROOT = Path(__file__).resolve().parents[2]
SHIPPED = ROOT / "src" / "eocompress" / "models" / "learned"


def _stub_absent_libraries() -> None:
    """Stand in for the readers' and coders' libraries where the GPU image lacks them: training uses neither.

    ``eocompress.imagery`` imports its scene readers (rasterio) on import and the tokenizer checks that its
    extra (constriction, imagecodecs) is installed; this run reads packed arrays and codes nothing.
    """
    for name in ("rasterio", "constriction", "imagecodecs"):
        if importlib.util.find_spec(name) is None:
            sys.modules[name] = types.ModuleType(name)
            print(f"note: {name} is not installed here; stubbed (training does not use it)")
            if name == "rasterio":
                errors = types.ModuleType("rasterio.errors")
                errors.NotGeoreferencedWarning = type("NotGeoreferencedWarning", (UserWarning,), {})  # type: ignore[attr-defined]
                sys.modules["rasterio.errors"] = errors


sys.path.insert(0, str(ROOT / "src"))
_stub_absent_libraries()

import torch  # noqa: E402
from safetensors.torch import load_file  # noqa: E402

from eocompress.imagery.tokenizer.fp_data import RandomCrops  # noqa: E402
from eocompress.imagery.tokenizer.fp_model import FactorizedPriorTokenizer, FPConfig  # noqa: E402
from eocompress.imagery.tokenizer.fp_train import export_model, rd_loss  # noqa: E402
from eocompress.imagery.tokenizer.spectral import crop_klt  # noqa: E402
from eocompress.imagery.tokenizer.standardise import standardise  # noqa: E402

#: Candidate -> (settings over the shipped config, which shipped weights start it, learning rate,
#: learning rate of the parts the shipped model lacks).
CANDIDATES: dict[str, tuple[dict, str, float, float]] = {
    "hp64": ({"hyperprior": 64}, "transforms", 1e-4, 1e-3),
    "fp256": ({}, "all", 1e-4, 1e-4),
    "wide": ({"channels": [48, 64, 96]}, "none", 5e-4, 5e-4),
    # the hp64 of the 2026-12-04 run (training/gpu/hp64), continued: all of its weights
    "hp64c": ({"hyperprior": 64}, "training/gpu/hp64", 1e-4, 1e-4),
}
#: Steps the validation losses are reported at (the ladder spans delta_min..delta_max).
VAL_DELTAS = (0.35, 0.8, 1.8, 4.0)
#: Share of the run the shipped transforms stay frozen while a new hyperprior learns to predict them.
FREEZE = 0.05


def load_data(data: Path, cache: Path) -> tuple[list[str], torch.Tensor, list[dict]]:
    """Unpack the scenes into the trainer's ``.npz`` cache; the validation crops standardised as the encoder does."""
    index = json.loads((data / "index.json").read_text())
    arrays = {s["file"].split(".")[0]: unpack((data / s["file"]).read_bytes(), tuple(s["shape"]))
              for s in index["scenes"]}
    names = [s["name"] for s in index["scenes"]]
    np.savez(cache, names=np.array(names), **arrays)
    raw = np.frombuffer(lzma.decompress((data / "val.xz").read_bytes()), np.uint16).reshape(index["val_shape"])
    val = []
    for x in raw.astype(np.float32):
        valid = np.all(x > 0, axis=0)
        z, _, _ = standardise(x, valid)
        val.append(crop_klt(z, valid if valid.any() else None))
    return names, torch.from_numpy(np.stack(val)), index["val"]


def build(name: str, base: dict, shipped: dict[str, torch.Tensor], crop: int, batch: int, seed: int):
    """(config, model, optimizer) of a candidate, its shipped weights loaded."""
    settings, init, lr, lr_new = CANDIDATES[name]
    cfg = FPConfig.from_dict(base | settings | {"crop": crop, "batch_size": batch, "lr": lr, "seed": seed})
    model = FactorizedPriorTokenizer(cfg)
    if init == "all":
        model.load_state_dict(shipped)
    elif init == "transforms":
        kept = {k: v for k, v in shipped.items() if k.startswith(("analysis.", "synthesis."))}
        missing, unexpected = model.load_state_dict(kept, strict=False)
        assert not unexpected and all(k.startswith(("hyper.", "prior.")) for k in missing), missing
    elif init != "none":  # a model folder of the same architecture: all of its weights
        model.load_state_dict(load_file(str(ROOT / init / "model.safetensors")))
    old = [p for n, p in model.named_parameters() if init != "none" and n.startswith(("analysis.", "synthesis."))]
    new = [p for p in model.parameters() if all(p is not q for q in old)]
    groups = [{"params": old, "lr": lr, "base": lr, "warm": True}, {"params": new, "lr": lr_new, "base": lr_new,
                                                                     "warm": False}]
    opt = torch.optim.Adam([g for g in groups if g["params"]])
    return cfg, model, opt


def lr_factor(t: float, warm_started: bool, frozen: bool) -> float:
    """Learning-rate factor at run fraction ``t``: frozen, warm-up, constant, cosine to 2 % over the second half."""
    if frozen and t < FREEZE:
        return 0.0
    warm = 1.0 if warm_started else min(1.0, t / 0.02)
    if t < 0.5:
        return warm
    return 0.02 + 0.98 * 0.5 * (1 + math.cos(math.pi * min(1.0, (t - 0.5) / 0.5)))


@torch.no_grad()
def validate(model: FactorizedPriorTokenizer, cfg: FPConfig, val: torch.Tensor) -> list[dict]:
    """Bits per pixel and MSE (standardised units) on the held-out crops at each of :data:`VAL_DELTAS`."""
    model.eval()
    out = []
    with torch.random.fork_rng(devices=[val.device.index or 0] if val.is_cuda else []):
        torch.manual_seed(0)
        for d in VAL_DELTAS:
            delta = torch.full((val.shape[0],), d, device=val.device)
            loss, bpp, mse = rd_loss(model, cfg, val, delta)
            out.append({"delta": d, "loss": float(loss), "bpp": float(bpp.mean()), "mse": float(mse.mean()),
                        "mse_per_crop": [round(float(m), 5) for m in mse]})
    model.train()
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, required=True, help="folder written by pack_data.py")
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--wall", type=float, default=450.0, help="seconds of training (the schedule follows them)")
    ap.add_argument("--crop", type=int, default=256)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--workers", type=int, default=max(1, (os.cpu_count() or 2) - 2))
    ap.add_argument("--export-every", type=float, default=100.0)
    ap.add_argument("--seed", type=int, default=11)
    ap.add_argument("--only", default=",".join(CANDIDATES))
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = ap.parse_args()
    t_setup = time.time()
    torch.manual_seed(args.seed)
    torch.backends.cudnn.benchmark = True
    torch.backends.cuda.matmul.allow_tf32 = True
    torch.backends.cudnn.allow_tf32 = True
    cache = Path(os.environ.get("TMPDIR", "/tmp")) / "eocompress_gpu_cache.npz"
    names, val, val_labels = load_data(args.data, cache)
    base = json.loads((SHIPPED / "config.json").read_text())
    base.pop("training", None)
    shipped = load_file(str(SHIPPED / "model.safetensors"))
    data = RandomCrops(cache, args.crop, length=10**9, seed=args.seed, spectral="klt", bright=base["bright"])
    loader = torch.utils.data.DataLoader(data, batch_size=args.batch, num_workers=args.workers,
                                         pin_memory=args.device.startswith("cuda"),
                                         prefetch_factor=4 if args.workers else None,
                                         persistent_workers=args.workers > 0)
    batches = iter(loader)  # workers fork before CUDA starts
    dev = torch.device(args.device)
    val = val.to(dev)
    runs = {}
    for name in args.only.split(","):
        cfg, model, opt = build(name, base, shipped, args.crop, args.batch, args.seed)
        runs[name] = {"cfg": cfg, "model": model.to(dev), "opt": opt, "loss": 0.0, "n": 0, "diverged": None,
                      "init": CANDIDATES[name][1], "val": []}
        print(f"{name}: {sum(p.numel() for p in model.parameters()):,} parameters, init {CANDIDATES[name][1]}")
    gpu = torch.cuda.get_device_name(dev) if dev.type == "cuda" else "cpu"
    lo, hi = math.log(base["delta_min"]), math.log(base["delta_max"])
    metrics: dict = {"device": gpu, "workers": args.workers, "crop": args.crop, "batch": args.batch,
                     "scenes": names, "val": val_labels, "runs": {}}

    def export(step: int, wall: float) -> None:
        for name, r in runs.items():
            cfg = r["cfg"]
            cfg.steps = step if r["diverged"] is None else r["diverged"]
            cfg.data = {"places": "eocompress.imagery.places.training_scenes(), OSCD imgs_1 only",
                        "scenes": len(names)}
            v = validate(r["model"], cfg, val) if r["diverged"] is None else r["val"]
            if r["diverged"] is None and not all(math.isfinite(x["loss"]) for x in v):
                r["diverged"], v = step, r["val"]
                print(f"  {name} diverged before step {step}: its last export stands", flush=True)
            r["val"] = v
            record = {"steps": cfg.steps, "wall_s": round(wall), "machine": f"1 x {gpu}, {args.workers} loader workers",
                      "init_from": {"all": "the 0.5 default (src/eocompress/models/learned)",
                                    "transforms": "the 0.5 default's analysis and synthesis transforms",
                                    "none": "random"}.get(r["init"], r["init"]),
                      "command": "python3 training/gpu/train.py " + " ".join(sys.argv[1:]),
                      "scenes": names, "val": {"crops": val_labels, "losses": v}}
            if r["diverged"] is None:
                export_model(r["model"], cfg, args.out / name, record)
            metrics["runs"][name] = record | {"diverged_at": r["diverged"]}
            mean = ", ".join(f"d{x['delta']}: {x['bpp']:.3f} bpp {x['mse']:.4f} mse" for x in v)
            print(f"  {name} step {cfg.steps} val {mean}", flush=True)
        (args.out / "metrics.json").write_text(json.dumps(metrics, indent=1))

    print(f"setup {time.time() - t_setup:.1f} s on {gpu}; training {args.wall:.0f} s", flush=True)
    start = last_export = last_print = time.time()
    step, waited = 0, 0.0  # seconds spent waiting on the crop workers (the GPU idles meanwhile)
    while True:
        now = time.time()
        t = (now - start) / args.wall
        if t >= 1:
            break
        t_wait = time.time()
        batch = next(batches).to(dev, non_blocking=True)
        waited += time.time() - t_wait
        delta = torch.exp(torch.empty(batch.shape[0], device=dev).uniform_(lo, hi))
        for r in runs.values():
            if r["diverged"] is not None:
                continue
            for g in r["opt"].param_groups:
                g["lr"] = g["base"] * lr_factor(t, g["warm"], frozen=g["warm"] and r["init"] == "transforms")
            loss, _, _ = rd_loss(r["model"], r["cfg"], batch, delta)
            r["opt"].zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(r["model"].parameters(), 5.0)
            r["opt"].step()
            r["loss"] += loss.detach()
            r["n"] += 1
        step += 1
        if step % 200 == 0:
            for name, r in runs.items():
                if r["diverged"] is None and r["n"] and not math.isfinite(float(r["loss"]) / r["n"]):
                    r["diverged"] = step
                    print(f"  {name} diverged before step {step}: its last export stands", flush=True)
        if now - last_print > 30:
            rate = step / (now - start)
            losses = ", ".join(f"{k} {float(r['loss']) / max(1, r['n']):.3f}" for k, r in runs.items())
            print(f"step {step} ({rate:.1f}/s, t={t:.2f}, {100 * waited / (now - start):.0f} % waiting on crops): "
                  f"{losses}", flush=True)
            for r in runs.values():
                r["loss"], r["n"] = 0.0, 0
            last_print = now
        if now - last_export > args.export_every:
            export(step, now - start)
            last_export = time.time()
    export(step, time.time() - start)
    print(f"done: {step} steps in {time.time() - start:.0f} s", flush=True)


if __name__ == "__main__":
    main()
