"""Fuzzed product metadata (hypothesis, seeded and bounded): our own error or a sound decode, nothing else.

Each example mutates one value of a real product's metadata (Zarr root attributes, COG tags), with or
without recomputing its metadata checksum. Without the recomputed checksum the product must be refused
(or decode identically when the mutation happens to change nothing); with it, opening and decoding must
either raise our EOCompressError or return float32 values of the original shape: never another
exception, a hang or a different shape.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import rasterio
from hypothesis import HealthCheck, given, seed, settings
from hypothesis import strategies as st

from eocompress.embeddings.products.api import compress, open_product
from eocompress.errors import EOCompressError

FUZZ = settings(
    max_examples=25,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


@pytest.fixture(scope="module")
def small(data_root: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """A 32 x 24 window, 16 bands, of the real LULC field compressed to a pca8,int8 Zarr and an int8 COG."""
    tmp = tmp_path_factory.mktemp("fuzz")
    src = data_root / "embeddings/presto_lulc_slovenia_embeddings.tif"
    win = rasterio.windows.Window(30, 40, 24, 32)
    with rasterio.open(src) as s:
        data = s.read(indexes=list(range(1, 17)), window=win)
        profile = s.profile
        profile.update(count=16, height=32, width=24, transform=s.window_transform(win))
    field = tmp / "f.tif"
    with rasterio.open(field, "w", **profile) as d:
        d.write(data)
    zarr_p = compress(field, tmp / "p.zarr", "pca8,int8", chunk=16, stac=False)
    cog_p = compress(field, tmp / "p.tif", "int8", chunk=16, stac=False)
    return {
        "zarr": zarr_p,
        "cog": cog_p,
        "tmp": tmp,
        "ref": {k: _decode(v) for k, v in (("zarr", zarr_p), ("cog", cog_p))},
    }


def _decode(path: Path) -> np.ndarray:
    prod = open_product(path)
    out = np.zeros((prod.info.height, prod.info.width, prod.info.dim), np.float32)
    for w in prod.windows():
        values, _ = prod.decode_chunk(w)
        out[w.r0 : w.r1, w.c0 : w.c1] = values
    return out


def _paths(obj: Any, prefix: tuple = ()) -> list[tuple]:
    """Every leaf path of a JSON value."""
    if isinstance(obj, dict):
        return [p for k, v in obj.items() for p in _paths(v, (*prefix, k))] or [prefix]
    if isinstance(obj, list) and obj:
        return [p for i, v in enumerate(obj[:6]) for p in _paths(v, (*prefix, i))]
    return [prefix]


REPLACEMENTS = st.one_of(
    st.integers(-(2**40), 2**40),
    st.floats(allow_nan=False, width=32),
    st.sampled_from([None, "", "nan", [], {}, [1, 2], True, -1, 0, 2**31, 1e308]),
    st.text(max_size=8),
)


def _mutate(value: Any, path: tuple, new: Any) -> Any:
    if not path:
        return new
    head, rest = path[0], path[1:]
    value = json.loads(json.dumps(value))
    value[head] = _mutate(value[head], rest, new)
    return value


def _check(path: Path, ref: np.ndarray, recomputed: bool) -> None:
    try:
        got = _decode(path)
    except EOCompressError:
        return
    assert got.shape == ref.shape and got.dtype == np.float32
    if not recomputed:
        np.testing.assert_array_equal(got, ref)


@seed(11)
@FUZZ
@given(data=st.data(), recompute=st.booleans())
def test_fuzzed_zarr_attributes(small: dict[str, Any], data: st.DataObject, recompute: bool) -> None:
    from eocompress.embeddings.products.zarr_product import DIGEST_KEY, metadata_digest

    work = small["tmp"] / "z_work.zarr"
    shutil.rmtree(work, ignore_errors=True)
    shutil.copytree(small["zarr"], work)
    meta = json.loads((work / "zarr.json").read_text())
    attrs = meta["attributes"]
    keys = sorted(k for k in attrs if k != DIGEST_KEY)
    key = data.draw(st.sampled_from(keys), label="key")
    leaf = data.draw(st.sampled_from(_paths(attrs[key])), label="leaf")
    attrs[key] = _mutate(attrs[key], leaf, data.draw(REPLACEMENTS, label="value"))
    (work / "zarr.json").write_text(json.dumps(meta))
    if recompute:
        attrs[DIGEST_KEY] = metadata_digest(work)
        (work / "zarr.json").write_text(json.dumps(meta))
    _check(work, small["ref"]["zarr"], recompute)


@seed(12)
@FUZZ
@given(data=st.data(), recompute=st.booleans())
def test_fuzzed_cog_tags(small: dict[str, Any], data: st.DataObject, recompute: bool) -> None:
    from eocompress.embeddings.products.cog_product import DIGEST_TAG, cog_metadata_digest

    work = small["tmp"] / "c_work.tif"
    shutil.copyfile(small["cog"], work)
    with rasterio.open(work) as src:
        tags = {k: v for k, v in src.tags().items() if k.startswith("EOCOMPRESS_") and k != DIGEST_TAG}
    key = data.draw(st.sampled_from(sorted(tags)), label="tag")
    try:
        value = json.loads(tags[key])
    except ValueError:
        value = tags[key]
    leaf = data.draw(st.sampled_from(_paths(value)), label="leaf")
    new = _mutate(value, leaf, data.draw(REPLACEMENTS, label="value"))
    with rasterio.open(work, "r+", IGNORE_COG_LAYOUT_BREAK="YES") as dst:
        dst.update_tags(**{key: new if isinstance(new, str) else json.dumps(new)})
    if recompute:
        digest = cog_metadata_digest(work)
        with rasterio.open(work, "r+", IGNORE_COG_LAYOUT_BREAK="YES") as dst:
            dst.update_tags(**{DIGEST_TAG: digest})
    _check(work, small["ref"]["cog"], recompute)
