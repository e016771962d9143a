"""Imagery evaluation: the one definition of fidelity metrics, classical baselines, reports."""
