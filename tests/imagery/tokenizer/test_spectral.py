"""The per-scene KLT in front of the learned codec: the transform, training crops, token files and the CLI."""

from __future__ import annotations

import numpy as np
import pytest

from _cli import run_cli
from _tiny_models import train_tiny
from eocompress.imagery.codec.learned_format import Header, TokenStreamError, seal, unseal
from eocompress.imagery.places import held_out_suite
from eocompress.imagery.readers.scenes import read_scene
from eocompress.imagery.tokenizer import spectral
from eocompress.imagery.tokenizer.fp_data import RandomCrops, read_training_scenes, write_cache
from eocompress.imagery.tokenizer.fp_model import FPConfig
from eocompress.imagery.tokenizer.standardise import standardise


@pytest.fixture(scope="module")
def desert(data_root):
    """A real bright held-out scene (desert city, L1C), 12 bands as DN, and its standardised bands."""
    scene = next(s for s in held_out_suite(data_root / "imagery") if s.kind == "desert")
    dn = read_scene(scene.path, bands=FPConfig().bands).data[:, :256, :256]
    valid = np.all(dn > 0, axis=0)
    return dn, standardise(dn.astype(np.float32), valid)[0], valid


@pytest.mark.parametrize("form", spectral.FORMS)
def test_klt_decorrelates_a_real_scene_strongest_first_and_inverts_exactly(desert, form):
    _, z, valid = desert
    rot = spectral.Rotation.of_moment(spectral.second_moment(z, valid), form)
    assert len(rot.to_bytes()) == spectral.Rotation.nbytes(form, 12)
    v = spectral.eigenvectors(spectral.second_moment(z, valid))
    assert np.all(v[np.argmax(np.abs(v), axis=0), np.arange(12)] > 0)  # each column signed by its largest entry
    assert np.abs(rot.matrix - v).max() < 0.01  # and stored within a step of it
    y = rot.forward(z)
    cov = np.cov(y.reshape(12, -1))
    var = np.diag(cov)
    assert np.all(np.diff(var) <= 1e-3 * var[0])  # strongest component first
    assert var[:3].sum() > 0.95 * var.sum()  # three components carry almost all the energy
    corr = cov / np.sqrt(np.outer(var, var))
    assert np.abs(corr[~np.eye(12, dtype=bool)]).max() < 0.1  # the rounding leaves little correlation
    ideal = np.linalg.eigvalsh(np.cov(z.reshape(12, -1)))[::-1]
    # the weakest components keep (almost) only their own energy, as under int8 entries (8-bit angles: +19 %)
    assert np.all(var[-4:] < 1.02 * ideal[-4:])
    back = rot.inverse(y)
    assert np.abs(back - z).max() < 1e-4 * np.abs(z).max()


def test_the_givens_form_is_orthogonal_75_bytes_and_reads_back(desert):
    _, z, valid = desert
    rot = spectral.Rotation.of_moment(spectral.second_moment(z, valid))
    assert rot.form == "givens" and len(rot.to_bytes()) == 75  # 144 B in the int8 entries form
    assert rot.codes.min() < -128 and rot.codes[:-1].max() > 128  # the 9-bit fields' sign bit is exercised
    assert np.allclose(rot.matrix64 @ rot.matrix64.T, np.eye(12), atol=1e-12)
    back = spectral.Rotation.from_bytes(b"xx" + rot.to_bytes(), 2, 12, "givens")
    assert np.array_equal(back.matrix, rot.matrix) and np.array_equal(back.inverse_matrix, rot.inverse_matrix)
    with pytest.raises(ValueError, match="cut short"):
        spectral.Rotation.from_bytes(rot.to_bytes()[:-1], 0, 12, "givens")
    # a reflection (determinant -1) is kept, not turned into a rotation
    flipped = spectral.eigenvectors(spectral.second_moment(z, valid))
    flipped[:, -1] *= -1
    codes = spectral.givens_codes(flipped)
    assert codes[-1] == 1 and np.abs(spectral.givens_matrix(codes, 12) - flipped).max() < 0.01
    assert np.array_equal(spectral.unpack_givens(spectral.pack_givens(codes), 66), codes)


def test_a_rotation_is_the_same_numbers_on_one_blas_thread_and_its_matrix_is_remembered(desert):
    """``forward``/``inverse`` hold BLAS to one thread (0.10.1: a 120 px patch's decode 2x faster beside torch's
    spinning threads): the same float32 as the plain products; a file's matrix is computed once and read-only."""
    _, z, valid = desert
    rot = spectral.Rotation.of_moment(spectral.second_moment(z, valid))
    c, h, w = z.shape
    assert np.array_equal(rot.forward(z), (rot.matrix.T @ z.reshape(c, -1)).reshape(c, h, w))
    y = rot.forward(z)
    assert np.array_equal(rot.inverse(y), (rot.inverse_matrix @ y.reshape(c, -1)).reshape(c, h, w))
    again = spectral.Rotation.from_bytes(rot.to_bytes(), 0, 12, "givens")
    assert again.matrix64 is rot.matrix64 and not rot.matrix64.flags.writeable


def test_klt_of_a_degenerate_scene_stays_invertible():
    z = np.zeros((12, 8, 8), np.float32)
    z[0] = np.linspace(-1, 1, 64).reshape(8, 8)  # one live band, eleven flat
    for form in spectral.FORMS:
        rot = spectral.Rotation.of_moment(spectral.second_moment(z), form)
        assert abs(np.linalg.det(rot.matrix64)) > 0.9
        assert np.allclose(rot.inverse(rot.forward(z)), z, atol=1e-5)
        with pytest.raises(ValueError, match="non-finite"):
            spectral.Rotation.of_moment(np.full((12, 12), np.nan), form)


