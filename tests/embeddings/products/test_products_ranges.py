"""No silent clipping: scalar ranges over the whole input, every value a range still clips counted and shown."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import rasterio

from eocompress import Codec
from eocompress.embeddings.products.api import compress, open_product
from eocompress.embeddings.products.fields import open_field, sample_pixels
from eocompress.embeddings.products.verify import product_summary, verify_product

EOCOMPRESS = str(Path(sys.executable).with_name("eocompress"))
MAJORTOM = "embeddings/presto_majortom_199U_1099R_256.tif"


def test_range_report_and_widen_range() -> None:
    """Values beyond half a step outside the range are counted with their error in steps; widening removes them."""
    rng = np.random.default_rng(0)
    X = rng.standard_normal((2000, 8)).astype(np.float32)
    codec = Codec("int8").fit(X[:100])
    low, high, step = codec.quantizer.coded_range()
    rep = codec.range_report(X)
    expected = (X < low - step / 2) | (X > high + step / 2)
    assert rep["values"] == X.size and rep["clipped"] == int(expected.sum()) > 0
    worst = float(np.max(np.maximum(low - X, X - high) / step))
    assert rep["worst_steps"] == pytest.approx(worst, rel=1e-5)
    assert np.max(np.abs(codec.reconstruct(X) - X) / step) == pytest.approx(worst, rel=1e-3)
    assert codec.widen_range(rep["min"], rep["max"])
    np.testing.assert_array_equal(codec.encode(X), Codec("int8").fit(X).encode(X))  # = a fit on every row
    assert codec.range_report(X)["clipped"] == 0
    assert Codec("pq2").fit(X).range_report(X) is None
    assert not Codec("aef-int8").fit(X).widen_range(rep["min"], rep["max"])
    assert Codec("aef-int8").fit(X).range_report(X)["clipped"] == int((np.abs(X) > 1).sum())


def _field(data_root: Path) -> tuple[np.ndarray, np.ndarray]:
    with rasterio.open(data_root / MAJORTOM) as src:
        values = np.moveaxis(src.read(), 0, -1).astype(np.float32)
    return values, np.isfinite(values).all(axis=-1)


@pytest.mark.slow
def test_compress_fits_ranges_on_the_whole_field(data_root: Path, tmp_path: Path) -> None:
    """Real Major-TOM field: a 20,000-pixel sample range clips hundreds of values; the product clips none."""
    src = data_root / MAJORTOM
    out = compress(src, tmp_path / "f.zarr", "int8", chunk=64)
    prod = open_product(out)
    record = prod.attrs["eocompress:clipping"]["codes"]
    assert record["range_fitted_on"] == "whole input" and record["clipped"] == 0
    assert record["clipped_by_sample_range"] > 100  # what fitting on the sample alone would have clipped
    values, valid = _field(data_root)
    assert record["values"] == int(valid.sum()) * values.shape[-1]
    decoded = np.concatenate([prod.decode_chunk(w)[0][prod.read_chunk(w)[1]] for w in prod.windows()])
    step = prod.codec.quantizer.step_
    truth = np.concatenate([values[w.r0:w.r1, w.c0:w.c1][valid[w.r0:w.r1, w.c0:w.c1]] for w in prod.windows()])
    assert np.max(np.abs(decoded - truth) / step) <= 0.5 + 1e-3  # every value within half a step: none clipped
    assert "0 of" in product_summary(out, check=False)["clipping"]["codes"]


@pytest.mark.slow
def test_fit_codec_clipping_is_counted_and_shown(data_root: Path, tmp_path: Path) -> None:
    """A --fit codec keeps its range: compress, info and verify name the clipped values and the worst error."""
    values, valid = _field(data_root)
    X = values[valid]
    codec = Codec("int8").fit(X[::50])
    codec.save(tmp_path / "c.json")
    expected = codec.range_report(X)
    assert expected["clipped"] > 0
    out = tmp_path / "f.zarr"
    r = subprocess.run([EOCOMPRESS, "compress", str(data_root / MAJORTOM), "-o", str(out), "--fit",
                        str(tmp_path / "c.json"), "--workers", "0"], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    line = f"{expected['clipped']:,} of {X.size:,} values clipped"
    assert line in r.stderr and "quantization steps" in r.stderr
    record = open_product(out).attrs["eocompress:clipping"]["codes"]
    assert record["clipped"] == expected["clipped"]
    assert record["worst_steps"] == pytest.approx(expected["worst_steps"], abs=0.01)
    assert line in verify_product(out)["clipping"]["codes"]
    v = subprocess.run([EOCOMPRESS, "verify", str(out)], capture_output=True, text=True, timeout=300)
    assert v.returncode == 0 and line in v.stdout
    i = subprocess.run([EOCOMPRESS, "info", str(out), "--no-check", "--json"], capture_output=True, text=True,
                       timeout=300)
    assert line in i.stdout


def test_fit_sample_does_not_shrink_with_the_chunk(data_root: Path) -> None:
    """--chunk 8 used to cap the sample at 32 chunks = 2,048 pixels; now it holds the 20,000 asked for."""
    fld = open_field(data_root / MAJORTOM)
    assert len(sample_pixels(fld, 20000, 8)) == 20000
    assert len(sample_pixels(fld, 20000, 512)) == 20000


def test_parquet_ranges_fit_the_whole_table(lulc: dict, tmp_path: Path) -> None:
    """A chip table's int8 range covers every row, not only the fit sample; the record is stored and shown."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    X = np.ascontiguousarray(lulc["X"][:4000])
    table = pa.table({"embedding": pa.array(list(X), type=pa.list_(pa.float32())), "id": np.arange(len(X))})
    src = tmp_path / "chips.parquet"
    pq.write_table(table, src, row_group_size=1000)
    out = compress(src, tmp_path / "c.parquet", "int8", fit_sample=300)
    record = product_summary(out, check=False)["clipping"]["codes"]
    assert record.startswith(f"0 of {X.size:,} values clipped (range fitted on whole input)")
    codec = open_product(out).codec
    assert codec.range_report(X)["clipped"] == 0
    assert Codec("int8").fit(X[:300]).range_report(X)["clipped"] > 0  # what the sample's range alone clips
