"""Imagery codec: scenes -> tiles -> token files (``.eotok``) and back to georeferenced rasters."""

from eocompress._extras import require

require("imagery", "the imagery codec")
