"""What the imagery timing benchmarks share: their ``--rates`` and ``--repeats`` options and the pair they time, our
learned codec and the JPEG 2000 anchor over the 12 L2A bands, announced with the machine line. A script under
``benchmarks/imagery/`` imports it after putting ``benchmarks/`` on the path, as it does for :mod:`common`."""

from __future__ import annotations

import argparse
from collections.abc import Sequence

from common import IMAGERY_PACKAGES, machine_line
from eocompress.imagery.codecs import SceneCodec, get_codec
from eocompress.imagery.readers.bands import S2_L2A_BANDS


def add_timing_args(ap: argparse.ArgumentParser, rates: Sequence[int], repeats: int) -> None:
    """``--rates`` (the ratios each scene is encoded at, by default ``rates``) and ``--repeats`` (the timed runs of
    each step, by default ``repeats``)."""
    ap.add_argument("--rates", type=int, nargs="+", default=list(rates))
    ap.add_argument("--repeats", type=int, default=repeats)


def ours_and_jpeg2000() -> tuple[SceneCodec, SceneCodec]:
    """The machine line printed, then (our learned codec, the JPEG 2000 anchor over the 12 L2A bands)."""
    print(machine_line(IMAGERY_PACKAGES))
    return get_codec("learned"), get_codec("jpeg2000", bands=list(S2_L2A_BANDS))
