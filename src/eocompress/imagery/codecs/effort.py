"""The encoder's efforts (how hard ``imagery encode`` works for its bytes) and the one check of a requested effort.

Apart from :mod:`.enhancement` so that the CLI checks a requested effort before the learned codec (and torch) is
loaded.
"""

from __future__ import annotations

from eocompress.errors import InputError

#: ``default`` tries the thin base (and near the top of the ladder a learned one) under a KLT residual layer coded by
#: AV1 (and OpenJPEG at few bits a pixel, the closer kept) with its filter; ``fast`` runs no network and codes the
#: residual of the band means (the header-only base) with HTJ2K, no filter: on the held-out suite 0.62-0.84x plain
#: JPEG 2000's encode time per rung and 0.39-0.56x its decode (0.12.7, ``benchmarks/imagery/rate_distortion.py
#: --effort fast``).
EFFORTS = ("default", "fast")


def check_effort(effort: str, *, ratio: float | None = None, quality: int | None = None, refine_steps: int = 0,
                 layer: bool = True) -> None:
    """One line when ``effort`` is not one of :data:`EFFORTS` or ``fast`` comes with what it does not do."""
    if effort not in EFFORTS:
        raise InputError(f"--effort must be one of {', '.join(EFFORTS)}, got {effort!r}")
    if effort != "fast":
        return
    if quality is not None or ratio is None:
        raise InputError("--effort fast codes to a size: give --ratio (e.g. 450), not --quality")
    if refine_steps or not layer:
        what = "--refine (latent refinement)" if refine_steps else "--no-layer (the learned token file alone)"
        raise InputError(f"--effort fast runs no network, so it cannot do {what}; drop one of the two")
