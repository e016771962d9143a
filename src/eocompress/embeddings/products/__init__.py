"""Compressed embedding products: Zarr, COG and GeoParquet files other tools open, with STAC, checksums, search."""