@pytest.fixture(scope="module")
def klt_model(data_root, tmp_path_factory):
    """A tiny model trained two steps through the CLI with ``--spectral klt`` on real training scenes."""
    return train_tiny(data_root, tmp_path_factory.mktemp("klt") / "model", "--spectral", "klt")


def body_flags(blob: bytes) -> int:
    """The flags byte of a token file's header."""
    return blob[5]


def test_klt_model_stores_the_rotation_and_streams_the_same_bytes(klt_model, desert):
    dn, z, valid = desert
    assert klt_model.config.spectral == "klt"
    blob = klt_model.encode(dn, ratio=200, offset=0)
    head, _ = Header.from_bytes(unseal(blob, "t"), 12, "t")
    assert head.klt.form == "givens" and body_flags(blob) & 128
    assert np.array_equal(head.klt.codes, spectral.Rotation.of_moment(spectral.second_moment(z, valid)).codes)
    streamed = klt_model.encode_windows(lambda r, c, h, w: dn[:, r : r + h, c : c + w], dn.shape, ratio=200, offset=0)
    assert streamed == blob
    assert len(blob) <= dn.nbytes / 200
    out = klt_model.decode(blob)
    assert out.shape == dn.shape and out.dtype == np.uint16
    assert np.array_equal(out[:, 32:96, 48:80], klt_model.decode(blob, window=(32, 48, 64, 32)))


def test_a_token_file_without_its_rotation_or_with_a_forged_one_is_refused_in_one_line(klt_model, desert):
    dn, _, _ = desert
    body = unseal(klt_model.encode(dn[:, :64, :64], quality=3), "t")
    head, pos = Header.from_bytes(body, 12, "t")
    head.klt = None
    stripped = seal(head.to_bytes() + body[pos:])
    with pytest.raises(TokenStreamError, match="lacks the spectral transform"):
        klt_model.decode(stripped)
    forged = bytearray(stripped)
    forged[5] |= 128  # the Givens flag without a rotation
    with pytest.raises(TokenStreamError, match=r"name a rotation form but no rotation"):
        klt_model.decode(seal(bytes(forged[:-4])))
    head.klt = spectral.Rotation("entries", np.zeros((12, 12), np.int8), 12)  # forged: singular, no inverse
    with pytest.raises(TokenStreamError, match="spectral transform is singular"):
        klt_model.decode(seal(head.to_bytes() + body[pos:]))


def test_training_crops_of_a_klt_model_are_decorrelated_components(data_root, tmp_path):
    arrays = read_training_scenes([data_root / "imagery/hydro/patch_0.tif"], min_size=32)
    cache = write_cache(arrays, tmp_path / "c.npz")
    bands, klt = RandomCrops(cache, 32, 4, seed=1), RandomCrops(cache, 32, 4, seed=1, spectral="klt")
    for i in range(4):
        z, y = bands[i].numpy(), klt[i].numpy()
        rot = spectral.Rotation.of_moment(spectral.second_moment(z, np.any(z != 0, axis=0)))
        assert np.allclose(y, rot.forward(z), atol=1e-6)
        assert np.isclose((y**2).sum(), (z**2).sum(), rtol=0.05)  # a rotation: the energy stays


def test_an_unknown_spectral_front_end_is_one_line(tmp_path, capsys):
    run = run_cli(["tokenizer", "train", "-o", str(tmp_path / "m"), "--spectral", "pca"], capsys)
    assert run.code != 0 and "--spectral must be bands or klt" in run.text
    assert not (tmp_path / "m").exists()
    with pytest.raises(ValueError, match="spectral front end"):
        FPConfig(spectral="pca")


def test_a_token_file_of_0_5_0_with_the_int8_rotation_decodes_as_it_did(data_root):
    """Written by eocompress 0.5.0 (the rotation as 144 int8 entries, no flag 128): Pisa imgs_1, rows 100-164,
    cols 200-264, ``encode_scene(quality=3)``, 515 B; it decoded then at 42.2258 dB against the scene."""
    from pathlib import Path

    from eocompress.imagery.codec.learned import LearnedCodec
    from eocompress.imagery.evaluation.fidelity import psnr_db

    blob = (Path(__file__).parents[1] / "codecs/files/pisa_r100_c200_64_q3_0.5.0.eotok").read_bytes()
    codec = LearnedCodec.load()
    head, _ = codec.read_header(blob)
    assert blob[5] & 128 == 0 and head.klt.form == "entries" and head.klt.codes.shape == (12, 12)
    scene = read_scene(data_root / "imagery/oscd-s2l1c/pisa/imgs_1", bands=codec.bands).crop(100, 200, 64, 64)
    assert abs(psnr_db(scene.data, codec.decode(blob), scene.valid) - 42.2258) < 0.001
    # the same crop written now at the same size: the Givens rotation (69 B freed) and rate-aware rounding
    # buy a finer step, +1.1 dB on this 64² crop (43.31 dB)
    now = codec.encode_scene(scene, ratio=scene.data.nbytes / len(blob))
    assert now[5] & 128 and len(now) <= len(blob)
    assert psnr_db(scene.data, codec.decode(now), scene.valid) > 42.2258 + 0.5
