"""Imagery codecs behind one interface (:class:`SceneCodec`): ours and the classical anchors.

``get_codec(name, **options)`` builds one by name: ``learned`` (what ``imagery encode`` writes),
``jpeg2000``, ``jpeg2000-native`` (per band at native resolution), ``klt+jpeg2000`` and ``jpegxl``.
"""

from eocompress.imagery.codecs import jpeg2000, jpeg2000_native, jpegxl, klt, learned  # noqa: F401
from eocompress.imagery.codecs.base import SceneCodec, codec_names, get_codec, register, to_input_convention

#: The anchors ``imagery evaluate`` measures at our file size by default.
ANCHORS = ("jpeg2000", "klt+jpeg2000", "jpegxl")

__all__ = ["ANCHORS", "SceneCodec", "codec_names", "get_codec", "register", "to_input_convention"]
