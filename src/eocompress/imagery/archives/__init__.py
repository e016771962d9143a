"""Imagery archives: Major-TOM Core shards in and out, token archives (GeoParquet) and a PyTorch dataset over them."""
