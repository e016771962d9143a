"""The demo (``make demo``): refuses to replace earlier outputs without --overwrite, and its codec step
measures real 128-d and 1280-d embeddings of the same pixels."""

from __future__ import annotations

import os

import pytest

from eocompress import demo
from eocompress.errors import EOCompressError

needs_data = pytest.mark.skipif(
    not os.environ.get("EOCOMPRESS_DATA") or not os.path.isdir(os.environ["EOCOMPRESS_DATA"]),
    reason="needs the real data: set $EOCOMPRESS_DATA (see `eocompress data`)",
)


@needs_data
def test_existing_outputs_need_overwrite(tmp_path):
    (tmp_path / "codecs.csv").write_text("old")
    with pytest.raises(EOCompressError, match="--overwrite"):
        demo.check_inputs(tmp_path, overwrite=False)
    demo.check_inputs(tmp_path, overwrite=True)
    assert (tmp_path / "codecs.csv").read_text() == "old"  # checking never touches outputs
    demo.check_inputs(tmp_path / "fresh", overwrite=False)


@needs_data
def test_a_file_is_not_an_output_folder(tmp_path):
    (tmp_path / "f").write_text("x")
    with pytest.raises(EOCompressError, match="folder"):
        demo.check_inputs(tmp_path / "f", overwrite=True)


@needs_data
@pytest.mark.realdata
@pytest.mark.slow
def test_codec_step_on_1280_d_embeddings():
    rows = demo.evaluate_codecs("lulc1280", ["float32", "int8", "pca16,int8"])
    by = {r.spec: r for r in rows}
    assert by["float32"].dims == 1280 and by["float32"].bytes_per_vector == 5120
    assert by["float32"].knn_drop_points == 0 and by["float32"].relative_error == 0
    assert abs(by["int8"].knn_drop_points) < 0.5  # int8 is near-lossless for kNN (demo: +0.0 points)
    assert by["pca16,int8"].bytes_per_vector == 16
    assert by["pca16,int8"].relative_error > 10 * by["int8"].relative_error  # spread spectrum: PCA costs here


@needs_data
@pytest.mark.realdata
@pytest.mark.slow
def test_imagery_step_uses_the_learned_codec(tmp_path):
    """Step 3 runs the one token-file codec (no VQ fallback) at 1/450 and measures JPEG 2000 beside it."""
    result = demo.imagery_demo(tmp_path)
    # within the budget, and using it (a file with a JPEG 2000 layer lands within ~1 % under it)
    assert result["codec"] == "learned" and 449.9 <= result["ratio"] <= 460
    assert (tmp_path / demo.LEARNED_TOKENS).stat().st_size == result["file_bytes"]
    assert result["psnr_db"] > 25 and result["jpeg2000"]["bytes"] <= result["file_bytes"]
