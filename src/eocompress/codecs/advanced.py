"""Codecs beyond the study (owned by the evaluation work): imported so their spec forms register."""
