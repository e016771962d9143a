"""Nothing lost, nothing mixed (issue 22): one writer per output, resume fingerprints that cover content and
codec, degenerate inputs that decode right or are refused, and checksums that are not optional.

Concurrency and kill -9 use real processes (``python -m eocompress``) on the real Presto fields; the
property sweep of degenerate values uses windows of the real LULC field with bands replaced.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import rasterio

from eocompress._atomic import lock_path, output_lock
from eocompress.cli import main
from eocompress.embeddings.codecs import Codec
from eocompress.embeddings.codecs.files import read_codes, write_codes
from eocompress.embeddings.products.api import compress, decompress, open_product
from eocompress.embeddings.products.search import search
from eocompress.embeddings.products.stac import stac_path
from eocompress.embeddings.products.verify import verify_product
from eocompress.embeddings.products.zarr_product import partial_path
from eocompress.errors import EOCompressError, FileFormatError, InputError


def _env() -> dict[str, str]:
    src = str(Path(__file__).resolve().parents[3] / "src")
    return {**os.environ, "PYTHONPATH": src + os.pathsep + os.environ.get("PYTHONPATH", "")}


def _eocompress(*args: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "eocompress", "-q", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=_env(),
    )


def cli(args: list[str], capsys: pytest.CaptureFixture) -> tuple[int, str]:
    """Run the CLI in-process; (exit code, stderr)."""
    try:
        main(["-q", *args])
        code = 0
    except SystemExit as exc:
        code = int(exc.code or 0)
    return code, capsys.readouterr().err


def _one_line(err: str) -> str:
    lines = [ln for ln in err.strip().splitlines() if ln.strip()]
    assert len(lines) == 1, err
    assert "Traceback" not in err
    return lines[0]


def _write_tif(path: Path, data: np.ndarray, like: Path, window: tuple[int, int, int, int] | None = None) -> Path:
    """A float32 GeoTIFF holding ``data`` (bands, rows, cols), georeferenced like (a window of) ``like``."""
    with rasterio.open(like) as s:
        profile = s.profile
        transform = s.window_transform(rasterio.windows.Window(*window)) if window else s.transform
    profile.update(
        count=data.shape[0], height=data.shape[1], width=data.shape[2], transform=transform, dtype="float32"
    )
    profile.pop("nodata", None)
    with rasterio.open(path, "w", **profile) as d:
        d.write(data.astype(np.float32))
    return path


def _write_zarr(path: Path, data: np.ndarray, like: Path) -> Path:
    """A Zarr v3 embedding field (band, y, x), uncompressed, with the geo-embeddings attributes of ``like``."""
    import zarr

    with rasterio.open(like) as s:
        wkt, t = s.crs.to_wkt(), s.transform
    g = zarr.open_group(str(path), mode="w", zarr_format=3)
    g.attrs.update({"proj:wkt2": wkt, "spatial:transform": [t.a, t.b, t.c, t.d, t.e, t.f]})
    a = g.create_array(
        "embeddings",
        shape=data.shape,
        chunks=(data.shape[0], 64, 64),
        dtype="float32",
        dimension_names=("band", "y", "x"),
        compressors=None,  # raw chunks: a rewrite with other values keeps every file's size
    )
    a[...] = data.astype(np.float32)
    return path


def _decoded(product: Path) -> np.ndarray:
    """The decoded float32 field (rows, cols, D) of a Zarr/COG product, or the rows (N, D) of a Parquet one."""
    prod = open_product(product)
    if getattr(prod, "is_chips", False):
        return np.concatenate([prod.codec.decode(prod.read_chunk(i)[0]) for i in prod.windows()])
    out = np.zeros((prod.info.height, prod.info.width, prod.info.dim), dtype=np.float32)
    for w in prod.windows():
        values, _ = prod.decode_chunk(w)
        out[w.r0 : w.r1, w.c0 : w.c1] = values
    return out


@pytest.fixture(scope="module")
def lulc_data(lulc_tif: Path) -> np.ndarray:
    with rasterio.open(lulc_tif) as s:
        return s.read().astype(np.float32)


# --------------------------------------------------------------------------- one writer per output
def test_two_writers_started_at_once_one_wins(majortom_tif: Path, tmp_path: Path) -> None:
    """Two real `compress A|B -o same.zarr` at once: exactly one succeeds, the other names the winner's pid."""
    with rasterio.open(majortom_tif) as s:
        data = s.read().astype(np.float32)
    mirror = -data[:, ::-1, :]
    a = _write_tif(tmp_path / "a.tif", data, majortom_tif)
    b = _write_tif(tmp_path / "b.tif", mirror, majortom_tif)
    out = tmp_path / "same.zarr"
    procs = {n: _eocompress("compress", str(src), "-o", str(out), "--chunk", "16") for n, src in (("a", a), ("b", b))}
    results = {name: (p.wait(timeout=300), p.communicate()[1]) for name, p in procs.items()}
    winners = [n for n, (rc, _) in results.items() if rc == 0]
    assert len(winners) == 1, results
    win = winners[0]
    lose = "b" if win == "a" else "a"
    rc, err = results[lose]
    line = _one_line(err)
    assert rc != 0
    assert f"being written by another eocompress process (pid {procs[win].pid})" in line, line
    assert verify_product(out)["ok"]
    # the product is the winner's input, every pixel: identical to a lone run on it, and near its values
    alone = compress(a if win == "a" else b, tmp_path / "alone.zarr", "int8", chunk=16)
    got = _decoded(out)
    np.testing.assert_array_equal(got, _decoded(alone))
    truth = np.moveaxis(data if win == "a" else mirror, 0, -1)
    other = np.moveaxis(mirror if win == "a" else data, 0, -1)
    assert np.abs(got - truth).mean() < 0.01 < np.abs(got - other).mean()
    assert not lock_path(out).exists()  # the lock file goes with the run


