"""Scale-out on Dask (bounded memory on a field larger than the worker limit) and the CLI end to end."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import rasterio
from rasterio.windows import Window

from eocompress.embeddings.products.api import compress, open_product
from eocompress.embeddings.products.scale import WorkerMemoryMonitor, dask_client
from eocompress.embeddings.products.verify import verify_product

EOCOMPRESS = str(Path(sys.executable).with_name("eocompress"))


def _tile(src: Path, dst: Path, tiles: tuple[int, int]) -> int:
    """Tile a real field into a bigger band-interleaved GeoTIFF; returns its float32 bytes."""
    with rasterio.open(src) as s:
        block, profile = s.read(), s.profile
    _, h, w = block.shape
    profile.update(
        height=h * tiles[0], width=w * tiles[1], tiled=True, blockxsize=256, blockysize=256, interleave="band"
    )
    with rasterio.open(dst, "w", **profile) as d:
        for i in range(tiles[0]):
            for j in range(tiles[1]):
                d.write(block, window=Window(j * w, i * h, w, h))
    return block.nbytes * tiles[0] * tiles[1]


@pytest.mark.slow
def test_dask_compress_memory_is_bounded_by_the_chunk(data_root: Path, tmp_path: Path) -> None:
    src = tmp_path / "big.tif"
    field_bytes = _tile(data_root / "embeddings/presto_majortom_199U_1099R_256.tif", src, (4, 4))
    limit = 450_000_000
    assert field_bytes > limit  # 537 MB of float32 embeddings vs a 450 MB worker
    with dask_client(workers=1, memory_limit=limit) as client:
        with WorkerMemoryMonitor(client, every=0.1) as mon:
            out = compress(src, tmp_path / "big.zarr", "int8", chunk=256, fit_sample=5000, client=client)
    peak = max(mon.peak.values())
    print(f"field {field_bytes / 1e6:.0f} MB, worker limit {limit / 1e6:.0f} MB, peak worker RSS {peak / 1e6:.0f} MB")
    assert peak < limit
    assert len(mon.peak) == 1  # one worker address all along: it was never killed and restarted
    assert verify_product(out)["ok"]
    prod = open_product(out)
    assert prod.n_valid == 1024 * 1024
    # a tile far from the origin decodes to the same vectors as the first (the field repeats)
    w = next(w for w in prod.windows() if (w.i, w.j) == (3, 3))
    np.testing.assert_array_equal(prod.read_chunk(w)[0], prod.read_chunk(prod.windows()[0])[0])


def _cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([EOCOMPRESS, *args], capture_output=True, text=True, timeout=300)


@pytest.mark.slow
def test_cli_compress_info_verify_search_decompress(data_root: Path, tmp_path: Path) -> None:
    src = data_root / "embeddings/presto_lulc_slovenia_embeddings.tif"
    out = tmp_path / "lulc.zarr"
    r = _cli(
        "compress",
        str(src),
        str(out),
        "--codec",
        "binary",
        "--rescore-codec",
        "int8",
        "--chunk",
        "64",
        "--workers",
        "2",
        "--fit-sample",
        "4000",
    )
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "lulc.zarr.stac.json").exists()
    r = _cli("info", str(out), "--json")
    assert r.returncode == 0, r.stderr
    info = json.loads(r.stdout)
    assert info["codec"] == "binary" and info["bytes_per_vector"] == 16 and info["crs"] == "EPSG:32633"
    assert info["checksums"] == "ok (metadata and 4 chunks)" and info["rescore_codec"] == "int8"
    r = _cli("search", str(out), "--pixel", "50", "60", "--k", "5", "--rescore", "int8", "--json")
    assert r.returncode == 0, r.stderr
    hits = json.loads(r.stdout)
    assert len(hits) == 5 and (hits[0]["row"], hits[0]["col"]) == (50, 60)
    assert all(h["lat"] is not None for h in hits)
    r = _cli("decompress", str(out), "-o", str(tmp_path / "back.tif"), "--workers", "1")
    assert r.returncode == 0, r.stderr
    with rasterio.open(tmp_path / "back.tif") as b, rasterio.open(src) as a:
        assert (b.crs, b.transform, b.shape, b.count) == (a.crs, a.transform, a.shape, a.count)
    # errors: one line, exit code 1
    r = _cli("compress", str(src), str(out), "--codec", "int8")
    assert r.returncode == 1 and "--overwrite" in r.stderr and "Traceback" not in r.stderr
    (out / "codes" / "c" / "0" / "1" / "1").write_bytes(b"garbage")
    r = _cli("verify", str(out))
    assert r.returncode == 1 and "chunk (1, 1)" in r.stderr
    r = _cli("verify", str(out), "--json")
    assert r.returncode == 1 and json.loads(r.stdout)["ok"] is False
    r = _cli("search", str(tmp_path / "nope.zarr"), "--pixel", "0", "0")
    assert r.returncode == 1 and "does not exist" in r.stderr
