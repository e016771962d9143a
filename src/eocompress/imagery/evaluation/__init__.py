"""Imagery evaluation: the one definition of fidelity metrics, classical baselines, reports."""

from eocompress._extras import require

require("imagery", "imagery evaluation")