def test_held_lock_refuses_compress_decompress_encode(
    lulc_tif: Path, lulc_data: np.ndarray, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    """While another writer holds OUT, compress, decompress and encode to OUT are refused with its pid."""
    src = _write_tif(tmp_path / "f.tif", lulc_data[:16, :24, :20], lulc_tif, (0, 0, 20, 24))
    prod = compress(src, tmp_path / "p.zarr", "int8", chunk=16)
    np.save(tmp_path / "v.npy", np.moveaxis(lulc_data[:16, :10, :10], 0, -1).reshape(-1, 16))
    for args, out in (
        (["compress", str(src), "-o", str(tmp_path / "q.zarr")], tmp_path / "q.zarr"),
        (["decompress", str(prod), "-o", str(tmp_path / "d.tif")], tmp_path / "d.tif"),
        (["encode", str(tmp_path / "v.npy"), "--codec", "int8", "-o", str(tmp_path / "c.npz")], tmp_path / "c.npz"),
    ):
        with output_lock(out):
            rc, err = cli(args, capsys)
        assert rc != 0
        assert f"being written by another eocompress process (pid {os.getpid()})" in _one_line(err)
        assert not out.exists()
    rc, _ = cli(["compress", str(src), "-o", str(tmp_path / "q.zarr")], capsys)  # free again
    assert rc == 0


# --------------------------------------------------------------------------- resume that cannot mix
def _kill_part_way(args: list[str], out: Path, min_chunks: int = 10) -> None:
    """Start a real `compress`, SIGKILL it once its unfinished store holds ``min_chunks`` chunks."""
    proc = _eocompress(*args)
    shas = partial_path(out) / "store.zarr" / "chunk_sha256" / "c"
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline:
        n = sum(1 for p in shas.rglob("*") if p.is_file()) if shas.exists() else 0
        if n >= min_chunks or proc.poll() is not None:
            break
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL, "compress finished before it could be killed"
    assert not out.exists() and partial_path(out).exists()


def test_resume_refuses_rewritten_zarr_input_and_other_fit(
    majortom_tif: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    """kill -9 part-way, then IN rewritten with other values of the same size, or another --fit: refused."""
    with rasterio.open(majortom_tif) as s:
        data = s.read().astype(np.float32)
    src = _write_zarr(tmp_path / "IN.zarr", data, majortom_tif)
    X = np.moveaxis(data, 0, -1).reshape(-1, data.shape[0])
    fit_a, fit_b = tmp_path / "a.json", tmp_path / "b.json"
    Codec.from_spec("int8").fit(X[::7]).save(fit_a)
    Codec.from_spec("int8").fit(X[::7] * 2.0).save(fit_b)
    out = tmp_path / "mix.zarr"
    _kill_part_way(["compress", str(src), "-o", str(out), "--chunk", "16", "--fit", str(fit_a)], out)
    # another --fit (same spec) on the same input: the stored codec differs -> refused
    rc, err = cli(["compress", str(src), "-o", str(out), "--chunk", "16", "--resume", "--fit", str(fit_b)], capsys)
    line = _one_line(err)
    assert rc != 0 and "another codec" in line and "drop --resume to start fresh" in line, line
    # the input rewritten with other values of the same sizes (chunk files keep their sizes) -> refused
    sizes = sorted(p.stat().st_size for p in src.rglob("*") if p.is_file())
    _write_zarr(src, data[:, ::-1, :].copy(), majortom_tif)
    assert sorted(p.stat().st_size for p in src.rglob("*") if p.is_file()) == sizes
    rc, err = cli(["compress", str(src), "-o", str(out), "--chunk", "16", "--resume", "--fit", str(fit_a)], capsys)
    line = _one_line(err)
    assert rc != 0 and "another input" in line and "drop --resume to start fresh" in line, line
    assert not out.exists()
    # the original input back, same --fit: resumes and equals a fresh run
    _write_zarr(src, data, majortom_tif)
    rc, err = cli(["compress", str(src), "-o", str(out), "--chunk", "16", "--resume", "--fit", str(fit_a)], capsys)
    assert rc == 0, err
    fresh = compress(src, tmp_path / "fresh.zarr", "int8", chunk=16, fit=fit_a)
    assert verify_product(out)["ok"]
    np.testing.assert_array_equal(_decoded(out), _decoded(fresh))


def test_resume_fit_json_is_not_ignored(lulc_tif: Path, lulc_data: np.ndarray, tmp_path: Path) -> None:
    """`--resume --fit other.json` on a partial started without --fit is refused (was: --fit silently ignored)."""
    from eocompress.embeddings.products.fields import open_field
    from eocompress.embeddings.products.zarr_product import compress_to_zarr

    src = _write_tif(tmp_path / "g.tif", lulc_data, lulc_tif)
    X = np.moveaxis(lulc_data, 0, -1).reshape(-1, lulc_data.shape[0])
    other = tmp_path / "other.json"
    Codec.from_spec("int8").fit(X[::3] * 3.0).save(other)

    class _Crash(Exception):
        pass

    fld = open_field(src)
    calls = {"n": 0}
    read = fld.read

    def crashing(window):
        calls["n"] += 1
        if calls["n"] > 20:
            raise _Crash
        return read(window)

    fld.read = crashing
    with pytest.raises(_Crash):
        compress_to_zarr(fld, tmp_path / "r.zarr", Codec.from_spec("int8").fit(X[::5]), chunk=8)
    with pytest.raises(EOCompressError, match="another codec"):
        compress(src, tmp_path / "r.zarr", "int8", chunk=8, resume=True, fit=other)


# --------------------------------------------------------------------------- degenerate inputs
CASES = {
    "constant bands": lambda d: _set_bands(d, {1: 0.5, 2: 0.0, 3: -3.25, 4: 1e12, 5: 7e14}),
    "all constant": lambda d: np.full_like(d, 0.5),
    "all zero": lambda d: np.zeros_like(d),
    "large (1e14)": lambda d: d * 1e14,
    "near float32 limit (1e36)": lambda d: d * 1e36,
}


def _set_bands(d: np.ndarray, values: dict[int, float]) -> np.ndarray:
    d = d.copy()
    for band, v in values.items():
        d[band] = v
    return d


def _chips(path: Path, data: np.ndarray) -> Path:
    """A chip table (one ``embedding`` list column) of the field's pixels."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    X = np.moveaxis(data, 0, -1).reshape(-1, data.shape[0]).astype(np.float32)
    emb = pa.FixedSizeListArray.from_arrays(pa.array(X.reshape(-1)), X.shape[1])
    pq.write_table(pa.table({"embedding": emb, "id": np.arange(len(X))}), path, row_group_size=100)
    return path


@pytest.mark.parametrize("case", list(CASES))
@pytest.mark.parametrize(
    "kind,spec",
    [
        ("zarr", "int8"),
        ("zarr", "int4"),
        ("zarr", "int2"),
        ("zarr", "binary"),
        ("zarr", "select16,binary"),
        ("cog", "int8"),
        ("parquet", "int8"),
        ("parquet", "int2"),
        ("parquet", "binary"),
    ],
)
def test_degenerate_inputs_decode_right_or_are_refused(
    case: str, kind: str, spec: str, lulc_tif: Path, lulc_data: np.ndarray, tmp_path: Path
) -> None:
    """Every product kind and codec family: finite, in-range decodes (constants exact), or one clear refusal."""
    data = CASES[case](lulc_data[:16, :24, :20]).astype(np.float32)
    if kind == "parquet":
        src = _chips(tmp_path / "in.parquet", data)
    else:
        src = _write_tif(tmp_path / "in.tif", data, lulc_tif, (0, 0, 20, 24))
    out = tmp_path / f"p.{ {'zarr': 'zarr', 'cog': 'tif', 'parquet': 'parquet'}[kind] }"
    truth = np.moveaxis(data, 0, -1).reshape(-1, data.shape[0])
    if np.abs(truth).max() > 1e15:
        with pytest.raises(InputError, match="exceed") as info:
            compress(src, out, spec, chunk=16)
        assert "\n" not in str(info.value)
        assert not out.exists() and not stac_path(out).exists()
        return
    compress(src, out, spec, chunk=16)
    assert verify_product(out)["ok"]
    got = _decoded(out).reshape(-1, truth.shape[1])
    assert np.isfinite(got).all()
    lo, hi = truth.min(axis=0), truth.max(axis=0)
    const = lo == hi
    tol = 1e-6 * np.maximum(np.abs(lo), np.abs(hi)) + 1e-6
    # constant bands decode to their value, every band stays within its range
    np.testing.assert_allclose(got[:, const], np.broadcast_to(lo[const], got[:, const].shape), rtol=1e-6, atol=1e-6)
    assert ((got >= lo - tol) & (got <= hi + tol)).all()
    if spec in ("int8", "int4", "int2"):  # and within half a step (COG: a 255/254 wider step)
        levels = {"int8": 256, "int4": 16, "int2": 4}[spec]
        step = (hi - lo) / (levels - 1) * (255 / 254 if kind == "cog" else 1.0)
        assert (np.abs(got - truth) <= 0.5 * step * 1.001 + tol).all()


@pytest.mark.parametrize("spec", ["binary", "int4", "int2", "select16,binary"])
def test_encode_values_near_float32_limit(spec: str, lulc: dict, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    """`encode` of real vectors scaled to ~1e36: a decode that would be non-finite is refused up front."""
    X = lulc["X"][:2000].astype(np.float32) * np.float32(1e36)
    np.save(tmp_path / "big.npy", X)
    rc, err = cli(["encode", str(tmp_path / "big.npy"), "--codec", spec, "-o", str(tmp_path / "c.npz")], capsys)
    if rc == 0:  # accepted: every decoded value must be finite
        codec, codes, _ = read_codes(tmp_path / "c.npz")
        assert np.isfinite(codec.decode(codes)).all()
    else:
        assert "float32" in _one_line(err) and not (tmp_path / "c.npz").exists()


# --------------------------------------------------------------------------- checksums are not optional
def test_codes_without_checksum_refused_unless_no_verify(
    lulc: dict, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    X = lulc["X"][:500].astype(np.float32)
    codec = Codec.from_spec("int8").fit(X)
    path = write_codes(tmp_path / "c.npz", codec.encode(X), codec, {})
    with np.load(path) as npz:
        arrays = {k: npz[k] for k in npz.files if k != "sha256"}
    arrays["codes"] = arrays["codes"].copy()
    arrays["codes"][0, :4] ^= 0xFF  # edited and its checksum removed
    np.savez(tmp_path / "edited.npz", **arrays)
    with pytest.raises(FileFormatError, match="no 'sha256' entry"):
        read_codes(tmp_path / "edited.npz")
    rc, err = cli(["decode", str(tmp_path / "edited.npz"), "-o", str(tmp_path / "x.npy")], capsys)
    assert rc != 0 and "--no-verify" in _one_line(err) and not (tmp_path / "x.npy").exists()
    rc, err = cli(["decode", str(tmp_path / "edited.npz"), "-o", str(tmp_path / "x.npy"), "--no-verify"], capsys)
    assert rc == 0, err
    assert np.load(tmp_path / "x.npy").shape == X.shape


def test_encode_refuses_reserved_array_names(lulc: dict, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    X = lulc["X"][:200].astype(np.float32)
    for name in ("codes", "codec", "sha256"):
        np.savez(tmp_path / "in.npz", X=X, **{name: np.arange(3)})
        rc, err = cli(["encode", str(tmp_path / "in.npz"), "--codec", "int8", "-o", str(tmp_path / "c.npz")], capsys)
        line = _one_line(err)
        assert rc != 0 and repr(name) in line and "rename" in line, line
        assert not (tmp_path / "c.npz").exists()


def test_decompress_no_verify_salvages_a_damaged_product(
    lulc_tif: Path, lulc_data: np.ndarray, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    src = _write_tif(tmp_path / "f.tif", lulc_data[:16, :24, :20], lulc_tif, (0, 0, 20, 24))
    prod = compress(src, tmp_path / "p.zarr", "int8", chunk=16)
    chunk = next(p for p in (prod / "codes" / "c").rglob("*") if p.is_file())
    raw = bytearray(chunk.read_bytes())
    raw[-1] ^= 0x01  # the crc32c trailer: the chunk no longer matches, refused by default
    chunk.write_bytes(bytes(raw))
    with pytest.raises(EOCompressError):
        decompress(prod, tmp_path / "d.tif")
    assert not (tmp_path / "d.tif").exists()
    # a chunk whose sha256 entry was zeroed: refused by default, decoded with --no-verify
    prod2 = compress(src, tmp_path / "p2.zarr", "int8", chunk=16)
    import zarr

    g = zarr.open_group(str(prod2), mode="r+", use_consolidated=False)
    g["chunk_sha256"][0, 0] = np.zeros(32, np.uint8)
    rc, err = cli(["decompress", str(prod2), "-o", str(tmp_path / "d2.tif")], capsys)
    assert rc != 0 and not (tmp_path / "d2.tif").exists()
    rc, err = cli(["decompress", str(prod2), "-o", str(tmp_path / "d2.tif"), "--no-verify", "--workers", "1"], capsys)
    assert rc == 0, err
    with rasterio.open(tmp_path / "d2.tif") as d:
        got = d.read()
    assert np.abs(got - lulc_data[:16, :24, :20]).max() < 0.1


def test_search_refuses_another_products_index_stale_index_and_two_queries(
    lulc_tif: Path, lulc_data: np.ndarray, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    from eocompress.embeddings.products.index import build_index

    a = _write_tif(tmp_path / "a.tif", lulc_data, lulc_tif)
    b = _write_tif(tmp_path / "b.tif", lulc_data[:, ::-1, :].copy(), lulc_tif)
    # one codec for both: same codec, grid and pixel count - only the product's digest tells them apart
    fit = tmp_path / "codec.json"
    Codec.from_spec("int8").fit(np.moveaxis(lulc_data, 0, -1).reshape(-1, lulc_data.shape[0])).save(fit)
    pa = compress(a, tmp_path / "a.zarr", "int8", fit=fit, chunk=64)
    pb = compress(b, tmp_path / "b.zarr", "int8", fit=fit, chunk=64)
    build_index(pb, tmp_path / "other.index", nlist=16, nprobe=4)
    build_index(pa, nlist=16, nprobe=4)
    assert search(pa, pixel=(1, 1), k=3, index=True)  # its own index answers
    with pytest.raises(EOCompressError, match="built for another product"):
        search(pa, pixel=(1, 1), k=3, index=tmp_path / "other.index")
    rc, err = cli(["search", str(pa), "--pixel", "1", "1", "--index-path", str(tmp_path / "other.index")], capsys)
    assert rc != 0 and "built for another product" in _one_line(err)
    # the product replaced (same codec, grid and count, other values): its old index is stale
    compress(b, pa, "int8", fit=fit, chunk=64, overwrite=True)
    rc, err = cli(["search", str(pa), "--pixel", "1", "1", "--index"], capsys)
    line = _one_line(err)
    assert rc != 0 and "replaced or rewritten" in line and "--overwrite" in line, line
    # two queries at once
    np.save(tmp_path / "q.npy", lulc_data[:, 0, 0])
    rc, err = cli(["search", str(pa), "--vector", str(tmp_path / "q.npy"), "--pixel", "1", "1"], capsys)
    assert rc != 0 and "not both" in _one_line(err)
    with pytest.raises(InputError, match="not both"):
        search(pa, pixel=(1, 1), vector=lulc_data[:, 0, 0])


# --------------------------------------------------------------------------- outputs that would damage or replace
def test_output_inside_a_product_is_refused(
    lulc_tif: Path, lulc_data: np.ndarray, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    src = _write_tif(tmp_path / "f.tif", lulc_data[:16, :24, :20], lulc_tif, (0, 0, 20, 24))
    prod = compress(src, tmp_path / "P.zarr", "int8", chunk=16)
    for inner in (prod / "inner.zarr", prod / "codes" / "x.tif"):
        rc, err = cli(["compress", str(src), "-o", str(inner)], capsys)
        line = _one_line(err)
        assert rc != 0 and "inside the eocompress product" in line, line
        assert not inner.exists()
    assert verify_product(prod)["ok"]


def test_existing_stac_item_not_replaced_without_overwrite(
    lulc_tif: Path, lulc_data: np.ndarray, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    src = _write_tif(tmp_path / "f.tif", lulc_data[:16, :24, :20], lulc_tif, (0, 0, 20, 24))
    out = tmp_path / "q.zarr"
    item = stac_path(out)
    item.write_text(json.dumps({"mine": True}))
    rc, err = cli(["compress", str(src), "-o", str(out)], capsys)
    line = _one_line(err)
    assert rc != 0 and item.name in line and "--overwrite" in line, line
    assert json.loads(item.read_text()) == {"mine": True} and not out.exists()
    rc, err = cli(["compress", str(src), "-o", str(out), "--overwrite"], capsys)
    assert rc == 0, err
    assert json.loads(item.read_text()).get("type") == "Feature"


def test_products_without_their_checksum_are_refused(
    lulc_tif: Path, lulc_data: np.ndarray, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    """A Zarr, COG or Parquet product whose metadata digest was removed is refused on read and by verify."""
    import pyarrow.parquet as pq
    import zarr

    from eocompress.embeddings.products.cog_product import DIGEST_TAG
    from eocompress.embeddings.products.zarr_product import DIGEST_KEY

    src = _write_tif(tmp_path / "f.tif", lulc_data[:16, :24, :20], lulc_tif, (0, 0, 20, 24))
    z = compress(src, tmp_path / "p.zarr", "int8", chunk=16, stac=False)
    g = zarr.open_group(str(z), mode="r+", use_consolidated=False)
    del g.attrs[DIGEST_KEY]
    c = compress(src, tmp_path / "p.tif", "int8", chunk=16, stac=False)
    with rasterio.open(c, "r+", IGNORE_COG_LAYOUT_BREAK="YES") as d:
        d.update_tags(**{DIGEST_TAG: ""})
    p = compress(_chips(tmp_path / "c.parquet", lulc_data[:16, :24, :20]), tmp_path / "p.parquet", "int8", stac=False)
    table = pq.read_table(p)
    meta = {k: v for k, v in table.schema.metadata.items() if k.decode() != "eocompress:metadata_sha256"}
    pq.write_table(table.replace_schema_metadata(meta), p, row_group_size=100)
    for prod in (z, c, p):
        with pytest.raises(FileFormatError):
            open_product(prod)
        assert not verify_product(prod)["ok"]
        rc, err = cli(["decompress", str(prod), "-o", str(tmp_path / f"d_{prod.suffix[1:]}{prod.suffix}")], capsys)
        assert rc != 0 and "Traceback" not in err


@pytest.mark.parametrize("seed", range(25))
def test_cog_int8_mapping_property(seed: int) -> None:
    """Random per-band ranges (zero, tiny, huge, constant at any magnitude): the COG mapping never stores
    nodata, and every value of the fitted range decodes within half a (255/254) step."""
    from eocompress.embeddings.products.cog_product import codes_to_int8, int8_to_codes, off_level_zero

    rng = np.random.default_rng(seed)
    D = 12
    centre = rng.choice([0.0, 0.5, -3.25, 1e-30, 1e6, -1e12, 7e14], size=D) * rng.uniform(0.5, 1.5, D)
    width = rng.choice([0.0, 1e-6, 1.0, 1e3, 1e10], size=D)
    X = (centre + width * rng.uniform(-1, 1, (400, D))).astype(np.float32)
    codec = off_level_zero(Codec.from_spec("int8").fit(X))
    stored = codes_to_int8(codec.encode(X), "linear")
    assert (stored != -128).all()
    got = codec.decode(int8_to_codes(stored, "linear"))
    assert np.isfinite(got).all()
    step = codec.quantizer.step_.astype(np.float64)
    lo, hi = X.min(axis=0), X.max(axis=0)
    # float32 rounding at the decode's magnitude: max(|value|, step) (a constant band is fitted with step 1)
    tol = 4 * np.spacing(np.maximum(np.maximum(np.abs(lo), np.abs(hi)), step).astype(np.float32)).astype(np.float64)
    err = np.abs(got.astype(np.float64) - X)
    const = lo == hi
    assert (err[:, const] <= tol[const]).all()
    assert (err[:, ~const] <= 0.5 * step[~const] * 1.001 + tol[~const]).all()


def test_parquet_stac_item_not_replaced_without_overwrite(lulc_data: np.ndarray, tmp_path: Path) -> None:
    src = _chips(tmp_path / "c.parquet", lulc_data[:16, :24, :20])
    out = tmp_path / "q.parquet"
    stac_path(out).write_text("{}")
    with pytest.raises(InputError, match="already exists; pass --overwrite"):
        compress(src, out, "int8")
    assert stac_path(out).read_text() == "{}" and not out.exists()
    compress(src, out, "int8", overwrite=True)
    assert json.loads(stac_path(out).read_text()).get("type") == "Feature"


def test_resume_refuses_another_rescore_codec(lulc_tif: Path, lulc_data: np.ndarray, tmp_path: Path) -> None:
    """A partial started with --rescore-codec int8, resumed without it or with another: refused (was: chunks
    with and without rescore codes mixed, and the product failed verify)."""
    from eocompress.embeddings.products import zarr_product

    src = _write_tif(tmp_path / "g.tif", lulc_data[:, :48, :40].copy(), lulc_tif, (0, 0, 40, 48))
    calls = {"n": 0}
    real = zarr_product._encode_chunk

    def crashing(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] > 6:
            raise OSError(28, "No space left on device")
        return real(*args, **kwargs)

    out = tmp_path / "r.zarr"
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(zarr_product, "_encode_chunk", crashing)
        with pytest.raises(EOCompressError, match="--resume"):
            compress(src, out, "binary", chunk=8, rescore_spec="int8")
    assert partial_path(out).exists()
    with pytest.raises(EOCompressError, match="another --rescore-codec"):
        compress(src, out, "binary", chunk=8, resume=True)
    with pytest.raises(EOCompressError, match="--rescore-codec int8, not int4"):
        compress(src, out, "binary", chunk=8, resume=True, rescore_spec="int4")
    compress(src, out, "binary", chunk=8, resume=True, rescore_spec="int8")
    assert verify_product(out)["ok"]
