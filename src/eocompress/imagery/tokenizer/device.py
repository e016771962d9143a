"""The one check of a torch ``--device`` for the imagery half (CLI, learned codec, token datasets).

``cpu`` always; ``cuda`` / ``cuda:N`` when torch sees that GPU; ``mps`` on Apple silicon when available.
Anything else is one line saying what was asked, why it cannot run here and what to use instead.
"""

from __future__ import annotations

import torch

from eocompress.errors import InputError


def available_devices() -> list[str]:
    """Torch devices usable here: ``cpu`` plus ``cuda``/``cuda:N`` and ``mps`` when present."""
    out = ["cpu"]
    if torch.cuda.is_available():
        out += ["cuda"] + [f"cuda:{i}" for i in range(torch.cuda.device_count())]
    mps = getattr(torch.backends, "mps", None)
    if mps is not None and mps.is_available():
        out.append("mps")
    return out


def check_device(device: str, option: str = "--device") -> str:
    """``device`` when torch can use it here; otherwise one :class:`InputError` line naming the fix.

    ``option``: the flag the user gave it with, named in the fix (``--accelerator`` for the trainers).
    """
    available = available_devices()
    here = f"available here: {', '.join(available)}"
    try:
        dev = torch.device(device)
    except (RuntimeError, ValueError, TypeError) as exc:
        raise InputError(f"{option} {device!r} is not a torch device; use cpu, cuda or mps ({here})") from exc
    name = dev.type if dev.index is None else f"{dev.type}:{dev.index}"
    if name in available:
        return device
    if dev.type == "cuda" and not torch.cuda.is_available():
        why = "torch.cuda.is_available() is False (no CUDA GPU is visible on this machine)"
    elif dev.type == "cuda":
        why = f"only {torch.cuda.device_count()} CUDA device(s) are visible"
    elif dev.type == "mps":
        why = "torch.backends.mps.is_available() is False"
    else:
        why = f"the imagery codec runs on cpu, cuda or mps, not {dev.type}"
    raise InputError(f"{device} requested but {why}; use {option} cpu ({here})")
