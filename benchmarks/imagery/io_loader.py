"""Training-loader I/O: samples/s and bytes read per sample from a token archive and three pixel archives.

The same cells (the real Major-TOM Core-S2L2A cells of ``$EOCOMPRESS_DATA/imagery/majortom-core-s2l2a``,
full 1068² size, listed ``--repeat`` times to make an epoch longer) stored four ways:

(a) token archive: ``imagery encode SHARD.parquet`` at ``--ratio`` (GeoParquet, learned tokens + the
    cloud mask), served by :class:`~eocompress.imagery.archives.dataset.TokenArchiveDataset` (one codec
    per DataLoader worker; tokens entropy-decoded, the synthesis run only on the crop's latent window +
    its reach: ``LearnedCodec.decode(window=...)``); crops anywhere, and crops on the 16-px token grid
    (``crop_stride=16``: one latent row and column less to synthesise); also its ``mode="tokens"``
    (token indices, no synthesis) for reference;
(b) uint16 GeoTIFF, 12 bands on the 10 m grid, DEFLATE + predictor 2, 256 px tiles, one file per cell:
    a **windowed read** of the crop (only the tiles it touches);
(c) the Major-TOM shard as distributed (band GeoTIFFs at native resolution in Parquet): the row is read,
    its bands decoded and resampled to the 10 m grid (the same reader as (a)'s encoder), then cropped;
(d) JPEG 2000 (OpenJPEG, all 12 bands in one codestream) at each cell's token bytes: whole-cell decode, crop.

Each loader yields the same sample: float32 reflectance (12, crop, crop), offset removed, random crop
from a seeded generator. Timed: the second of two epochs with persistent workers (worker start and model
load excluded), 1 and 2 workers, batch size 1. Bytes read per sample: token + cloud-mask bytes (a),
compressed bytes of the tiles the window touches (b), the row's band and mask bytes (c), the codestream (d).

Where a token-archive sample's time goes (``--breakdown N``, in this process on one torch thread, the
codec's own steps timed by wrapping them): Parquet row read, header + CRC, range decoding of the
cell's tokens, synthesis of the crop's latent window, DN conversion, and the rest (reflectance, mask).

    nice -n 10 .venv/bin/python benchmarks/imagery/io_loader.py --repeat 2 --out /tmp/io_loader.json

On a shared 2-core machine the absolute numbers move with the load: compare rows of one run.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from eocompress.imagery.archives import majortom as mt
from eocompress.imagery.archives.dataset import TokenArchiveDataset
from eocompress.imagery.codec.learned import LearnedCodec
from eocompress.imagery.codecs.jpeg2000 import j2k_at_size, j2k_decode
from eocompress.imagery.readers.scenes import QUANTIFICATION_VALUE

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # benchmarks/: the shared helpers
from common import IMAGERY_PACKAGES, data_file, load_average, machine, machine_line

CELLS = ("0U_199R", "199U_1099R")


def _window(seed: int, epoch: int, index: int, h: int, w: int, crop: int) -> tuple[int, int]:
    rng = np.random.default_rng([seed, epoch, index])
    return int(rng.integers(0, h - crop + 1)), int(rng.integers(0, w - crop + 1))


class _Loader(Dataset):
    """Base: seeded crops, reflectance tensors, bytes read per sample counted in ``last_bytes``."""

    def __init__(self, n: int, crop: int, seed: int = 0) -> None:
        self.n, self.crop, self.seed, self.epoch = n, crop, seed, 0

    def __len__(self) -> int:
        return self.n

    def sample(self, dn: np.ndarray, offset: int, nbytes: int) -> dict[str, Any]:
        image = (dn.astype(np.float32) - np.float32(offset)) / np.float32(QUANTIFICATION_VALUE)
        image[:, ~np.all(dn != 0, axis=0)] = 0.0
        return {"image": torch.from_numpy(image), "bytes": nbytes}


class GeoTiffLoader(_Loader):
    """(b) windowed reads of 12-band uint16 GeoTIFFs (DEFLATE, 256 px tiles, band-interleaved)."""

    def __init__(self, files: list[Path], offsets: list[int], crop: int, seed: int = 0) -> None:
        super().__init__(len(files), crop, seed)
        self.files, self.offsets = files, offsets

    def __getitem__(self, i: int) -> dict[str, Any]:
        import rasterio
        from rasterio.windows import Window

        with rasterio.open(self.files[i]) as src:
            r, c = _window(self.seed, self.epoch, i, src.height, src.width, self.crop)
            win = Window(c, r, self.crop, self.crop)
            dn = src.read(window=win)
            bh, bw = src.block_shapes[0]
            nbytes = sum(src.block_size(b, bi, bj) for b in range(1, src.count + 1)
                         for bi in range(r // bh, (r + self.crop - 1) // bh + 1)
                         for bj in range(c // bw, (c + self.crop - 1) // bw + 1))
        return self.sample(dn, self.offsets[i], nbytes)


class ShardLoader(_Loader):
    """(c) the Major-TOM shard: read the row, decode and resample its band GeoTIFFs, crop."""

    def __init__(self, shard: Path, crop: int, seed: int = 0) -> None:
        import pyarrow.parquet as pq

        super().__init__(pq.ParquetFile(shard).metadata.num_rows, crop, seed)
        self.shard = shard
        self._pf: Any = None
        self._tmp: str | None = None

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_pf": None, "_tmp": None}

    def __getitem__(self, i: int) -> dict[str, Any]:
        import pyarrow.parquet as pq

        if self._pf is None:
            self._pf = pq.ParquetFile(self.shard)
            self._tmp = tempfile.mkdtemp(prefix="io-loader-")
        rec = self._pf.read_row_group(i).to_pylist()[0]
        row = mt.ShardRow(i, {k: str(rec[k] or "") for k in mt.KEYS}, {b: rec[b] for b in mt.SHARD_BANDS},
                          rec.get("cloud_mask"))
        nbytes = sum(len(v) for v in row.bands.values()) + len(row.cloud_mask or b"")
        scene = mt.row_scene(row, self._tmp)
        h, w = scene.shape
        r, c = _window(self.seed, self.epoch, i, h, w, self.crop)
        return self.sample(scene.data[:, r : r + self.crop, c : c + self.crop], scene.offset, nbytes)


class J2kLoader(_Loader):
    """(d) JPEG 2000 codestreams: decode the whole cell, crop."""

    def __init__(self, files: list[Path], offsets: list[int], crop: int, seed: int = 0) -> None:
        super().__init__(len(files), crop, seed)
        self.files, self.offsets = files, offsets

    def __getitem__(self, i: int) -> dict[str, Any]:
        stream = self.files[i].read_bytes()
        dn = j2k_decode(stream)
        r, c = _window(self.seed, self.epoch, i, dn.shape[1], dn.shape[2], self.crop)
        return self.sample(dn[:, r : r + self.crop, c : c + self.crop], self.offsets[i], len(stream))


class TokenLoader(Dataset):
    """(a) the token archive through TokenArchiveDataset, with the token bytes of each sample."""

    def __init__(self, archive: Path, sizes: list[int], crop: int, mode: str, crop_stride: int = 1) -> None:
        self.ds = TokenArchiveDataset(archive, mode=mode, crop=crop, crop_stride=crop_stride)
        self.sizes = sizes

    def __len__(self) -> int:
        return len(self.ds)

    def __getitem__(self, i: int) -> dict[str, Any]:
        s = self.ds[i]
        key = "image" if "image" in s else "tokens"
        return {key: s[key], "bytes": self.sizes[i]}


def _du(paths: list[Path]) -> int:
    return sum(p.stat().st_size for p in paths)


def build(work: Path, data: Path, repeat: int, ratio: float) -> dict[str, Any]:
    """Write the four archives of the real cells (each cell ``repeat`` times) into ``work``."""
    import rasterio

    codec = LearnedCodec.load()
    rows = [mt.cell_row(data / c) for c in CELLS] * repeat
    for i, r in enumerate(rows):
        r["grid_cell"] = f"{r['grid_cell']}#{i}"  # distinct keys for the repeated cells
    shard = work / "shard.parquet"
    mt.write_shard(rows, shard)
    archive = work / "tokens.parquet"
    rep = mt.encode_shard(shard, archive, codec, ratio=ratio)
    recs = list(mt.iter_archive(archive, columns=["tokens", "cloud_mask", "offset"]))
    sizes = [len(r["tokens"]) + len(r["cloud_mask"] or b"") for r in recs]
    tokens = [len(r["tokens"]) for r in recs]
    offsets = [int(r["offset"]) for r in recs]
    tifs, j2ks, raw = [], [], 0
    with tempfile.TemporaryDirectory() as tmp:
        for i, row in enumerate(mt.iter_shard(shard)):
            scene = mt.row_scene(row, tmp)
            dn = scene.select(codec.bands).data
            raw += dn.size * 2
            tif = work / f"cell{i}.tif"
            profile = dict(driver="GTiff", width=dn.shape[2], height=dn.shape[1], count=dn.shape[0], dtype="uint16",
                           crs=scene.crs, transform=scene.transform, compress="deflate", predictor=2, tiled=True,
                           blockxsize=256, blockysize=256, interleave="band", nodata=0)
            with rasterio.open(tif, "w", **profile) as dst:
                dst.write(dn)
            tifs.append(tif)
            stream = j2k_at_size(dn, tokens[i])
            if stream is None:
                raise SystemExit(f"JPEG 2000 cannot reach {tokens[i]} B for cell {i}")
            j2k = work / f"cell{i}.j2k"
            j2k.write_bytes(stream)
            j2ks.append(j2k)
    return {"shard": shard, "archive": archive, "tifs": tifs, "j2ks": j2ks, "sizes": sizes, "offsets": offsets,
            "raw": raw, "token_bytes": rep.token_bytes, "mask_bytes": rep.mask_bytes,
            "disk": {"raw uint16 (10 m grid)": raw, "(a) token archive": archive.stat().st_size,
                     "(b) GeoTIFF deflate": _du(tifs), "(c) Major-TOM shard": shard.stat().st_size,
                     "(d) JPEG 2000 at token size": _du(j2ks)}}


def time_loader(ds: Dataset, workers: int) -> dict[str, float]:
    """Samples/s of the second epoch (persistent workers) and mean bytes read per sample."""
    kw = {"num_workers": workers, "batch_size": 1, "persistent_workers": workers > 0}
    loader = DataLoader(ds, **kw)
    for _ in loader:  # epoch 1: workers start, models load
        pass
    t, n, nbytes = time.perf_counter(), 0, 0
    for batch in loader:
        n += 1
        nbytes += int(batch["bytes"].sum())
    dt = time.perf_counter() - t
    return {"samples_per_s": n / dt, "seconds": dt, "bytes_per_sample": nbytes / n}


def breakdown(archive: Path, crop: int, n: int, crop_stride: int = 1) -> dict[str, float]:
    """Mean ms per pixel-mode sample in each step (this process, one torch thread): where decode time goes."""
    import eocompress.imagery.codec.learned as learned_mod

    torch.set_num_threads(1)
    ds = TokenArchiveDataset(archive, crop=crop, crop_stride=crop_stride)
    codec = ds.codec
    spent: dict[str, float] = {}

    def timed(name: str, fn: Any) -> Any:
        def run(*a: Any, **k: Any) -> Any:
            t = time.perf_counter()
            try:
                return fn(*a, **k)
            finally:
                spent[name] = spent.get(name, 0.0) + time.perf_counter() - t
        return run

    ds._blob = timed("Parquet row read", ds._blob)
    codec.read_header = timed("header + CRC (x2)", codec.read_header)
    codec.entropy.decode = timed("range decoding (whole cell)", codec.entropy.decode)
    original = learned_mod.synthesis_window
    learned_mod.synthesis_window = timed("synthesis of the crop's window", original)
    codec._to_dn = timed("DN conversion", codec._to_dn)
    try:
        ds[0]  # warm-up
        spent.clear()
        t, k = time.perf_counter(), 0
        for epoch in range(n):
            ds.set_epoch(epoch + 1)
            for i in range(len(ds)):
                ds[i]
                k += 1
        total = time.perf_counter() - t
    finally:
        learned_mod.synthesis_window = original
    steps = ("Parquet row read", "header + CRC (x2)", "range decoding (whole cell)", "synthesis of the crop's window",
             "DN conversion")
    missing = [name for name in steps if name not in spent]
    if missing:  # the codec's internals moved: say so rather than print a silently wrong split
        print(f"warning: not timed (renamed in the codec?): {', '.join(missing)}; their time is in the rest")
    out = {name: 1000 * v / k for name, v in spent.items()}
    out["reflectance, mask, crop bounds"] = 1000 * total / k - sum(out.values())
    out["total"] = 1000 * total / k
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--repeat", type=int, default=2, help="list each of the 2 real cells this many times")
    ap.add_argument("--ratio", type=float, default=450.0)
    ap.add_argument("--crop", type=int, default=256)
    ap.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--breakdown", type=int, default=3, help="epochs of the per-step timing (0: skip it)")
    ap.add_argument("--out", type=Path, default=None, help="write the results as JSON here")
    args = ap.parse_args()
    data = data_file("imagery/majortom-core-s2l2a")  # or one line saying what to set, exit 2
    print(machine_line(IMAGERY_PACKAGES), flush=True)
    results: dict[str, Any] = {"cells": list(CELLS), "repeat": args.repeat, "crop": args.crop, "ratio": args.ratio,
                               "cpus": os.cpu_count(), "load_avg_start": load_average(),
                               "machine": machine(IMAGERY_PACKAGES), "loaders": {}}
    with tempfile.TemporaryDirectory(prefix="io-loader-") as tmp:
        work = Path(tmp)
        t = time.perf_counter()
        b = build(work, data, args.repeat, args.ratio)
        results["build_s"] = time.perf_counter() - t
        results["disk_bytes"] = b["disk"]
        results["mask_bytes"] = b["mask_bytes"]
        loaders = {
            "(a) token archive, pixels": lambda: TokenLoader(b["archive"], b["sizes"], args.crop, "pixels"),
            "(a) token archive, pixels, 16-px grid": lambda: TokenLoader(b["archive"], b["sizes"], args.crop,
                                                                         "pixels", crop_stride=16),
            "(a) token archive, tokens": lambda: TokenLoader(b["archive"], b["sizes"], args.crop, "tokens"),
            "(b) GeoTIFF deflate, window": lambda: GeoTiffLoader(b["tifs"], b["offsets"], args.crop),
            "(c) Major-TOM shard": lambda: ShardLoader(b["shard"], args.crop),
            "(d) JPEG 2000 at token size": lambda: J2kLoader(b["j2ks"], b["offsets"], args.crop),
        }
        for name, make in loaders.items():
            for w in args.workers:
                r = time_loader(make(), w)
                results["loaders"][f"{name} | {w} workers"] = r
                print(f"{name:40s} {w} workers: {r['samples_per_s']:7.2f} samples/s, "
                      f"{r['bytes_per_sample']:12,.0f} B read/sample", flush=True)
        for stride in (1, 16) if args.breakdown else ():
            steps = breakdown(b["archive"], args.crop, args.breakdown, stride)
            results[f"breakdown_ms_per_sample | crop_stride {stride}"] = steps
            print(f"where a token-archive pixel sample's time goes (ms, one thread, crop_stride {stride}):")
            for k, v in steps.items():
                print(f"  {k:34s} {v:8.1f}  ({100 * v / steps['total']:4.0f} %)")
    results["load_avg_end"] = load_average()
    print("size on disk:")
    for k, v in results["disk_bytes"].items():
        print(f"  {k:32s} {v:14,d} B  ({results['disk_bytes']['raw uint16 (10 m grid)'] / v:7.1f}x smaller than raw)")
    print(f"  (cloud masks in the token archive: {results['mask_bytes']:,} B)")
    if args.out:
        args.out.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
