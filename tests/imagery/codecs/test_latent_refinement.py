"""Encoder-side latent refinement on a real held-out crop: same decoder, objective never up, --ratio holds."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from _cli import run_cli
from eocompress.errors import InputError
from eocompress.imagery import places
from eocompress.imagery.codec import latent_refinement
from eocompress.imagery.codec.learned import LearnedCodec
from eocompress.imagery.readers.bands import S2_L2A_BANDS
from eocompress.imagery.readers.scenes import Scene, read_scene
from eocompress.imagery.tokenizer.standardise import apply_standardise

SIDE = 96


@pytest.fixture(scope="module")
def crop(data_root: Path) -> Scene:
    """A 96 px centre crop of the held-out desert city (bright ground, the codec's hard case)."""
    s = next(s for s in places.held_out_suite(data_root / "imagery") if s.kind == "desert")
    sc = read_scene(s.path, bands=list(S2_L2A_BANDS), offset=s.offset)
    h, w = sc.shape
    return sc.crop((h - SIDE) // 2, (w - SIDE) // 2, SIDE, SIDE)


def objective(codec: LearnedCodec, blob: bytes, sc: Scene) -> float:
    """The model's D + lambda R of the tokens a file holds, on the pixels as the encoder standardised them (and,
    for a KLT model, rotated by the file's stored KLT: what the network and the refinement see)."""
    head, _ = codec.read_header(blob)
    z = apply_standardise(sc.data.astype(np.float32), head.means, head.scale, head.valid)
    if head.klt is not None:
        z = head.klt.forward(z)
    lat = codec.tokens(blob).astype(np.float32) * np.float32(head.delta)
    h, w = sc.shape
    return latent_refinement.rd_objective(codec.model, lambda r0, r1, c0, c1: z[:, r0:r1, c0:c1], lat, head.delta,
                                          head.valid, list(range(12)), h, w)[0]


def test_zero_steps_gives_the_same_bytes(codec: LearnedCodec, crop: Scene) -> None:
    plain = codec.encode(crop.data, ratio=450, offset=crop.offset)
    assert codec.encode(crop.data, ratio=450, offset=crop.offset, refine_steps=0) == plain


def test_refined_file_decodes_and_objective_does_not_rise(codec: LearnedCodec, crop: Scene) -> None:
    plain = codec.encode(crop.data, quality=5, offset=crop.offset)
    refined = codec.encode(crop.data, quality=5, offset=crop.offset, refine_steps=15)
    out = codec.decode(refined)  # the normal decoder, no flag
    assert out.shape == crop.data.shape and out.dtype == np.uint16
    assert not np.array_equal(codec.tokens(refined), codec.tokens(plain))  # it did change the tokens
    assert objective(codec, refined, crop) < objective(codec, plain, crop)


def test_blocks_never_raise_the_objective(codec: LearnedCodec, crop: Scene, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(latent_refinement, "REFINE_BLOCK", 3)  # 6 x 6 latent: 4 blocks with fixed context
    plain = codec.encode(crop.data, quality=3, offset=crop.offset)
    refined = codec.encode(crop.data, quality=3, offset=crop.offset, refine_steps=8)
    assert objective(codec, refined, crop) <= objective(codec, plain, crop)


def test_ratio_still_holds(codec: LearnedCodec, crop: Scene) -> None:
    blob = codec.encode(crop.data, ratio=300, offset=crop.offset, refine_steps=5)
    assert len(blob) <= 12 * SIDE * SIDE * 2 / 300
    codec.decode(blob)


def test_negative_steps_is_one_line(codec: LearnedCodec, crop: Scene, tmp_path: Path, capsys) -> None:
    with pytest.raises(InputError, match="refine steps must be >= 0"):
        codec.encode(crop.data, quality=5, refine_steps=-1)
    code, _, err = run_cli(["imagery", "encode", str(tmp_path / "x.tif"), "-o", str(tmp_path / "x.eotok"),
                            "--refine", "-1"], capsys)
    assert code != 0 and "--refine must be >= 0" in err
    assert not (tmp_path / "x.eotok").exists()


def test_cli_refine_writes_a_file_the_normal_decoder_reads(codec: LearnedCodec, data_root: Path, tmp_path: Path,
                                                           capsys) -> None:
    src = data_root / "imagery" / "hydro" / "patch_100.tif"  # 256² stacked GeoTIFF, open ocean
    out = tmp_path / "r.eotok"
    # --no-layer: the refined token file itself (with a layer, the closer of it and base + layer is kept)
    code, _, err = run_cli(["imagery", "encode", str(src), "-o", str(out), "--ratio", "450", "--refine", "3",
                            "--no-layer"], capsys)
    assert code == 0, err
    blob = out.read_bytes()
    assert len(blob) <= 12 * 256 * 256 * 2 / 450
    assert codec.decode(blob).shape == (12, 256, 256)
