"""Our decode of layered files with the layer added in strips on threads (``layer_sum``, since 0.12), in strips on one
thread (0.11.4) and whole (0.11.3), alternating in one process, JPEG 2000's decode of a file of the same bytes as
the peer.

Each scene is encoded once per rate; then each way decodes it in turn, ``--repeats`` times, and the best wall time
and its page faults of each are printed, with the check that every way gives the same DNs.
docs/design/imagery-codec.md (0.11.4, 0.12.0) tabulates runs of::

    EOCOMPRESS_DATA=../shared/data .venv/bin/python benchmarks/imagery/layer_sum.py
"""

from __future__ import annotations

import argparse
import resource
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from eocompress.imagery.codecs import enhancement, layer_filter, layer_sum
from eocompress.imagery.codecs.klt import KLTBasis, klt_inverse_values

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # benchmarks/: the shared helpers
from common import markdown_table, scene_of, timed
from imagery_timing import add_timing_args, ours_and_jpeg2000

#: Held-out whole scenes of three sizes (decode time tunes nothing; these are the suite's scenes).
SCENES = ("oscd-s2l1c/hongkong/imgs_1", "oscd-s2l1c/cupertino/imgs_1",
          "majortom-core-s2l2a/199U_1099R/S2B_MSIL2A_20200223T032739_N9999_R018_T48QUE_20230924T183543")


def whole_scene_sum(base: np.ndarray, planes: np.ndarray, klt: KLTBasis, filt: layer_filter.LayerFilter,
                    shift: int, centre_on_planes: bool = False) -> np.ndarray:
    """The decode's sum as 0.11.3 computed it, the whole scene at once (a new array; ``base`` is left as it is); a
    layer written since 0.12.2 (``centre_on_planes``) filtered around its planes' means, as it is decoded."""
    x = klt_inverse_values(planes, klt)
    if filt.on.any():
        x = x.reshape(base.shape)
        x -= shift
        if centre_on_planes:
            x = layer_sum.filtered_residual(x, filt, layer_sum.plane_means(planes, klt, shift))
        else:
            layer_filter.apply(x, filt, in_place=True)
        np.rint(x, out=x)
        x = x.reshape(base.shape[0], -1)
        x += shift
    np.add(x, base.reshape(base.shape[0], -1), out=x)
    x -= shift
    out = np.clip(x, 1, 65535, out=x).astype(np.uint16).reshape(base.shape)
    out[base == 0] = 0
    return out


def _faults() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--scenes", nargs="+", default=list(SCENES),
                    help="paths under imagery/, each optionally :SIDE for its centre crop")
    add_timing_args(ap, rates=(1000, 450, 50), repeats=5)
    args = ap.parse_args()
    ours, anchor = ours_and_jpeg2000()
    strips = layer_sum.add_layer
    table = []
    for label, scene in (scene_of(spec) for spec in args.scenes):
        for rate in args.rates:
            blob = ours.encode(scene, ratio=rate)
            if not enhancement.is_enhanced(blob):
                print(f"{label} 1/{rate}: the learned file alone (no layer), skipped")
                continue
            peer = anchor.encode(scene, target_bytes=len(blob))
            cell: dict[str, list] = {"strips": [], "one thread": [], "whole": [], "j2k": []}
            decoded = {}
            for _ in range(args.repeats):
                for way, add in (("strips", strips), ("one thread", one_thread(strips)), ("whole", whole_scene_sum)):
                    layer_sum.add_layer = add
                    try:
                        before = _faults()
                        (data, _), wall, _ = timed(lambda b=blob: ours.decode(b))
                        cell[way].append((wall, _faults() - before))
                    finally:
                        layer_sum.add_layer = strips
                    decoded[way] = data
                cell["j2k"].append(timed(lambda p=peer: anchor.decode(p))[1])
            same = all(np.array_equal(decoded["strips"], decoded[way]) for way in ("one thread", "whole"))
            new, one, old, j2k = (min(cell[way]) for way in ("strips", "one thread", "whole", "j2k"))
            table.append([f"{label} 1/{rate}", f"{1e3 * new[0]:.0f} ms ({new[1]:,} faults)",
                          f"{1e3 * one[0]:.0f} ms", f"{1e3 * old[0]:.0f} ms ({old[1]:,} faults)",
                          f"{new[0] / one[0]:.2f} / {new[0] / old[0]:.2f}",
                          f"{new[0] / j2k:.2f}x / {one[0] / j2k:.2f}x / {old[0] / j2k:.2f}x",
                          "yes" if same else "**no**"])
    print(markdown_table(["scene, rate", f"strips, {layer_sum.workers(1 << 30)} threads (best)", "strips, one thread",
                          "whole (best)", "time threads / one thread / whole", "JPEG 2000's decode time",
                          "same DNs"], table))


def one_thread(add: Callable[..., np.ndarray]) -> Callable[..., np.ndarray]:
    """``add`` (the strips) with its strips on one thread, as 0.11.4 added them."""
    def added(*args: Any, **kwargs: Any) -> np.ndarray:
        threads = layer_sum.workers
        layer_sum.workers = lambda strips: 1  # type: ignore[assignment]
        try:
            return add(*args, **kwargs)
        finally:
            layer_sum.workers = threads
    return added


if __name__ == "__main__":
    main()
