"""What the CLI prints, run as a user runs it (subprocesses): JSON that parses, no wrapping when piped,
one line per bad argument or damaged product, no traceback, Dask only when it pays."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from eocompress.embeddings.products.scale import SMALL_WORK_BYTES, plan_workers

EOCOMPRESS = str(Path(sys.executable).with_name("eocompress"))
FIELD = "embeddings/presto_lulc_slovenia_embeddings.tif"  # 101 x 100 x 128 float32, 5.2 MB


def _cli(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    # stdout and stderr are pipes here: exactly the "not a terminal" case
    return subprocess.run([EOCOMPRESS, *args], capture_output=True, text=True, timeout=600, cwd=cwd)


def _one_error_line(r: subprocess.CompletedProcess) -> str:
    lines = r.stderr.strip().splitlines()
    assert r.returncode != 0, r.stderr
    assert "Traceback" not in r.stderr and "Compute Failed" not in r.stderr, r.stderr
    assert len(lines) == 1, r.stderr
    assert lines[0].startswith("error: "), r.stderr
    return lines[0]


def _flip_byte(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))


# ---------------------------------------------------------------- Dask only when it pays


def test_plan_workers_runs_small_jobs_in_process_and_caps_requests() -> None:
    assert plan_workers(None, work_bytes=5_000_000, n_tasks=16, cpus=8) == (0, None)
    assert plan_workers(None, work_bytes=SMALL_WORK_BYTES, n_tasks=16, cpus=8) == (8, None)
    assert plan_workers(None, work_bytes=SMALL_WORK_BYTES, n_tasks=3, cpus=8) == (3, None)
    assert plan_workers(0, work_bytes=10 * SMALL_WORK_BYTES, n_tasks=16, cpus=8) == (0, None)
    assert plan_workers(2, work_bytes=1, n_tasks=16, cpus=8) == (2, None)  # asked for: a real cluster
    n, note = plan_workers(64, work_bytes=1, n_tasks=16, cpus=8)
    assert n == 8 and "--workers 64 lowered to 8" in note
    n, note = plan_workers(64, work_bytes=1, n_tasks=4, cpus=8)
    assert n == 4 and "4 chunks" in note
    assert plan_workers(4, work_bytes=1, n_tasks=None, cpus=2)[0] == 2


@pytest.mark.slow
def test_small_compress_and_decompress_run_without_a_cluster(data_root: Path, tmp_path: Path) -> None:
    r = _cli("compress", str(data_root / FIELD), "-o", str(tmp_path / "p.zarr"), "--chunk", "32", "--json")
    assert r.returncode == 0, r.stderr
    report = json.loads(r.stdout)
    assert report["product"].endswith("p.zarr") and report["codec"] == "int8"
    assert report["stac_item"].endswith("p.zarr.stac.json")
    # no Dask scheduler or worker was started: distributed would have left its working folder
    assert not list(tmp_path.glob("dask-*")) and "distributed" not in r.stderr
    r = _cli("decompress", str(tmp_path / "p.zarr"), "-o", str(tmp_path / "back.tif"))
    assert r.returncode == 0 and r.stderr == "", r.stderr


# ---------------------------------------------------------------- damaged products: one line, no traceback


@pytest.fixture(scope="module")
def product(data_root: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("prod") / "p.zarr"
    r = _cli("compress", str(data_root / FIELD), "-o", str(out), "--chunk", "32")
    assert r.returncode == 0, r.stderr
    return out


@pytest.mark.slow
@pytest.mark.parametrize("workers", [None, "2"])
def test_decompress_of_a_damaged_product_prints_one_line(product: Path, tmp_path: Path, workers: str | None) -> None:
    bad = tmp_path / "bad.zarr"
    shutil.copytree(product, bad)
    shutil.copy(product.with_name("p.zarr.stac.json"), tmp_path / "bad.zarr.stac.json")
    _flip_byte(bad / "codes" / "c" / "0" / "1" / "1")
    args = ["decompress", str(bad), "-o", str(tmp_path / "out.tif")]
    if workers:  # a real LocalCluster: the worker's ChecksumError must not print its traceback either
        args += ["--workers", workers]
    r = _cli(*args)
    line = _one_error_line(r) if not workers else r.stderr.strip().splitlines()[-1]
    assert "chunk (1, 1)" in line and "corrupt" in line
    assert "Traceback" not in r.stderr and "Compute Failed" not in r.stderr and "CommClosedError" not in r.stderr
    assert not (tmp_path / "out.tif").exists()


@pytest.mark.slow
def test_quiet_verify_still_names_the_fault(product: Path, tmp_path: Path) -> None:
    bad = tmp_path / "bad.zarr"
    shutil.copytree(product, bad)
    (bad / "codes" / "c" / "0" / "1" / "1").write_bytes(b"garbage")
    line = _one_error_line(_cli("-q", "verify", str(bad)))
    assert "chunk (1, 1)" in line


# ---------------------------------------------------------------- bad arguments: one line, before any output


@pytest.mark.slow
@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["compress", "{field}", "-o", "{tmp}/o.zarr", "--datetime", "2020-13-45"], "--datetime"),
        (["compress", "{field}", "-o", "{tmp}/o.zarr", "--seed", "-1"], "--seed"),
        (["compress", "{field}", "-o", "{tmp}/o.zarr", "--scheduler", "banana"], "--scheduler"),
        (["compress", "{field}", "-o", "{tmp}/o.zarr", "--workers", "-2"], "--workers"),
        (["compress", "{field}", "-o", "{tmp}/o.zarr", "--chunk", "abc"], "--chunk"),
        (["compress", "{field}", "-o", "{tmp}/o.zarr", "--codec", "int9"], "did you mean 'int8', 'int4', 'int2'"),
        (["encode", "{vectors}", "-o", "{tmp}/o.npz", "--codec", "pca16,int8", "--seed", "-1"], "--seed"),
        (["encode", "{vectors}", "-o", "{tmp}/o.npz", "--codec", "banana"], "unknown codec token"),
        (["sweep", "{vectors}", "-o", "{tmp}/o", "--seed", "-5"], "--seed"),
        (["sweep", "{vectors}", "-o", "{tmp}/o", "--split", "sideways"], "--split"),
        (["sweep", "{vectors}", "-o", "{tmp}/o", "--spec", "banana"], "unknown codec token"),
        (["recommend", "{vectors}", "--max-bytes", "16", "--results", "{binary}"], "not a sweep's results.csv"),
        (["imagery", "encode", "{field}", "-o", "{tmp}/o.eotok", "--quality", "abc"], "--quality"),
        (["info", "--bogus", "{field}"], "No such option"),
    ],
)
def test_bad_argument_is_one_line_and_writes_nothing(
    data_root: Path, tmp_path: Path, args: list[str], needle: str
) -> None:
    binary = tmp_path / "binary.bin"
    binary.write_bytes(bytes(range(256)) * 4)
    subs = {
        "{field}": str(data_root / FIELD),
        "{vectors}": str(data_root / "embeddings/presto_algae_blooms.npz"),
        "{binary}": str(binary),
    }
    argv = [subs.get(a, a.replace("{tmp}", str(tmp_path))) for a in args]
    line = _one_error_line(_cli(*argv))
    assert needle in line, line
    assert "unexpected failure" not in line
    assert sorted(p.name for p in tmp_path.iterdir()) == ["binary.bin"]  # nothing written


@pytest.mark.slow
def test_existing_output_message_names_the_cli_flag(product: Path, data_root: Path) -> None:
    line = _one_error_line(_cli("compress", str(data_root / FIELD), "-o", str(product)))
    assert "--overwrite" in line and "overwrite=True" not in line
    npz = str(data_root / "embeddings/presto_algae_blooms.npz")
    line = _one_error_line(_cli("search", str(product), "--vector", npz))
    assert ".npz archive" in line


# ---------------------------------------------------------------- --json and piped output


@pytest.mark.slow
def test_json_on_reporting_commands(data_root: Path, tmp_path: Path, product: Path) -> None:
    vectors = str(data_root / "embeddings/presto_algae_blooms.npz")
    r = _cli("encode", vectors, "-o", str(tmp_path / "c.npz"), "--codec", "pca16,int8", "--json")
    assert r.returncode == 0, r.stderr
    enc = json.loads(r.stdout)
    assert enc["bytes_per_vector"] == 16 and enc["n"] == 1122 and enc["ratio_vs_float32"] == 32.0
    r = _cli("decode", str(tmp_path / "c.npz"), "-o", str(tmp_path / "d.npz"), "--json")
    assert r.returncode == 0 and json.loads(r.stdout)["n"] == 1122, r.stderr
    r = _cli("decompress", str(product), "-o", str(tmp_path / "d.tif"), "--json")
    assert r.returncode == 0 and json.loads(r.stdout)["bytes"] == (tmp_path / "d.tif").stat().st_size, r.stderr
    for args in (["info", str(product), "--json"], ["codecs", "--json"], ["storage", "--dims", "128", "--json"]):
        r = _cli(*args)
        assert r.returncode == 0, r.stderr
        json.loads(r.stdout)


@pytest.mark.slow
def test_sweep_quick_json(data_root: Path, tmp_path: Path) -> None:
    vectors = str(data_root / "embeddings/presto_algae_blooms.npz")
    r = _cli("sweep", vectors, "--quick", "-o", str(tmp_path / "sw"), "--no-report", "--json")
    assert r.returncode == 0, r.stderr
    rep = json.loads(r.stdout)
    assert [row["spec"] for row in rep["rows"]] == ["float32", "int8", "pca16,int8", "binary"]
    assert float(rep["rows"][1]["knn_acc"]) > 0.3 and Path(rep["results"]).is_file()


@pytest.mark.slow
def test_piped_output_is_not_wrapped(data_root: Path, tmp_path: Path, product: Path) -> None:
    deep = tmp_path / ("a-long-folder-name-" * 4) / "codes.npz"
    r = _cli("encode", str(data_root / "embeddings/presto_algae_blooms.npz"), "-o", str(deep), "--codec", "int8")
    assert r.returncode == 0, r.stderr
    (line,) = r.stdout.strip().splitlines()  # one line, however long: "-> PATH" not on a line of its own
    assert len(line) > 80 and line.endswith(str(deep))
    r = _cli("storage", "--dims", "1280", "-c", "unit,tcrq16", "-c", "pca320,int8", "-c", "float32")
    assert r.returncode == 0 and "…" not in r.stdout
    r = _cli("search", str(product), "--pixel", "50", "60", "--k", "3")
    assert r.returncode == 0, r.stderr
    assert "…" not in r.stdout  # coordinates in full, not cut to fit 80 columns


def test_help_text_is_clean() -> None:
    for command in (["compress"], ["encode"], ["decompress"], ["imagery", "encode"], ["search"], ["info"]):
        r = subprocess.run([EOCOMPRESS, *command, "--help"], capture_output=True, text=True, timeout=60,
                           env={"COLUMNS": "200", "PATH": "/usr/bin:/bin"})
        assert r.returncode == 0, r.stderr
        usage = next(line for line in r.stdout.splitlines() if "Usage:" in line)
        assert "{" not in usage and "[[" not in usage, usage
        assert "<bool>" not in r.stdout and "``" not in r.stdout and "default: -1" not in r.stdout
    r = subprocess.run([EOCOMPRESS, "compress", "--help"], capture_output=True, text=True, timeout=60)
    assert "SRC [OUT]" in r.stdout


@pytest.mark.slow
def test_unreachable_ratio_on_a_one_pixel_scene_names_a_working_fix(data_root: Path, tmp_path: Path) -> None:
    import rasterio
    from rasterio.windows import Window

    with rasterio.open(data_root / "imagery/hydro/patch_0.tif") as s:
        profile, pixel = s.profile, s.read(window=Window(0, 0, 1, 1))
        profile.update(width=1, height=1, transform=s.window_transform(Window(0, 0, 1, 1)), tiled=False)
    for key in ("blockxsize", "blockysize"):
        profile.pop(key, None)
    with rasterio.open(tmp_path / "one.tif", "w", **profile) as out:
        out.write(pixel)
    line = _one_error_line(_cli("imagery", "encode", str(tmp_path / "one.tif"), "-o", str(tmp_path / "one.eotok")))
    assert "cannot be reached for a 1x1 scene" in line and "<= 0" not in line and "larger scene" in line
    assert not (tmp_path / "one.eotok").exists()


@pytest.mark.slow
def test_quiet_folder_encode_still_names_the_failed_scene(data_root: Path, tmp_path: Path) -> None:
    folder = tmp_path / "scenes"
    folder.mkdir()
    shutil.copy(data_root / "imagery/hydro/patch_0.tif", folder / "good.tif")
    (folder / "bad.tif").write_bytes((data_root / "imagery/hydro/patch_1.tif").read_bytes()[:500])  # truncated
    r = _cli("-q", "imagery", "encode", str(folder), "-o", str(tmp_path / "tokens"))
    line = _one_error_line(r)
    assert "1 of 2 scenes failed" in line and "bad.tif" in line
    assert (tmp_path / "tokens" / "good.eotok").is_file()


@pytest.mark.slow
def test_imagery_encode_json_and_decode_to_a_non_tiff_name_is_refused(data_root: Path, tmp_path: Path) -> None:
    r = _cli("imagery", "encode", str(data_root / "imagery/hydro/patch_0.tif"), "-o", str(tmp_path / "p.eotok"),
             "--json")
    assert r.returncode == 0, r.stderr
    report = json.loads(r.stdout)
    assert report["bytes"] == (tmp_path / "p.eotok").stat().st_size and report["ratio_vs_raw"] >= 450
    line = _one_error_line(_cli("imagery", "decode", str(tmp_path / "p.eotok"), "-o", str(tmp_path / "p.png")))
    assert ".tif" in line and not (tmp_path / "p.png").exists()
    r = _cli("imagery", "decode", str(tmp_path / "p.eotok"), "-o", str(tmp_path / "p.tif"), "--json")
    assert r.returncode == 0, r.stderr
    decoded = json.loads(r.stdout)
    assert decoded["out"] == str(tmp_path / "p.tif") and decoded["codec"] == "learned"
    assert (decoded["height"], decoded["width"]) == (256, 256) and (tmp_path / "p.tif").exists()


def test_imagery_encode_warns_about_a_scene_without_georeference(data_root: Path, tmp_path: Path) -> None:
    scene = data_root / "imagery/dsen2-s2l1c/S2A_MSIL1C_20170527_T33UUB"  # real bands, no georeference
    r = _cli("imagery", "encode", str(scene), "-o", str(tmp_path / "d.eotok"))
    assert r.returncode == 0, r.stderr
    assert "has no georeference" in r.stderr and (tmp_path / "d.eotok").exists()
    georeferenced = _cli("imagery", "encode", str(data_root / "imagery/hydro/patch_0.tif"), "-o",
                         str(tmp_path / "p.eotok"), "--offset", "1000")
    assert georeferenced.returncode == 0 and "georeference" not in georeferenced.stderr, georeferenced.stderr
