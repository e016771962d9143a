"""The decode formulas of docs/reference/formats.md for ``tc{B}``, ``tcrq{B}`` and ``unit``, on real products.

Each product is written by eocompress from the real Presto LULC field, then decoded here with zarr and
numpy alone, following the documented formula, and compared with eocompress's own decode.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from eocompress.embeddings.products.api import compress, open_product


def _tc_by_hand(c: np.ndarray, p: dict[str, np.ndarray], prefix: str) -> np.ndarray:
    """formats.md, ``tc{B}``: bits MSB first, component j takes bits[j] of them, z_j = levels[off_j + i_j]."""
    u = np.unpackbits(c, axis=1).astype(np.int64)
    bits, levels = p[f"{prefix}bits"], p[f"{prefix}levels"]
    offsets = np.concatenate([[0], np.cumsum(2 ** bits)])
    z = np.empty((len(c), len(bits)), np.float32)
    pos = 0
    for j, b in enumerate(bits.tolist()):
        i = u[:, pos : pos + b] @ (1 << np.arange(b - 1, -1, -1))
        z[:, j] = levels[offsets[j] + i]
        pos += b
    return z @ p[f"{prefix}components"] + p[f"{prefix}mean"]


def _decode_by_hand(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """(decoded (H, W, D) NaN at nodata, valid) with zarr + numpy only, from the documented arrays."""
    import zarr

    g = zarr.open_group(str(path), mode="r")
    stages = [e["token"] for e in g.attrs["eocompress:codec"]["stages"]]
    codes = np.moveaxis(np.asarray(g["codes"][:]), 0, -1)
    valid = np.asarray(g["valid"][:])
    p = {name: np.asarray(a[...]) for name, a in g["codec"].arrays()}
    c, q = codes[valid], stages[-1]
    if q.startswith("tcrq"):
        h = int(q[4:]) // 2
        ci = c.astype(np.int64)  # codes index the codebooks: integer arithmetic beyond uint8
        r = p[f"{q}_rq.mean"] + sum(p[f"{q}_rq.codebooks"][m * 256 + ci[:, h + m]] for m in range(c.shape[1] - h))
        z = _tc_by_hand(c[:, :h], p, f"{q}_tc.") + r @ p[f"{q}_axes"]
    elif q.startswith("tc"):
        z = _tc_by_hand(c, p, f"{q}_")
    elif q == "int8":
        z = p["int8_min"] + p["int8_step"] * c.astype(np.float32)
    else:
        raise AssertionError(q)
    for t in reversed(stages[:-1]):
        assert t == "unit", t
        z = z * p["unit_mean_norm"][0]
    out = np.full((*valid.shape, z.shape[1]), np.nan, np.float32)
    out[valid] = z
    return out, valid


@pytest.mark.slow
@pytest.mark.parametrize("spec", ["tc16", "unit,tcrq16", "unit,int8"])
def test_documented_formula_decodes_a_real_product(data_root: Path, tmp_path: Path, spec: str) -> None:
    src = data_root / "embeddings/presto_lulc_slovenia_embeddings.tif"
    out = compress(src, tmp_path / "p.zarr", spec, chunk=64, fit_sample=4000, stac=False)
    by_hand, valid = _decode_by_hand(out)
    ours = open_product(out).to_xarray().values  # (D, H, W), NaN at nodata
    assert valid.sum() > 1000
    np.testing.assert_allclose(np.moveaxis(by_hand, -1, 0), ours, rtol=0, atol=2e-5, equal_nan=True)
