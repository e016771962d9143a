"""Embedding half: codecs fit on vectors, evaluation of what they cost, compressed geospatial products.

Pipeline: :mod:`.codecs` (spec strings -> fitted Codec) -> :mod:`.products` (Zarr/COG/GeoParquet/STAC,
search) and :mod:`.evaluation` (sweeps, statistics, recommendations).
"""
