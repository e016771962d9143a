"""Product faults (issue 11), one test per case: full disks, resume mismatches, tampering, bad settings, hostile values.

Inputs are windows of the real Presto LULC field (the first 32 bands of a 48 x 40 window), small so each
case runs in seconds; every case asserts our one-line error and that nothing was half written or replaced.
"""

from __future__ import annotations

import errno
import json
import subprocess
from pathlib import Path

import numpy as np
import pytest
import rasterio

from eocompress.cli import main
from eocompress.embeddings.products.api import compress, decompress, open_product
from eocompress.embeddings.products.fields import GeoTiffField
from eocompress.embeddings.products.verify import verify_product
from eocompress.embeddings.products.zarr_product import compress_to_zarr, partial_path
from eocompress.errors import EOCompressError, InputError


def _write_field(path: Path, src: Path, values: np.ndarray | None = None, window=(0, 48, 0, 40)) -> np.ndarray:
    """A small GeoTIFF cut from the real field (32 bands); ``values`` replaces its data when given."""
    r0, r1, c0, c1 = window
    with rasterio.open(src) as s:
        data = s.read(indexes=list(range(1, 33)), window=rasterio.windows.Window(c0, r0, c1 - c0, r1 - r0))
        profile = s.profile
        transform = s.window_transform(rasterio.windows.Window(c0, r0, c1 - c0, r1 - r0))
    if values is not None:
        data = values
    profile.update(count=data.shape[0], height=data.shape[1], width=data.shape[2], transform=transform)
    with rasterio.open(path, "w", **profile) as d:
        d.write(data)
    return data


@pytest.fixture
def field(lulc_tif: Path, tmp_path: Path) -> Path:
    path = tmp_path / "field.tif"
    _write_field(path, lulc_tif)
    return path


def cli(args: list[str], capsys: pytest.CaptureFixture) -> tuple[int, str]:
    """Run the CLI in-process; (exit code, stderr)."""
    with pytest.raises(SystemExit) as info:
        main(["-q", *args])
    return int(info.value.code or 0), capsys.readouterr().err


def _one_line(err: str) -> str:
    lines = [line for line in err.strip().splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:"), err
    return lines[0]


def _leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.startswith("."))


# ---------------------------------------------------------------- full disk: one line, nothing replaced
@pytest.fixture
def tiny_disk(tmp_path: Path):
    """A 160 KiB tmpfs (needs root); skipped with the reason where it cannot be mounted."""
    mnt = tmp_path / "full"
    mnt.mkdir()
    res = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=160k", "tmpfs", str(mnt)], capture_output=True)
    if res.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs here ({res.stderr.decode().strip()[:80]}); ENOSPC is simulated below")
    try:
        yield mnt
    finally:
        subprocess.run(["umount", "-l", str(mnt)], check=False)


def test_full_disk_compress_and_decompress_fail_in_one_line_keeping_the_old_file(
    field: Path, tiny_disk: Path, tmp_path: Path
) -> None:
    old = tiny_disk / "c.tif"
    old.write_bytes(b"the previous good file")
    with pytest.raises(EOCompressError, match="space") as info:
        compress(field, old, "int8", chunk=16, overwrite=True, stac=False)
    assert "\n" not in str(info.value)
    assert old.read_bytes() == b"the previous good file" and _leftovers(tiny_disk) == []
    prod = compress(field, tmp_path / "p.zarr", "int8", chunk=16)
    with pytest.raises(EOCompressError, match="space"):
        decompress(prod, old, overwrite=True)
    assert old.read_bytes() == b"the previous good file" and _leftovers(tiny_disk) == []


