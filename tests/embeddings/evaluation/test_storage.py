"""The storage estimate reproduces the study's first table (decimal PB/TB, $23 per TB-month)."""

from __future__ import annotations

import pytest

from eocompress.embeddings.evaluation.storage import bytes_per_vector, estimate_storage, human_bytes, human_usd
from eocompress.errors import EOCompressError, SpecError

# (dims, spec, bytes/embedding, size, cost/year) as printed in Robinson & Corley (2026), table 1
STUDY_TABLE = [
    (1024, "float32", 4096, "6.1 PB", 1.7e6),
    (1024, "int8", 1024, "1.5 PB", 424e3),
    (512, "float32", 2048, "3.1 PB", 847e3),
    (128, "int8", 128, "192 TB", 53e3),
    (128, "float32", 512, "768 TB", 212e3),
    (64, "int8", 64, "96 TB", 26e3),
]


@pytest.mark.parametrize(("dims", "spec", "nbytes", "size", "usd"), STUDY_TABLE)
def test_reproduces_study_table(dims, spec, nbytes, size, usd):
    est = estimate_storage(spec, dims)
    assert est.bytes_per_vector == nbytes
    assert est.pixels == pytest.approx(1.5e12)
    assert human_bytes(est.total_bytes) == size
    # the study rounds to 2-3 significant digits (and once truncates: $847,872 -> "$847K")
    assert est.usd_per_year == pytest.approx(usd, rel=0.03)


def test_float32_1024_is_about_1_7_million_dollars():
    est = estimate_storage("float32", 1024)
    assert human_usd(est.usd_per_year) == "$1.7M"
    assert est.total_bytes == pytest.approx(6.144e15)


def test_reduced_codecs_and_options():
    assert bytes_per_vector("pca64,int8", 1024) == 64
    assert bytes_per_vector("pca16,int4", 1024) == 8
    assert bytes_per_vector("binary", 1024) == 128
    assert bytes_per_vector("tc16", 128) == 16
    two_years = estimate_storage("int8", 64, years=2, gsd_m=20)
    assert two_years.total_bytes == pytest.approx(2 * 64 * 1.5e12 / 4)


def test_bad_input_is_explained():
    with pytest.raises(SpecError, match="pca256"):
        bytes_per_vector("pca256,int8", 128)
    with pytest.raises(EOCompressError, match="gsd-m"):
        estimate_storage("int8", 64, gsd_m=0)
    with pytest.raises(EOCompressError, match="dims"):
        bytes_per_vector("int8", 0)


def test_storage_cli(capsys):
    from eocompress.cli import main

    with pytest.raises(SystemExit) as exc:
        main(["storage", "--dims", "1024", "--codec", "float32", "--codec", "pca64,int8"])
    assert exc.value.code in (0, None)
    out = capsys.readouterr().out
    assert "6.1 PB" in out and "$1.7M" in out and "96 TB" in out
