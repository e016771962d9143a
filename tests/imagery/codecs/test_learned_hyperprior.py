"""A learned codec with a mean-scale hyperprior: the bin probabilities, the coder, token files and refusals."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from _cli import run_cli
from _tiny_models import train_tiny
from eocompress.imagery.codec.learned_format import TokenStreamError
from eocompress.imagery.codec.learned_hyperprior import HyperpriorCoder
from eocompress.imagery.places import held_out_suite
from eocompress.imagery.readers.scenes import read_scene
from eocompress.imagery.tokenizer.fp_model import FPConfig, gaussian_bin_probability


def test_gaussian_bins_sum_to_one_at_any_step_and_scale():
    k = torch.arange(-400, 401, dtype=torch.float64)
    for delta, mean, scale in ((0.35, 0.3, 0.05), (1.0, -2.2, 1.7), (4.0, 10.0, 30.0)):
        p = gaussian_bin_probability(k * delta, torch.tensor(mean), torch.tensor(scale), delta)
        assert abs(float(p.sum()) - 1) < 1e-6
        assert int(torch.argmax(p)) - 400 == round(mean / delta)


@pytest.fixture(scope="module")
def hyper_model(data_root, tmp_path_factory):
    """A tiny hyperprior model trained a few steps through the CLI on real training scenes."""
    return train_tiny(data_root, tmp_path_factory.mktemp("hyper") / "model", "--hyperprior", "8", steps=3)


@pytest.fixture(scope="module")
def coast(data_root):
    """A real held-out coast scene (water and city), 12 bands, centre 200 x 232 window."""
    scene = next(s for s in held_out_suite(data_root / "imagery") if s.kind == "coast")
    return read_scene(scene.path, bands=FPConfig().bands).crop(100, 100, 200, 232)


def test_hyperprior_token_files_round_trip_stream_and_meet_the_ratio(hyper_model, coast):
    assert isinstance(hyper_model.entropy, HyperpriorCoder)
    blob = hyper_model.encode(coast.data, ratio=300, valid=coast.valid)
    assert len(blob) <= coast.data.nbytes / 300
    streamed = hyper_model.encode_windows(lambda r, c, h, w: coast.data[:, r : r + h, c : c + w],
                                          coast.data.shape, ratio=300, valid=coast.valid)
    assert streamed == blob
    tokens = hyper_model.tokens(blob)
    assert tokens.shape == (8, 13, 15) and tokens.dtype == np.int32
    out = hyper_model.decode(blob)
    assert out.shape == coast.data.shape and out.dtype == np.uint16
    assert np.array_equal(out, hyper_model.decode(blob))
    assert np.array_equal(out[:, 40:90, 60:100], hyper_model.decode(blob, window=(40, 60, 50, 40)))
    idx, sizes = hyper_model.token_indices(blob)
    assert idx.shape == (13, 15, 8) and sizes == [4095] * 8
    assert np.array_equal(idx.transpose(2, 0, 1) - 2047, tokens)


def test_a_machine_that_predicts_other_statistics_is_refused_in_one_line(hyper_model, coast, monkeypatch):
    blob = hyper_model.encode(coast.data, quality=5, valid=coast.valid)
    coder = hyper_model.entropy
    real = coder.mean_scale

    def drifted(z, h, w):  # another machine's float rounding, exaggerated
        mean, scale = real(z, h, w)
        return mean + np.float32(0.37) * hyper_model.delta_for_quality(5), scale

    monkeypatch.setattr(coder, "mean_scale", drifted)
    with pytest.raises(TokenStreamError, match="predicts other token statistics"):
        hyper_model.decode(blob)


def test_refinement_under_the_hyperprior_lowers_its_objective_and_keeps_the_ratio(hyper_model, coast):
    """--refine works with a hyperprior: the rate term is each token's Gaussian, the side information stays."""
    from eocompress.imagery.codec import latent_refinement
    from eocompress.imagery.tokenizer.standardise import apply_standardise

    plain = hyper_model.encode(coast.data, quality=10, valid=coast.valid)
    assert hyper_model.encode(coast.data, quality=10, valid=coast.valid, refine_steps=0) == plain
    refined = hyper_model.encode(coast.data, quality=10, valid=coast.valid, refine_steps=12)
    assert hyper_model.decode(refined).shape == coast.data.shape
    assert not np.array_equal(hyper_model.tokens(refined), hyper_model.tokens(plain))
    head, _ = hyper_model.read_header(plain)
    z = apply_standardise(coast.data.astype(np.float32), head.means, head.scale, head.valid)
    with torch.no_grad():
        y = hyper_model.model.analysis(torch.from_numpy(z)[None])[0].numpy()
    coder = hyper_model.entropy
    side_z = coder.side(y)
    side = (side_z, *coder.mean_scale(side_z, *y.shape[1:]))
    h, w = coast.shape

    def objective(blob):
        lat = hyper_model.tokens(blob).astype(np.float32) * np.float32(head.delta)
        return latent_refinement.rd_objective(hyper_model.model, lambda r0, r1, c0, c1: z[:, r0:r1, c0:c1], lat,
                                              head.delta, head.valid, list(range(12)), h, w, side=side)[0]

    assert objective(refined) < objective(plain)
    with pytest.raises(ValueError, match="side information"):
        latent_refinement.rd_objective(hyper_model.model, lambda *a: z, y, head.delta, None, [0], h, w)
    blob = hyper_model.encode(coast.data, ratio=300, valid=coast.valid, refine_steps=3)
    assert len(blob) <= coast.data.nbytes / 300


