"""Imagery faults (issue 11): clobbering, full disks, devices, hostile token files, folder runs.

Learned token files are fuzzed with hypothesis (seeded, bounded): random byte damage, and header bytes
rewritten with the CRC recomputed. The outcome is always our own error or a decode, never another exception.
"""

from __future__ import annotations

import resource
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, seed, settings
from hypothesis import strategies as st

from _cli import run_cli
from eocompress.errors import EOCompressError
from eocompress.imagery.codec.pipeline import write_geotiff

BANDS = ["B02", "B03", "B04"]


# --------------------------------------------------------------------------- decoded GeoTIFFs


def _header(h: int, w: int) -> dict:
    return {"bands": BANDS, "height": h, "width": w, "crs": "EPSG:32633",
            "transform": [10.0, 0.0, 500000.0, 0.0, -10.0, 5000000.0], "offset": 0, "model_id": "f" * 64}


def test_decoded_geotiff_is_a_cog_and_is_not_clobbered(tmp_path: Path) -> None:
    import rasterio

    data = np.random.default_rng(1).integers(1, 5000, size=(3, 600, 520)).astype(np.uint16)
    out = write_geotiff(tmp_path / "d.tif", data, _header(600, 520))
    with rasterio.open(out) as src:
        assert src.tags(ns="IMAGE_STRUCTURE")["LAYOUT"] == "COG"
        assert src.compression.name.upper() == "DEFLATE" and src.block_shapes[0] == (256, 256)
        assert src.overviews(1) and src.descriptions == tuple(BANDS) and src.nodata == 0
        np.testing.assert_array_equal(src.read(), data)
    before = out.read_bytes()
    with pytest.raises(EOCompressError, match="already exists"):
        write_geotiff(out, data[:, :10, :10], _header(10, 10))
    assert out.read_bytes() == before
    write_geotiff(out, data[:, :10, :10], _header(10, 10), overwrite=True)
    assert out.read_bytes() != before


_FULL_DISK = """
import sys, numpy as np
from eocompress.errors import EOCompressError
from eocompress.imagery.codec.pipeline import write_geotiff
data = np.random.default_rng(2).integers(1, 60000, size=(3, 700, 700)).astype(np.uint16)
h = {"bands": ["B02", "B03", "B04"], "height": 700, "width": 700, "offset": 0, "model_id": "x"}
try:
    write_geotiff(sys.argv[1], data, h, overwrite=True)
except EOCompressError as exc:
    print(exc); sys.exit(1)
"""


def _limit_file_size() -> None:  # a "disk" that takes at most 200 kB per file
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (200_000, 200_000))


def test_full_disk_keeps_the_old_file_and_leaves_nothing(tmp_path: Path) -> None:
    target = tmp_path / "d.tif"
    target.write_bytes(b"the good old file")
    run = subprocess.run([sys.executable, "-c", _FULL_DISK, str(target)], capture_output=True, text=True,
                         preexec_fn=_limit_file_size, timeout=300)
    assert run.returncode == 1, run.stderr[-2000:]
    assert "cannot write" in run.stdout and len(run.stdout.strip().splitlines()) == 1
    assert target.read_bytes() == b"the good old file"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["d.tif"]  # no temporary left behind


# --------------------------------------------------------------------------- CLI


def test_devices_that_are_not_there(tmp_path: Path, capsys) -> None:
    import torch

    src = tmp_path / "x.tif"
    code, _, err = run_cli(
        ["imagery", "encode", str(src), "-o", str(tmp_path / "x.eotok"), "--device", "banana"], capsys,
    )
    assert code == 1 and "'banana' is not a torch device" in err and "available here: cpu" in err
    if not torch.cuda.is_available():
        code, _, err = run_cli(
            ["imagery", "decode", str(src), "-o", str(tmp_path / "x.tif"), "--device", "cuda"], capsys,
        )
        assert code == 1 and "no CUDA GPU is visible" in err and "available here: cpu" in err


def test_encode_and_decode_refuse_to_replace_files(tmp_path: Path, capsys) -> None:
    tok, tif = tmp_path / "x.eotok", tmp_path / "x.tif"
    tok.write_bytes(b"keep me")
    tif.write_bytes(b"keep me too")
    code, _, err = run_cli(["imagery", "encode", str(tmp_path), "-o", str(tok)], capsys)
    assert code == 1 and "already exists; pass --overwrite" in err
    code, _, err = run_cli(["imagery", "decode", str(tok), str(tif)], capsys)
    assert code == 1 and "already exists; pass --overwrite" in err
    code, _, err = run_cli(["imagery", "decode", str(tok), str(tmp_path)], capsys)
    assert code == 1 and "is a folder" in err
    assert tok.read_bytes() == b"keep me" and tif.read_bytes() == b"keep me too"
    code, _, err = run_cli(["imagery", "decode", str(tok), str(tmp_path / "a.tif"), "-o", str(tmp_path / "b.tif")],
                        capsys)
    assert code == 1 and "two outputs given" in err


