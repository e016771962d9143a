"""Rate control of the learned codec: the --quality ladder and the step search that meets a --ratio.

The file size falls monotonically with the quantisation step, so the largest file within the budget is
found by bisection on log(step); the ladder spaces ten steps geometrically between the model's trained
``delta_max`` (quality 1) and ``delta_min`` (quality 10).
"""

from __future__ import annotations

import math
from collections.abc import Callable

from eocompress.errors import InputError

#: The --quality ladder: quality q in 1..10 uses delta = DELTA_HI * (DELTA_LO / DELTA_HI) ** ((q - 1) / 9).
QUALITY_LEVELS = 10
#: Bisection steps on log(step) when searching the size for a ratio.
SEARCH_STEPS = 18
#: The search's step range around the trained one: down to delta_min / 4, up to delta_max x 64 (the smallest file).
STEP_BELOW, STEP_ABOVE = 4.0, 64.0


def largest_step(delta_max: float) -> float:
    """The largest step the ratio search tries: its file is the smallest the codec makes of a scene."""
    return delta_max * STEP_ABOVE


def delta_for_quality(quality: int, delta_min: float, delta_max: float) -> float:
    """Quantisation step of ladder level ``quality`` (1 = smallest files … 10 = best fidelity)."""
    if not 1 <= int(quality) <= QUALITY_LEVELS:
        raise InputError(f"quality must be 1..{QUALITY_LEVELS}, got {quality}")
    hi, lo = delta_max, delta_min
    return float(hi * (lo / hi) ** ((int(quality) - 1) / (QUALITY_LEVELS - 1)))


def fit_ratio(
    build: Callable[[float], bytes], ratio: float | None, shape: tuple[int, int, int], header_bytes: int,
    delta_min: float, delta_max: float,
) -> bytes:
    """The largest file ``build(step)`` makes within raw uint16 size / ``ratio``; one line when none fits.

    ``shape`` is the scene's (C, H, W); ``header_bytes`` is only quoted in the message.
    """
    if not (ratio and math.isfinite(ratio) and ratio > 1):
        raise InputError(f"ratio must be a number > 1 (e.g. 450), got {ratio}")
    raw = shape[0] * shape[1] * shape[2] * 2
    budget = raw / ratio
    lo, hi = math.log(delta_min / STEP_BELOW), math.log(largest_step(delta_max))
    best = build(math.exp(hi))
    if len(best) > budget:
        best_ratio = math.floor(raw / len(best) * 10) / 10  # rounded down: reachable
        fix = (
            f"ask for --ratio {best_ratio:g} or less" if best_ratio > 1 else
            f"the raw scene ({raw:,} B) is no larger than that, so encode a larger scene "
            "(64x64 pixels or more) or keep this one as it is"
        )
        raise InputError(
            f"{ratio:g}x cannot be reached for a {shape[1]}x{shape[2]} scene: the smallest file is "
            f"{len(best)} bytes (header {header_bytes} B); {fix}"
        )
    for _ in range(SEARCH_STEPS):  # bisection on log(step): size falls monotonically with the step
        mid = (lo + hi) / 2
        blob = build(math.exp(mid))
        if len(blob) <= budget:
            best, hi = blob, mid
        else:
            lo = mid
    return best