def test_full_disk_zarr_compress_is_one_line_and_resume_only_for_zarr(
    lulc_tif: Path, tiny_disk: Path, tmp_path: Path
) -> None:
    with pytest.raises(EOCompressError, match=r"no space left on the device.*--resume") as info:
        compress(lulc_tif, tiny_disk / "p.zarr", "int8", chunk=32, fit_sample=2000, stac=False)
    assert "\n" not in str(info.value) and not (tiny_disk / "p.zarr").exists()
    with pytest.raises(InputError, match="--resume continues Zarr products only"):
        compress(lulc_tif, tmp_path / "p.tif", "int8", resume=True)


def test_enospc_inside_gdal_copy_is_one_line_and_keeps_the_old_file(
    field: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import rasterio.shutil

    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    prod = compress(field, tmp_path / "p.zarr", "int8", chunk=16)
    old = tmp_path / "d.tif"
    old.write_bytes(b"old")
    monkeypatch.setattr(rasterio.shutil, "copy", full)
    with pytest.raises(EOCompressError, match="no space left on the device"):
        decompress(prod, old, overwrite=True)
    assert old.read_bytes() == b"old" and [p for p in _leftovers(tmp_path) if "d.tif" in p] == []


def test_write_that_reads_back_different_is_refused(
    field: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """GDAL may report no error for a short write: the read-back check catches it, and nothing is renamed."""
    from eocompress import geotiff

    real = geotiff.chunk_sha256
    calls = {"n": 0}

    def flaky(*arrays):
        calls["n"] += 1
        digest = real(*arrays)
        return digest if calls["n"] < 3 else bytes(32)  # a later chunk "reads back" wrong

    monkeypatch.setattr(geotiff, "chunk_sha256", flaky)
    with pytest.raises(EOCompressError, match="reads back different"):
        compress(field, tmp_path / "x.tif", "int8", chunk=16, stac=False)
    assert not (tmp_path / "x.tif").exists() and _leftovers(tmp_path) == []


# ---------------------------------------------------------------- resume refuses another input or codec
class _Crash(Exception):
    pass


class _CrashingField(GeoTiffField):
    def _read(self, window):
        if (window.i, window.j) == (1, 0):
            raise _Crash("simulated crash")
        return super()._read(window)


def _interrupted(field: Path, out: Path, spec: str = "int8") -> None:
    from eocompress.embeddings.codecs import Codec

    X = np.moveaxis(rasterio.open(field).read(), 0, -1).reshape(-1, 32)
    with pytest.raises(_Crash):
        compress_to_zarr(_CrashingField(field), out, Codec.from_spec(spec).fit(X), chunk=16)
    assert partial_path(out).exists()


def test_resume_refuses_another_input_of_the_same_shape(field: Path, lulc_tif: Path, tmp_path: Path) -> None:
    out = tmp_path / "r.zarr"
    _interrupted(field, out)
    other = tmp_path / "other.tif"
    _write_field(other, lulc_tif, window=(50, 98, 50, 90))  # same shape, other pixels
    with pytest.raises(EOCompressError, match=r"another input.*drop --resume to start fresh"):
        compress(other, out, "int8", chunk=16, resume=True)
    with pytest.raises(EOCompressError, match=r"--codec int8.*drop --resume"):
        compress(field, out, "pca8,int8", chunk=16, resume=True)
    assert not out.exists()
    compress(field, out, "int8", chunk=16, resume=True)  # the same input and codec finish the product
    assert verify_product(out)["ok"]


def test_resume_on_corrupt_metadata_is_one_line(field: Path, tmp_path: Path, capsys) -> None:
    out = tmp_path / "r.zarr"
    _interrupted(field, out)
    (partial_path(out) / "store.zarr" / "zarr.json").write_bytes(b"\xff\xfe garbage \x00")
    code, err = cli(["compress", str(field), str(out), "--chunk", "16", "--resume"], capsys)
    assert code == 1 and "damaged metadata" in _one_line(err) and "start fresh" in err


# ---------------------------------------------------------------- tampering caught by verify
def _edit_json(path: Path, edit) -> None:
    doc = json.loads(path.read_text())
    edit(doc)
    path.write_text(json.dumps(doc))


def test_one_digit_changes_in_zarr_metadata_fail_verify(field: Path, tmp_path: Path) -> None:
    out = compress(field, tmp_path / "p.zarr", "pca8,int8", chunk=16)
    assert verify_product(out)["ok"]

    def bump_transform(doc):
        doc["attributes"]["eocompress:grid"]["transform"][0] += 1.0

    def bump_stage(doc):
        doc["attributes"]["eocompress:codec"]["seed"] = 7

    for edit in (bump_transform, bump_stage):
        copy = tmp_path / f"{edit.__name__}.zarr"
        subprocess.run(["cp", "-r", str(out), str(copy)], check=True)
        _edit_json(copy / "zarr.json", edit)
        result = verify_product(copy)
        assert not result["ok"] and "metadata_sha256" in result["bad"][0]
    # a decode parameter (an array chunk of codec/int8_min): Zarr's crc32c or our digest catch it
    copy = tmp_path / "param.zarr"
    subprocess.run(["cp", "-r", str(out), str(copy)], check=True)
    chunk = next((copy / "codec" / "int8_min" / "c").rglob("*"))
    blob = bytearray(chunk.read_bytes())
    blob[4] ^= 0x01
    chunk.write_bytes(bytes(blob))
    assert not verify_product(copy)["ok"]
    with pytest.raises(EOCompressError):
        decompress(copy, tmp_path / "x.tif")


def test_cog_codec_tag_and_overview_tampering_fail_verify(field: Path, tmp_path: Path) -> None:
    out = compress(field, tmp_path / "c.tif", "int8", chunk=16)
    assert verify_product(out)["ok"]
    tag = tmp_path / "tag.tif"
    tag.write_bytes(out.read_bytes())
    with rasterio.open(tag, "r+", IGNORE_COG_LAYOUT_BREAK="YES") as dst:
        params = json.loads(dst.tags()["EOCOMPRESS_PARAM_int8_min"])
        params["values"][3] += 0.5
        dst.update_tags(EOCOMPRESS_PARAM_int8_min=json.dumps(params))
    result = verify_product(tag)
    assert not result["ok"] and "EOCOMPRESS_METADATA_SHA256" in result["bad"][0]
    # flip a byte inside the first overview's first tile (offsets read from the second TIFF IFD)
    ov = tmp_path / "ov.tif"
    blob = bytearray(out.read_bytes())
    offset, size = _second_ifd_first_tile(bytes(blob))
    blob[offset + size // 2] ^= 0xFF
    ov.write_bytes(bytes(blob))
    result = verify_product(ov)
    assert not result["ok"] and any("overview" in m for m in result["bad"])


def _second_ifd_first_tile(blob: bytes) -> tuple[int, int]:
    """(offset, byte count) of the first tile of the second IFD (the first overview) of a little-endian TIFF."""
    import struct

    assert blob[:4] == b"II*\x00", "classic little-endian TIFF expected"
    ifd = struct.unpack_from("<I", blob, 4)[0]
    ifd = struct.unpack_from("<I", blob, ifd + 2 + 12 * struct.unpack_from("<H", blob, ifd)[0])[0]  # next IFD
    n = struct.unpack_from("<H", blob, ifd)[0]
    found = {}
    for k in range(n):
        tag, _typ, count, value = struct.unpack_from("<HHII", blob, ifd + 2 + 12 * k)
        if tag in (324, 325):  # TileOffsets, TileByteCounts (LONG)
            found[tag] = value if count == 1 else struct.unpack_from("<I", blob, value)[0]
    return found[324], found[325]


# ---------------------------------------------------------------- settings: one line, exit 1, nothing written
@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["--chunk", "0"], "--chunk must be between"),
        (["--chunk", "100000000"], "--chunk must be between"),
        (["--fit-sample", "0"], "--fit-sample must be a positive"),
        (["--fit-sample", "-10"], "--fit-sample must be a positive"),
        (["--memory-limit", "banana"], "--memory-limit 'banana' is not a size"),
    ],
)
def test_bad_compress_settings_are_one_line(field: Path, tmp_path: Path, capsys, args: list[str], needle: str) -> None:
    out = tmp_path / "x.zarr"
    code, err = cli(["compress", str(field), "-o", str(out), *args], capsys)
    assert code == 1 and needle in _one_line(err)
    assert not out.exists() and not partial_path(out).exists()


