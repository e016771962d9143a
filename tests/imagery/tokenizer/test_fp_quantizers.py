"""The poster's quantizers inside the learned transform codec: train, token files, learned prior, token export."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from _cli import run_cli
from eocompress.errors import InputError
from eocompress.imagery.codec.learned import LearnedCodec
from eocompress.imagery.codec.learned_format import VERSION, VERSION_DISCRETE, Header, TokenStreamError, unseal
from eocompress.imagery.places import held_out_scenes, training_scenes
from eocompress.imagery.readers.scenes import read_scene
from eocompress.imagery.tokenizer.fp_model import FactorizedPriorTokenizer, FPConfig
from eocompress.imagery.tokenizer.fp_quantizers import QUANTIZER_CODES, FiniteScalarQuantizer
from eocompress.imagery.tokenizer.fp_train import PRIOR_LR_SCALE, export_model, rd_loss
from eocompress.imagery.tokenizer.standardise import standardise

DISCRETE = ("fsq", "vq", "dvq", "gsq", "rvq")
SMALL = {"channels": [8, 8, 8], "latent": 16, "groups": 2, "codebook": 32, "codebook_dim": 4, "levels": [4, 4, 3]}


@pytest.fixture(scope="module")
def scenes(data_root):
    """A real training scene and a real held-out L2A scene (12 bands, DN)."""
    bands = FPConfig().bands
    train = read_scene(training_scenes(data_root / "imagery")[0], bands=bands).data
    held = read_scene(held_out_scenes(data_root / "imagery")["l2a_264"][0], bands=bands)
    return train, held.data, int(held.offset)


def _crops(dn: np.ndarray, n: int, size: int = 32, seed: int = 0) -> torch.Tensor:
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        r, c = rng.integers(0, dn.shape[1] - size), rng.integers(0, dn.shape[2] - size)
        x = dn[:, r : r + size, c : c + size].astype(np.float32)
        out.append(standardise(x, np.all(x > 0, axis=0))[0])
    return torch.from_numpy(np.stack(out))


def _trained(quantizer: str, train: np.ndarray, steps: int, folder) -> LearnedCodec:
    """A small model with ``quantizer`` trained ``steps`` steps on real crops, exported and loaded as a codec."""
    torch.manual_seed(0)
    cfg = FPConfig(quantizer=quantizer, **SMALL)
    model = FactorizedPriorTokenizer(cfg)
    prior = list(model.prior.parameters())
    rest = [p for p in model.parameters() if all(p is not q for q in prior)]
    opt = torch.optim.Adam([{"params": rest}, {"params": prior, "lr": 1e-3 * PRIOR_LR_SCALE}], lr=1e-3)
    for step in range(steps):
        loss, _, _ = rd_loss(model, cfg, _crops(train, 4, seed=step), torch.ones(4))
        assert torch.isfinite(loss)
        opt.zero_grad()
        loss.backward()
        opt.step()
    export_model(model, cfg, folder)
    return LearnedCodec.load(folder)


@pytest.mark.parametrize("quantizer", DISCRETE)
def test_each_quantizer_trains_and_round_trips_a_token_file(quantizer, scenes, tmp_path):
    train, held, offset = scenes
    codec = _trained(quantizer, train, 3, tmp_path / quantizer)
    blob = codec.encode(held, quality=5, offset=offset)
    head, _ = Header.from_bytes(unseal(blob, "t"), 12, "t")
    assert (head.version, head.quantizer) == (VERSION_DISCRETE, QUANTIZER_CODES[quantizer])
    out = codec.decode(blob)
    assert out.shape == held.shape and out.dtype == np.uint16
    assert np.array_equal(out, codec.decode(blob))  # deterministic
    # the tokens are the model's own indices of the scene, in range, as a token model gets them
    idx, sizes = codec.token_indices(blob)
    assert idx.shape == (17, 17, 2) and idx.dtype == np.int32
    assert sizes == [codec.model.quantizer.codebook_size] * 2
    assert idx.min() >= 0 and idx.max() < sizes[0]
    assert np.array_equal(idx.transpose(2, 0, 1), codec.tokens(blob))
    # decode from the tokens is the synthesis of the codebook entries
    lat = codec.model.quantizer.latent_np(codec.tokens(blob), torch.device("cpu"))
    assert lat.shape == (16, 17, 17)


def test_learned_prior_codes_indices_below_fixed_width_on_real_data(scenes, tmp_path):
    train, held, offset = scenes
    codec = _trained("vq", train, 20, tmp_path / "vq")
    blob = codec.encode(held, quality=5, offset=offset)
    _, pos = codec.read_header(blob)
    payload = len(blob) - pos - 4
    fixed = codec.fixed_length_bytes(blob)  # 2 groups x 5 bits x 17 x 17 positions
    assert fixed == -(-2 * 5 * 17 * 17 // 8)
    assert payload < 0.95 * fixed, (payload, fixed)


def test_one_rate_model_refuses_a_ratio_it_cannot_meet(scenes, tmp_path):
    train, held, offset = scenes
    codec = _trained("fsq", train, 1, tmp_path / "fsq")
    size = len(codec.encode(held, quality=1, offset=offset))
    raw = held.size * 2
    assert len(codec.encode(held, ratio=raw / size * 0.9, offset=offset)) == size
    with pytest.raises(InputError, match="one rate"):
        codec.encode(held, ratio=raw / size * 2, offset=offset)


def test_a_file_of_another_quantizer_is_refused_in_one_line(scenes, tmp_path):
    train, held, offset = scenes
    vq = _trained("vq", train, 1, tmp_path / "vq")
    gsq = _trained("gsq", train, 1, tmp_path / "gsq")
    gsq.model_id = vq.model_id  # same id, other quantizer: the header's quantizer byte still tells them apart
    with pytest.raises(TokenStreamError, match="holds vq tokens"):
        gsq.decode(vq.encode(held, quality=1, offset=offset))


def test_scalar_model_still_writes_version_2_and_exports_channel_indices(scenes):
    _, held, offset = scenes
    codec = LearnedCodec.load("default")
    blob = codec.encode(held[:, :64, :64], quality=5, offset=offset)
    head, _ = Header.from_bytes(unseal(blob, "t"), 12, "t")
    assert (head.version, head.quantizer) == (VERSION, 0)
    idx, sizes = codec.token_indices(blob)
    assert idx.shape == (4, 4, codec.config.latent) and idx.dtype == np.int32
    assert (idx >= 0).all() and (idx < np.array(sizes)).all()


def test_terramind_fsq_layout_indices_cover_its_15360_codes():
    q = FiniteScalarQuantizer(latent=8, groups=1)  # 8-8-8-6-5 by default
    assert q.codebook_size == 8 * 8 * 8 * 6 * 5 == 15360
    every = torch.arange(15360).reshape(1, 1, 1, -1).permute(0, 1, 3, 2)  # (1, G=1, 15360, 1)
    codes = q.codes(every)  # grid values of every index
    _, back, _ = q.quantize(_inverse_bound(q, codes))  # and back: the same indices
    assert torch.equal(back, every)


def _inverse_bound(q: FiniteScalarQuantizer, codes: torch.Tensor) -> torch.Tensor:
    """Pre-bound values whose bounded, rounded value is ``codes`` (checks index <-> code both ways)."""
    lv = q._levels.view(1, -1, 1, 1)
    half_l = (lv - 1) * (1 + 1e-3) / 2
    offset = torch.where(lv % 2 == 0, 0.5, 0.0)
    target = codes * torch.div(lv, 2, rounding_mode="floor")  # rounded grid values
    return torch.atanh((target + offset) / half_l) - torch.atanh(offset / half_l)


def test_unknown_quantizer_is_refused():
    with pytest.raises(ValueError, match="choose one of"):
        FPConfig(quantizer="pq")


def test_train_command_takes_a_quantizer_and_its_model_encodes_and_exports_tokens(data_root, tmp_path, capsys):
    scenes = [str(data_root / "imagery/hydro/patch_0.tif"), str(data_root / "imagery/hydro/patch_10.tif")]
    out = tmp_path / "fsq"
    small = ["--crop", "32", "--batch-size", "2", "--channels", "4,4,4", "--latent", "8", "--steps", "2"]
    run = run_cli(["tokenizer", "train", *scenes, "-o", str(out), *small, "--quantizer", "fsq", "--groups", "1"],
                  capsys)
    assert run.code == 0, run.text
    codec = LearnedCodec.load(out)
    assert (codec.config.quantizer, codec.config.groups, codec.config.levels) == ("fsq", 1, [8, 8, 8, 6, 5])
    tok = tmp_path / "p.eotok"
    assert run_cli(["imagery", "encode", scenes[0], "-o", str(tok), "--model", str(out), "--ratio", "100"],
                   capsys).code == 0
    run = run_cli(["imagery", "tokens", str(tok), "-o", str(tmp_path / "t.npy"), "--model", str(out), "--json"],
                  capsys)
    assert run.code == 0, run.text
    report = json.loads(run.out)
    assert report["vocabulary"] == 15360 and report["shape"][2] == 1 and report["quantizer"] == "fsq"


@pytest.mark.parametrize(
    "args, words",
    [(["--quantizer", "pq"], "--quantizer must be one of"), (["--quantizer", "vq", "--codebook", "1"], "codebook"),
     (["--quantizer", "fsq", "--levels", "8,x"], "--levels")],
)
def test_bad_quantizer_settings_are_one_line(args, words, tmp_path, capsys):
    run = run_cli(["tokenizer", "train", "-o", str(tmp_path / "m"), *args], capsys)
    assert run.code != 0 and words in run.text
    assert not (tmp_path / "m").exists()