@pytest.mark.slow
@pytest.mark.realdata
def test_folder_run_reports_a_bad_scene_and_writes_the_rest(data_root: Path, tmp_path: Path, capsys) -> None:
    import shutil

    from eocompress.imagery.codec.learned_folder import encode_folder

    src = tmp_path / "scenes"
    (src / "cell").mkdir(parents=True)
    shutil.copy(data_root / "imagery/hydro/patch_10.tif", src / "good.tif")
    (src / "broken.tif").write_bytes(b"II*\x00 truncated")
    band = data_root / "imagery/ssl4eo-s12/s2a/0000200/20200604T054639_20200604T054831_T43RCP"
    for f in band.glob("B*.tif"):
        shutil.copy(f, src / "cell" / f.name)
    blob = (src / "cell" / "B4.tif").read_bytes()
    (src / "cell" / "B4.tif").write_bytes(blob[: len(blob) // 3])  # a Major-TOM-style cell, one band truncated
    outcomes = encode_folder(src, tmp_path / "out", ratio=None, quality=3)
    status = {Path(o.source).name: (o.status, o.error) for o in outcomes}
    assert status["good.tif"][0] == "encoded" and (tmp_path / "out" / "good.eotok").is_file()
    assert status["broken.tif"][0] == "failed" and "broken.tif cannot be read" in status["broken.tif"][1]
    assert status["cell"][0] == "failed" and "B4.tif cannot be read" in status["cell"][1]


# --------------------------------------------------------------------------- learned token files (EOT2)


@pytest.fixture(scope="module")
def learned_sample():
    """A tiny random factorized-prior model (untrained) and one encoded file: the format, not the fidelity."""
    import torch

    from eocompress.imagery.codec.learned import LearnedCodec
    from eocompress.imagery.tokenizer.fp_model import FactorizedPriorTokenizer, FPConfig

    torch.manual_seed(0)
    cfg = FPConfig(channels=[4, 4, 4], latent=4, mixtures=1)
    codec = LearnedCodec(FactorizedPriorTokenizer(cfg), cfg, b"abcd")
    dn = np.random.default_rng(0).integers(200, 3000, size=(12, 40, 36)).astype(np.uint16)
    blob = codec.encode(dn, offset=0, ratio=100.0)
    return codec, blob, codec.decode(blob)


def _recrc(blob: bytes) -> bytes:
    import zlib

    body = blob[:-4]
    return body + zlib.crc32(body).to_bytes(4, "little")


def _learned_outcome(codec, blob: bytes, reference: np.ndarray) -> str:
    try:
        out = codec.decode(blob)
    except EOCompressError:
        return "error"
    if out.shape != reference.shape:
        return "other-shape"
    return "same" if np.array_equal(out, reference) else "other"


@seed(13)
@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(pos=st.integers(0, 10**6), value=st.integers(0, 255), cut=st.booleans())
def test_learned_file_damage_is_caught(learned_sample, pos: int, value: int, cut: bool) -> None:
    codec, blob, reference = learned_sample
    pos %= len(blob)
    damaged = blob[:pos] if cut else blob[:pos] + bytes([value]) + blob[pos + 1 :]
    if damaged != blob:
        assert _learned_outcome(codec, damaged, reference) == "error"


@seed(14)
@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(pos=st.integers(0, 80), value=st.integers(0, 255))
def test_learned_forged_header_never_raises_a_foreign_error(learned_sample, pos: int, value: int) -> None:
    """A header byte rewritten with the CRC recomputed: our error or a decode, never another exception."""
    codec, blob, reference = learned_sample
    pos %= len(blob) - 4
    forged = _recrc(blob[:pos] + bytes([value]) + blob[pos + 1 :])
    assert _learned_outcome(codec, forged, reference) in ("error", "same", "other", "other-shape")


def test_learned_forged_height_is_refused(learned_sample) -> None:
    import struct

    codec, blob, reference = learned_sample
    # height is the first u32 after magic (4), version (1), flags (1) and the 4-byte model id
    h = struct.unpack_from("<I", blob, 10)[0]
    assert h == reference.shape[1]
    forged = _recrc(blob[:10] + struct.pack("<I", h + 7) + blob[14:])
    assert _learned_outcome(codec, forged, reference) == "error"
