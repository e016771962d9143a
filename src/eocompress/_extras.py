"""Optional extras: which libraries each half needs, and one clear error when one is missing.

``pip install eocompress`` gives the embedding half; ``eocompress[imagery]`` adds torch and the
range coder for the learned imagery codec; ``eocompress[train]`` adds Lightning for training.
"""

from __future__ import annotations

import importlib.util
import sys

from eocompress.errors import EOCompressError

#: Import names each extra brings (what `pyproject.toml` installs under that extra).
EXTRAS: dict[str, tuple[str, ...]] = {
    "imagery": ("torch", "constriction", "safetensors", "imagecodecs"),
    "train": ("torch", "constriction", "safetensors", "imagecodecs", "lightning"),
}


class MissingExtraError(EOCompressError, ImportError):
    """A feature used without the optional extra that installs its libraries."""


def _absent(module: str) -> bool:
    if module in sys.modules:
        return sys.modules[module] is None  # a None entry blocks the import
    try:
        return importlib.util.find_spec(module) is None
    except (ImportError, ValueError):  # a finder that refuses the module
        return True


def missing(extra: str) -> list[str]:
    """Import names of ``extra`` that are not installed (empty when the extra is complete)."""
    return [m for m in EXTRAS[extra] if _absent(m)]


def require(extra: str, feature: str) -> None:
    """Raise one line naming the extra to install when ``feature`` cannot run without it."""
    gone = missing(extra)
    if gone:
        raise MissingExtraError(
            f"{feature} needs {', '.join(gone)}, which is not installed; "
            f"install it with: pip install 'eocompress[{extra}]'"
        )


def extra_for(module: str | None) -> str | None:
    """The smallest extra that installs top-level import ``module`` (None when no extra does)."""
    top = (module or "").split(".")[0]
    return next((extra for extra, mods in EXTRAS.items() if top in mods), None)


__all__ = ["EXTRAS", "MissingExtraError", "extra_for", "missing", "require"]
