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


def test_klt_decorrelates_a_real_scene_strongest_first_and_inverts_exactly(desert):
    _, z, valid = desert
    m = spectral.klt_matrix(spectral.second_moment(z, valid))
    assert m.dtype == np.int8 and m.shape == (12, 12)
    assert np.all(m[np.argmax(np.abs(m), axis=0), np.arange(12)] > 0)  # each column signed by its largest entry
    y = spectral.forward(m, z)
    cov = np.cov(y.reshape(12, -1))
    var = np.diag(cov)
    assert np.all(np.diff(var) <= 1e-3 * var[0])  # strongest component first
    assert var[:3].sum() > 0.95 * var.sum()  # three components carry almost all the energy
    corr = cov / np.sqrt(np.outer(var, var))
    assert np.abs(corr[~np.eye(12, dtype=bool)]).max() < 0.1  # int8 rounding leaves little correlation
    back = spectral.inverse(m, y)
    assert np.abs(back - z).max() < 1e-4 * np.abs(z).max()


def test_klt_of_a_degenerate_scene_stays_invertible():
    z = np.zeros((12, 8, 8), np.float32)
    z[0] = np.linspace(-1, 1, 64).reshape(8, 8)  # one live band, eleven flat
    m = spectral.klt_matrix(spectral.second_moment(z))
    assert abs(np.linalg.det(m.astype(np.float64) / spectral.KLT_STEPS)) > 0.9
    assert np.allclose(spectral.inverse(m, spectral.forward(m, z)), z, atol=1e-5)
    with pytest.raises(ValueError, match="non-finite"):
        spectral.klt_matrix(np.full((12, 12), np.nan))


@pytest.fixture(scope="module")
def klt_model(data_root, tmp_path_factory):
    """A tiny model trained two steps through the CLI with ``--spectral klt`` on real training scenes."""
    return train_tiny(data_root, tmp_path_factory.mktemp("klt") / "model", "--spectral", "klt")


def test_klt_model_stores_the_rotation_and_streams_the_same_bytes(klt_model, desert):
    dn, z, valid = desert
    assert klt_model.config.spectral == "klt"
    blob = klt_model.encode(dn, ratio=200, offset=0)
    head, _ = Header.from_bytes(unseal(blob, "t"), 12, "t")
    assert np.array_equal(head.klt, spectral.klt_matrix(spectral.second_moment(z, valid)))
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
    forged = bytearray(body)
    forged[5] |= 128  # a flag no version writes
    with pytest.raises(TokenStreamError, match=r"flags 0x.* does not know"):
        klt_model.decode(seal(bytes(forged)))
    head.klt = np.zeros((12, 12), np.int8)  # a forged rotation: singular, no inverse to decode with
    with pytest.raises(TokenStreamError, match="spectral transform is singular"):
        klt_model.decode(seal(head.to_bytes() + body[pos:]))


def test_training_crops_of_a_klt_model_are_decorrelated_components(data_root, tmp_path):
    arrays = read_training_scenes([data_root / "imagery/hydro/patch_0.tif"], min_size=32)
    cache = write_cache(arrays, tmp_path / "c.npz")
    bands, klt = RandomCrops(cache, 32, 4, seed=1), RandomCrops(cache, 32, 4, seed=1, spectral="klt")
    for i in range(4):
        z, y = bands[i].numpy(), klt[i].numpy()
        m = spectral.klt_matrix(spectral.second_moment(z, np.any(z != 0, axis=0)))
        assert np.allclose(y, spectral.forward(m, z), atol=1e-6)
        assert np.isclose((y**2).sum(), (z**2).sum(), rtol=0.05)  # a rotation: the energy stays


def test_an_unknown_spectral_front_end_is_one_line(tmp_path, capsys):
    run = run_cli(["tokenizer", "train", "-o", str(tmp_path / "m"), "--spectral", "pca"], capsys)
    assert run.code != 0 and "--spectral must be bands or klt" in run.text
    assert not (tmp_path / "m").exists()
    with pytest.raises(ValueError, match="spectral front end"):
        FPConfig(spectral="pca")