def test_non_scalar_quantizers_refuse_a_hyperprior(tmp_path, capsys):
    run = run_cli(["tokenizer", "train", "-o", str(tmp_path / "m"), "--hyperprior", "8", "--quantizer", "fsq"], capsys)
    assert run.code != 0 and "--hyperprior" in run.text
    assert not (tmp_path / "m").exists()
    with pytest.raises(ValueError, match="scalar quantizer"):
        FPConfig(hyperprior=8, quantizer="vq")


def test_rate_aware_rounding_under_the_gaussians_trades_error_for_bits(hyper_model):
    """Each token goes one step down or up from the latent, whichever costs less error² + weight x its bits."""
    from eocompress.imagery.codec.learned_hyperprior import _gaussian_bits

    coder, model, delta, weight = hyper_model.entropy, hyper_model.model, 0.8, 0.1
    rng = np.random.default_rng(3)
    y = rng.normal(0, 2.5, (8, 6, 7)).astype(np.float32)
    mean = rng.normal(0, 1, y.shape).astype(np.float32)
    scale = rng.uniform(0.1, 3, y.shape).astype(np.float32)
    side = (None, mean, scale)
    plain = coder.quantise(model, y, delta, weight=0.0, side=side)
    assert np.array_equal(plain, np.rint(y / np.float32(delta)).astype(np.int32))
    assert np.array_equal(coder.quantise(model, y, delta), plain)  # no side information: plain rounding
    tokens = coder.quantise(model, y, delta, weight=weight, side=side)
    q = y / np.float32(delta)
    assert np.all((tokens == np.floor(q)) | (tokens == np.floor(q) + 1))
    assert 0 < np.count_nonzero(tokens != plain) < tokens.size // 4

    def cost(t):
        mu, sd, _ = coder._coded(mean, scale, delta)  # the grid the coder codes with
        return (q.ravel() - t.ravel()) ** 2 + weight * _gaussian_bits(t.ravel().astype(np.float64), mu, sd)

    assert np.all(cost(tokens) <= cost(plain) + 1e-9)
    assert np.all(cost(tokens) <= cost(np.where(tokens == plain, 2 * np.floor(q) + 1 - tokens, plain)) + 1e-9)


def test_the_encoder_rounds_with_the_scenes_own_side_information(hyper_model, coast, monkeypatch):
    coder, seen = hyper_model.entropy, []
    real = coder.quantise

    def spy(model, y, delta, **kw):
        seen.append((y.shape, kw.get("side")))
        return real(model, y, delta, **kw)

    monkeypatch.setattr(coder, "quantise", spy)
    blob = hyper_model.encode(coast.data, quality=10, valid=coast.valid)
    shape, side = seen[-1]
    z, mean, scale = side
    assert shape == mean.shape == scale.shape == (8, 13, 15) and z.shape == (8, 4, 4)
    assert np.all(scale > 0)
    assert hyper_model.tokens(blob).shape == shape


def test_scenes_whose_predicted_scales_are_too_wide_get_each_channels_factor(hyper_model, coast, monkeypatch):
    """Predictions 4x too wide (a briefly trained hyperprior at a coarse step): the file narrows them per channel,
    carries the factors in its header, is smaller, and decodes to the same tokens."""
    coder = hyper_model.entropy
    real = coder.mean_scale
    monkeypatch.setattr(coder, "mean_scale", lambda z, h, w: (real(z, h, w)[0], 4 * real(z, h, w)[1]))
    fitted = hyper_model.encode(coast.data, quality=10, valid=coast.valid)
    head, _ = hyper_model.read_header(fitted)
    assert head.prior_scales is not None and np.all(head.prior_scales < 8)  # narrower than predicted
    monkeypatch.setattr(coder, "fit_scales", lambda tokens, delta, side=None: None)
    unfitted = hyper_model.encode(coast.data, quality=10, valid=coast.valid)
    assert hyper_model.read_header(unfitted)[0].prior_scales is None
    assert len(fitted) < len(unfitted)
    assert np.array_equal(hyper_model.tokens(fitted), hyper_model.tokens(unfitted))  # only the coding differs
    assert np.array_equal(hyper_model.decode(fitted), hyper_model.decode(unfitted))
