"""Re-ranking by a product's float16 codes in faiss (IndexRefine over SQfp16) gives the numpy re-rank's answer.

On a real product (the Presto land-cover field, ``pca16,int8`` codes + float16 rescore codes, Zarr): the
index proposes, the float16 codes re-rank, once through ``search(..., index=..., rescore="float16")`` (numpy,
chunk by chunk) and once through :func:`refine_search`; the ids and scores must agree.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from eocompress.embeddings.products.api import compress, open_product
from eocompress.embeddings.products.index import build_index, open_index
from eocompress.embeddings.products.search import (
    float16_norms,
    float16_refine_index,
    product_float16_codes,
    refine_search,
    search,
)
from eocompress.errors import InputError


@pytest.fixture(scope="module")
def product(data_root: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    src = data_root / "embeddings/presto_lulc_slovenia_embeddings.tif"
    tmp = tmp_path_factory.mktemp("refine16")
    return compress(src, tmp / "p.zarr", "pca16,int8", rescore_spec="float16", chunk=48, fit_sample=5000,
                    stac=False)


def test_product_float16_codes_are_the_stored_codes(product: Path) -> None:
    """Row r * width + c holds pixel (r, c)'s float16 rescore code, as the product stores it."""
    prod = open_product(product)
    codes = product_float16_codes(prod)
    w = prod.windows()[3]
    _, valid, extra = prod.read_chunk(w, rescore=True)
    r, c = w.r0 + 5, w.c0 + 7
    assert valid[5, 7]
    np.testing.assert_array_equal(codes[r * prod.info.width + c], extra[5, 7])
    assert codes.shape == (prod.info.height * prod.info.width, 2 * prod.rescore_codec.dim)


@pytest.mark.parametrize("metric", ["cosine", "ip"])
def test_faiss_refine_matches_numpy_rescore(product: Path, tmp_path: Path, metric: str) -> None:
    """12 query pixels: top-10 of 100 index candidates re-ranked in faiss == the product search's numpy re-rank."""
    path = build_index(product, tmp_path / f"{metric}.index", metric=metric)
    prod = open_product(product)
    idx = open_index(path, prod)
    codes = product_float16_codes(prod)
    norms = float16_norms(codes)
    refine = float16_refine_index(idx, codes)
    width = prod.info.width
    rng = np.random.default_rng(0)
    compared = 0
    for r, c in zip(rng.integers(0, prod.info.height, 12), rng.integers(0, width, 12), strict=True):
        hits = search(product, pixel=(int(r), int(c)), k=10, m=10, rescore="float16", metric=metric, index=path)
        q = codes[r * width + c].view("<f2").astype(np.float32)
        scores, ids = refine_search(refine, q[None], 10, 100, idx.manifest["nprobe"], metric=metric, norms=norms)
        want_ids = np.array([h.row * width + h.col for h in hits])
        want_scores = np.array([h.score for h in hits], np.float32)
        np.testing.assert_allclose(scores[0], want_scores, rtol=1e-5, atol=1e-6)
        gap = np.diff(want_scores)
        if np.all(np.abs(gap) > 1e-5):  # no near-tie: the order must be the same, id for id
            np.testing.assert_array_equal(ids[0], want_ids)
            compared += 1
        else:
            assert set(ids[0]) == set(want_ids)
    assert compared >= 6


def test_refine_refuses_too_few_rows(product: Path, tmp_path: Path) -> None:
    path = build_index(product, tmp_path / "c.index", metric="cosine")
    prod = open_product(product)
    idx = open_index(path, prod)
    with pytest.raises(InputError, match="one row per id"):
        float16_refine_index(idx, product_float16_codes(prod)[:100])
    with pytest.raises(InputError, match="norms"):
        refine_search(float16_refine_index(idx, product_float16_codes(prod)), np.ones((1, 128), np.float32), 10, 100,
                      4, metric="cosine")
