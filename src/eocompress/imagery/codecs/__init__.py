"""Imagery codecs behind one interface (:class:`SceneCodec`): ours and the classical anchors.

``get_codec(name, **options)`` builds one by name: ``learned`` (what ``imagery encode`` writes),
``jpeg2000``, ``jpeg2000-native`` (per band at native resolution), ``klt+jpeg2000``, ``klt+av1`` and ``jpegxl``. The
registry holds factories: ``import eocompress.imagery.codecs`` and the anchors never import torch; the
learned codec's module (and torch) is imported by the first ``get_codec("learned")``.
"""

from typing import Any

# The anchors register themselves on import; none of them imports torch.
from eocompress.imagery.codecs import jpeg2000, jpeg2000_native, jpegxl, klt, klt_av1  # noqa: F401
from eocompress.imagery.codecs.base import SceneCodec, codec_names, get_codec, register, to_input_convention


def _learned(**options: Any) -> SceneCodec:
    """Our learned codec, loaded when asked for by name: it brings torch, which the anchors do not need."""
    from eocompress.imagery.codecs.learned import LearnedSceneCodec

    return LearnedSceneCodec(**options)


register("learned", _learned)

#: The anchors ``imagery evaluate`` measures at our file size by default.
ANCHORS = ("jpeg2000", "klt+jpeg2000", "jpegxl")

__all__ = ["ANCHORS", "SceneCodec", "codec_names", "get_codec", "register", "to_input_convention"]
