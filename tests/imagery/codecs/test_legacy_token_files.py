"""One token format: first-wave VQ files (``EOTK``) are refused in one line naming the version that reads them,
and a learned file is never decoded with another model than the one that wrote it.

The ``EOTK`` bytes are built here in the layout eocompress 0.1.0 wrote (``b"EOTK"`` | version u8 | header
length u32 | JSON header | packed indices | blake2b-128), with the header of its packaged VQ model; the
writer itself is gone.
"""

from __future__ import annotations

import hashlib
import json
import struct
from pathlib import Path

import numpy as np
import pytest
import torch

from _cli import run_cli
from eocompress.errors import FileFormatError
from eocompress.imagery.codec.learned import LearnedCodec
from eocompress.imagery.codec.legacy_tokens import LEGACY_MAGIC, LegacyTokenFileError, is_legacy_token_file
from eocompress.imagery.codecs import get_codec
from eocompress.imagery.tokenizer.fp_model import FactorizedPriorTokenizer, FPConfig
from eocompress.imagery.tokenizer.fp_train import export_model

#: sha256 of the weights of the VQ model eocompress 0.1.0 shipped (src/eocompress/models/default).
OLD_MODEL_ID = "259ee348cd3f7d80302f0afcab7b0a94de28826c2f0549464f42215aeb72c16d"


def eotk_bytes(height: int = 32, width: int = 48) -> bytes:
    """A token file as eocompress 0.1.0's ``TokenFile.to_bytes`` wrote it (packed 13-bit indices, f = 16)."""
    grid = (1, -(-height // 16), -(-width // 16))
    indices = np.arange(np.prod(grid), dtype=np.int64).reshape(grid) % 8192
    bits = np.unpackbits(indices.astype(">u2").view(np.uint8).reshape(-1, 2), axis=1)[:, 3:]  # 13 bits each
    payload = np.packbits(bits.ravel()).tobytes()
    header = {"format_version": 1, "model_id": OLD_MODEL_ID, "quantizer": "fsq", "codebook_size": 8192,
              "downsample": 16, "height": height, "width": width, "dtype": "uint16", "nodata": 0, "offset": 0,
              "bands": ["B01", "B02", "B03", "B04", "B05", "B06", "B07", "B08", "B8A", "B09", "B11", "B12"],
              "indices_shape": list(grid), "bits_per_index": 13, "index_encoding": "packed",
              "index_nbytes": len(payload), "mask_nbytes": 0, "crs": "EPSG:32633", "transform": None}
    head = json.dumps(header, separators=(",", ":"), sort_keys=True).encode()
    body = struct.pack("<4sBI", b"EOTK", 1, len(head)) + head + payload
    return body + hashlib.blake2b(body, digest_size=16).digest()


@pytest.fixture(scope="module")
def eotk(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("old") / "scene.eotok"
    path.write_bytes(eotk_bytes())
    return path


def test_the_fixture_is_an_eotk_file() -> None:
    blob = eotk_bytes()
    assert blob[:4] == LEGACY_MAGIC and is_legacy_token_file(blob) and blob[4] == 1
    (head_len,) = struct.unpack_from("<I", blob, 5)
    assert json.loads(blob[9 : 9 + head_len])["model_id"] == OLD_MODEL_ID
    assert not is_legacy_token_file(b"EOT2\x02") and not is_legacy_token_file(b"")


@pytest.mark.parametrize("command", ["decode", "info"])
def test_cli_refuses_an_eotk_file_in_one_line_naming_the_version(eotk: Path, tmp_path: Path, capsys,
                                                                 command: str) -> None:
    target = tmp_path / "out.tif"
    args = ["imagery", command, str(eotk)] + (["-o", str(target)] if command == "decode" else [])
    run = run_cli(args, capsys)
    assert run.code == 1 and run.out == "", run.text
    lines = [line for line in run.err.splitlines() if line.strip()]
    assert len(lines) == 1, run.err
    assert "first-wave VQ token file (EOTK" in run.text and "eocompress <= 0.1.0" in run.text
    assert "Traceback" not in run.text and not target.exists()  # no partial output


def test_the_api_refuses_an_eotk_file_too(eotk: Path) -> None:
    blob = eotk.read_bytes()
    codec = LearnedCodec.load("default")
    for call in (lambda: codec.decode(blob, str(eotk)), lambda: codec.tokens(blob, str(eotk)),
                 lambda: get_codec("learned").decode(blob)):
        with pytest.raises(LegacyTokenFileError, match=r"eocompress <= 0\.1\.0") as info:
            call()
        assert isinstance(info.value, FileFormatError) and "\n" not in str(info.value)


def test_a_file_of_another_learned_model_is_refused_naming_that_model(tmp_path: Path, capsys) -> None:
    torch.manual_seed(0)
    cfg = FPConfig(channels=[4, 4, 4], latent=4, mixtures=1)
    folder = export_model(FactorizedPriorTokenizer(cfg), cfg, tmp_path / "tiny")
    tiny = LearnedCodec.load(folder)
    dn = np.random.default_rng(0).integers(500, 3000, size=(12, 32, 32)).astype(np.uint16)
    path = tiny.save(tiny.encode(dn, offset=0, quality=5), tmp_path / "tiny.eotok")
    run = run_cli(["imagery", "decode", str(path), "-o", str(tmp_path / "x.tif")], capsys)  # the shipped model
    assert run.code == 1 and f"was made by model {tiny.model_id.hex()}" in run.text, run.text
    assert not (tmp_path / "x.tif").exists()
    run = run_cli(["imagery", "decode", str(path), "-o", str(tmp_path / "x.tif"), "--model", str(folder)], capsys)
    assert run.code == 0, run.text
