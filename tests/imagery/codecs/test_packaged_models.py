"""Token files of an earlier packaged model keep decoding after the default model changes."""

from __future__ import annotations

import shutil

import numpy as np
import pytest

from _tiny_models import train_tiny
from eocompress.imagery.codec import learned
from eocompress.imagery.codec.learned import LearnedCodec, packaged_models
from eocompress.imagery.codec.learned_format import TokenStreamError


@pytest.fixture(scope="module")
def two_packaged(data_root, tmp_path_factory):
    """A package folder with a new default (a tiny model trained 2 steps) and the current default kept beside it."""
    root = tmp_path_factory.mktemp("pkg") / "models"
    shutil.copytree(learned.default_model_dir(), root / "learned-before")
    train_tiny(data_root, root / "learned")
    for extra in ("checkpoints", "logs", "train_cache.npz"):
        target = root / "learned" / extra
        shutil.rmtree(target) if target.is_dir() else target.unlink()
    return root


def test_the_default_decodes_files_of_the_model_before_it(two_packaged, pisa, monkeypatch, tmp_path):
    before = LearnedCodec.load(two_packaged / "learned-before")
    window = pisa.crop(100, 200, 128, 128)
    blob = before.encode_scene(window, ratio=300)
    monkeypatch.setattr(learned, "default_model_dir", lambda: two_packaged / "learned")
    assert set(packaged_models().values()) == {two_packaged / "learned", two_packaged / "learned-before"}
    default = LearnedCodec.load("default")
    assert default.model_id != before.model_id
    assert np.array_equal(default.decode(blob), before.decode(blob))
    assert np.array_equal(default.tokens(blob), before.tokens(blob))
    assert default.read_header(blob)[0].model_id == before.model_id[:4]
    (tmp_path / "t.eotok").write_bytes(blob)
    data, meta = default.decode_file(tmp_path / "t.eotok")
    assert meta["model_id"] == before.model_id.hex() and np.array_equal(data, before.decode(blob))
    # the new default's own files are its own
    own = default.encode_scene(window, quality=3)
    assert default.for_file(own) is default


def test_a_model_folder_of_ones_own_never_swaps_models(two_packaged, pisa, monkeypatch, tmp_path):
    before = LearnedCodec.load(two_packaged / "learned-before")
    blob = before.encode_scene(pisa.crop(0, 0, 64, 64), quality=5)
    monkeypatch.setattr(learned, "default_model_dir", lambda: two_packaged / "learned")
    mine = LearnedCodec.load(shutil.copytree(two_packaged / "learned", tmp_path / "mine"))  # outside the package
    assert mine.for_file(blob) is mine
    with pytest.raises(TokenStreamError, match="decode it with the model that made it"):
        mine.decode(blob)


@pytest.mark.parametrize("release", ["0.2", "0.3", "0.4"])
def test_the_shipped_default_decodes_token_files_of_earlier_releases(pisa, release):
    """The package keeps every earlier default beside the current one: their files decode with it, unchanged."""
    old = LearnedCodec.load(learned.default_model_dir().parent / f"learned-{release}")
    default = LearnedCodec.load("default")
    assert default.config.spectral == "klt" and old.config.spectral == ("bands" if release == "0.2" else "klt")
    assert default.model_id != old.model_id
    blob = old.encode_scene(pisa.crop(300, 300, 96, 160), ratio=450)
    assert default.for_file(blob) is not default
    assert np.array_equal(default.decode(blob), old.decode(blob))
