"""Tokenizer units on small generated arrays: config arithmetic and checks, quantizers, losses, metrics."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from eocompress.imagery.evaluation.fidelity import reflectance_psnr as psnr
from eocompress.imagery.evaluation.fidelity import reflectance_sam as sam_degrees
from eocompress.imagery.tokenizer.config import ConfigError, TokenizerConfig
from eocompress.imagery.tokenizer.losses import masked_recon_loss, masked_sam_loss, spectral_angle
from eocompress.imagery.tokenizer.model import VQTokenizerModel
from eocompress.imagery.tokenizer.quantizers import build_quantizer, codebook_stats


def small(**kw) -> TokenizerConfig:
    base = dict(
        quantizer="gsq",
        channels=[8, 16, 16],
        downsample=4,
        latent_dim=8,
        groups=2,
        codebook_size=32,
        tile_size=16,
        batch_size=4,
    )
    base.update(kw)
    return TokenizerConfig(**base)


def test_compression_ratio_matches_the_formula():
    cfg = TokenizerConfig(quantizer="gsq", downsample=8, groups=2, codebook_size=8192, latent_dim=32)
    assert cfg.bits_per_index == 13
    assert cfg.compression_ratio == pytest.approx(8**2 * 12 * 16 / (2 * 13))  # 472.6x (ANCHORS example)
    fsq = TokenizerConfig(quantizer="fsq", fsq_levels=[8, 8, 8, 6, 5], groups=1, latent_dim=5)
    assert fsq.effective_codebook_size == 15360 and fsq.bits_per_index == 14


def test_config_errors_name_the_fix():
    with pytest.raises(ConfigError, match="does not divide latent_dim"):
        TokenizerConfig(quantizer="gsq", latent_dim=30, groups=4)
    with pytest.raises(ConfigError, match="fsq with 5 levels"):
        TokenizerConfig(quantizer="fsq", latent_dim=32, groups=2)
    with pytest.raises(ConfigError, match="unknown quantizer"):
        TokenizerConfig(quantizer="pq")
    with pytest.raises(ConfigError, match="downsample"):
        TokenizerConfig(quantizer="gsq", latent_dim=8, downsample=6)
    with pytest.raises(ConfigError, match="unknown settings"):
        TokenizerConfig.from_dict({"codebook": 5})


def test_config_json_round_trip(tmp_path):
    cfg = small(quantizer="dvq", normalization={"mean": [0.1] * 12, "std": [0.2] * 12})
    path = tmp_path / "config.json"
    path.write_text(cfg.to_json())
    back = TokenizerConfig.from_json(path)
    assert back == cfg
    assert json.loads(path.read_text())["derived"]["indices_per_position"] == 2


@pytest.mark.parametrize("name", ["vq", "gsq", "dvq", "fsq"])
def test_quantizer_interface(name):
    torch.manual_seed(0)
    cfg = small(quantizer=name, latent_dim=10 if name == "fsq" else 8, fsq_levels=[5, 5, 5, 4, 4])
    q = build_quantizer(cfg)
    z = torch.randn(3, cfg.latent_dim, 4, 5, requires_grad=True)
    out = q(z)
    assert out.quantized.shape == z.shape
    assert out.indices.shape == (3, 2, 4, 5) and out.indices.dtype == torch.int64
    assert out.indices.min() >= 0 and out.indices.max() < cfg.effective_codebook_size
    assert 0 < out.stats["utilisation"] <= 1 and out.stats["perplexity"] >= 1
    # straight-through: gradients reach the latent
    (out.quantized.sum() + out.loss).backward()
    assert z.grad is not None and z.grad.abs().sum() > 0
    # decoding from indices gives the quantized latent back
    q.eval()
    with torch.no_grad():
        again = q(z.detach())
        np.testing.assert_allclose(q.lookup(again.indices).numpy(), again.quantized.numpy(), atol=1e-5)


@pytest.mark.parametrize("name", ["vq", "dvq", "gsq"])
def test_single_group_keeps_the_group_axis(name):
    q = build_quantizer(small(quantizer=name, groups=1, latent_dim=8))
    out = q(torch.randn(2, 8, 3, 3))
    assert out.indices.shape == (2, 1, 3, 3)
    q.eval()
    assert q.lookup(q(torch.randn(2, 8, 3, 3)).indices).shape == (2, 8, 3, 3)


def test_gsq_shares_one_normalised_codebook():
    cfg = small(quantizer="gsq", groups=4, latent_dim=16, codebook_size=64)
    q = build_quantizer(cfg)
    assert q.codebook.shape == (64, 4)  # ONE codebook, entries of size d = D / G
    np.testing.assert_allclose(q.codebook.norm(dim=1).detach().numpy(), 1.0, atol=1e-5)
    out = q(torch.randn(2, 16, 3, 3))
    groups = out.quantized.permute(0, 2, 3, 1).reshape(-1, 4, 4)
    np.testing.assert_allclose(groups.norm(dim=-1).detach().numpy(), 1.0, atol=1e-5)


def test_dvq_has_one_codebook_per_group():
    q = build_quantizer(small(quantizer="dvq", groups=2, latent_dim=8, codebook_size=16))
    assert q.vq._codebook.embed.shape == (2, 16, 4)
    q.train()
    q(torch.randn(4, 8, 4, 4))  # k-means init on the first batch
    assert bool(q.vq._codebook.initted)


def test_codebook_stats_on_known_indices():
    idx = torch.tensor([0, 0, 1, 1, 2, 3]).view(1, 1, 2, 3)
    stats = codebook_stats(idx, codebook_size=8)
    assert stats["utilisation"] == 0.5 and stats["dead_codes"] == 4
    probs = np.array([2, 2, 1, 1]) / 6
    assert stats["perplexity"] == pytest.approx(np.exp(-(probs * np.log(probs)).sum()), rel=1e-5)
    per_group = codebook_stats(torch.tensor([[[[0, 1]], [[2, 2]]]]), codebook_size=4, shared=False)
    assert per_group["utilisation"] == pytest.approx((2 / 4 + 1 / 4) / 2)


def test_model_shapes_for_each_downsampling():
    for f, ch in ((4, [8, 8, 8]), (8, [8, 8, 8, 8]), (16, [8, 8, 8, 8, 8])):
        model = VQTokenizerModel(small(downsample=f, channels=ch, tile_size=32))
        x = torch.rand(2, 12, 32, 32)
        idx = model.encode(x)
        assert idx.shape == (2, 2, 32 // f, 32 // f)
        assert model.decode(idx).shape == x.shape


def test_masked_losses_ignore_invalid_pixels():
    x = torch.rand(2, 12, 8, 8)
    y = x.clone()
    mask = torch.ones(2, 1, 8, 8)
    mask[:, :, :4] = 0
    y[:, :, :4] += 5.0  # errors only where the mask is 0
    assert masked_recon_loss(y, x, mask).item() == pytest.approx(0.0, abs=1e-7)
    assert masked_sam_loss(y, x, mask).item() == pytest.approx(0.0, abs=3e-3)
    assert masked_recon_loss(y, x, torch.ones_like(mask)).item() > 1


@settings(max_examples=25, deadline=None)
@given(st.floats(0.1, 10.0))
def test_spectral_angle_ignores_brightness(scale):
    x = torch.rand(1, 12, 3, 3) + 0.05
    assert spectral_angle(x * scale, x).max().item() < 3e-3  # acos clamp keeps gradients finite: ~0.1°


def test_metrics_psnr_and_sam():
    rng = np.random.default_rng(0)
    t = rng.uniform(0.05, 0.5, size=(2, 12, 8, 8)).astype(np.float32)
    p = t + 0.01
    assert psnr(p, t) == pytest.approx(40.0, abs=0.01)  # mse 1e-4, data range 1
    assert sam_degrees(t, t) == pytest.approx(0.0, abs=1e-3)
    assert sam_degrees(2 * t, t) == pytest.approx(0.0, abs=1e-3)