def test_chunk_too_big_for_memory_is_refused(field: Path, tmp_path: Path) -> None:
    from eocompress.embeddings.products.api import check_chunk_memory

    with pytest.raises(InputError, match="GiB of float32 per chunk"):
        check_chunk_memory(8192, 1280)
    check_chunk_memory(512, 1280)


def test_empty_parquet_table_is_refused(tmp_path: Path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    empty = tmp_path / "empty.parquet"
    pq.write_table(
        pa.table({"embedding": pa.array([], type=pa.list_(pa.float32())), "grid_cell": pa.array([], pa.string())}),
        empty,
    )
    with pytest.raises(InputError, match="no rows"):
        compress(empty, tmp_path / "e.parquet", "int8")
    assert not (tmp_path / "e.parquet").exists()


def test_overwrite_never_deletes_a_directory_tree(field: Path, tmp_path: Path, capsys) -> None:
    prod = compress(field, tmp_path / "p.zarr", "int8", chunk=16)
    tree = tmp_path / "mine"
    (tree / "sub").mkdir(parents=True)
    (tree / "sub" / "precious.txt").write_text("keep")
    code, err = cli(["decompress", str(prod), "-o", str(tree), "--overwrite"], capsys)
    assert code == 1 and "directory that eocompress did not create" in _one_line(err)
    assert (tree / "sub" / "precious.txt").read_text() == "keep"
    not_ours = tmp_path / "data.zarr"
    (not_ours / "x").mkdir(parents=True)
    with pytest.raises(EOCompressError, match="did not create"):
        compress(field, not_ours, "int8", chunk=16, overwrite=True)
    assert (not_ours / "x").is_dir()
    compress(field, prod, "int8", chunk=16, overwrite=True)  # our own product is replaced
    assert verify_product(prod)["ok"]


# ---------------------------------------------------------------- extreme finite values
def test_extreme_finite_values_refused_with_count_and_position(field: Path, lulc_tif: Path, tmp_path: Path) -> None:
    data = rasterio.open(field).read()
    data[5, 7, 9] = 3e38
    data[6, 7, 9] = -3e38
    bad = tmp_path / "bad.tif"
    _write_field(bad, lulc_tif, values=data)
    for name in ("b.zarr", "b.tif"):
        with pytest.raises(InputError, match=r"2 values exceed .* \(first at row 7, col 9, band 5: 3e\+38\)"):
            compress(bad, tmp_path / name, "int8", chunk=16)
        assert not (tmp_path / name).exists()
    # with a codec fitted elsewhere, the encode step refuses them too
    codec = tmp_path / "c.json"
    from eocompress.embeddings.codecs import Codec

    Codec.from_spec("int8").fit(np.moveaxis(rasterio.open(field).read(), 0, -1).reshape(-1, 32)).save(codec)
    with pytest.raises(InputError, match="values exceed"):
        compress(bad, tmp_path / "c.zarr", "int8", chunk=16, fit=codec)


def test_bad_product_paths_are_our_errors(tmp_path: Path) -> None:
    with pytest.raises(EOCompressError, match="does not exist"):
        open_product(tmp_path / "nope.zarr")
    fake = tmp_path / "fake.zarr"
    fake.mkdir()
    (fake / "zarr.json").write_text("{not json")
    with pytest.raises(EOCompressError):
        open_product(fake)
