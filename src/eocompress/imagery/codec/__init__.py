"""Imagery codec: scenes -> tiles -> token files (``.eotok``) and back to georeferenced rasters."""
