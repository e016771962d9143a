"""Codecs beyond the study: tc{B}, itq{d}, rot, rq{M} (round trips, exact sizes, saving, and real-data gains)."""

from __future__ import annotations

import numpy as np
import pytest

from eocompress.embeddings.codecs import Codec
from eocompress.embeddings.codecs.itq import random_orthogonal
from eocompress.embeddings.codecs.transform_coding import allocate_bits, lloyd_max
from eocompress.errors import SpecError


@pytest.fixture(scope="module")
def gen():
    """Correlated Gaussian vectors with a decaying spectrum (unit tests only, never accuracy claims)."""
    rng = np.random.default_rng(0)
    scales = np.geomspace(4.0, 0.05, 32)
    basis = random_orthogonal(32, 1)
    return ((rng.standard_normal((900, 32)) * scales) @ basis + 3.0).astype(np.float32)


@pytest.mark.parametrize("spec", ["tc4", "tc16", "itq32,binary", "itq16,binary", "rot,int4", "rot,int2",
                                  "pca16,rot,int4", "rq4", "tcrq8", "unit,tcrq6", "tcrq8h2x3"])
def test_round_trip_size_and_state(spec, gen):
    codec = Codec.from_spec(spec, seed=0).fit(gen[:600])
    codes = codec.encode(gen[600:])
    assert codes.dtype == np.uint8 and codes.shape == (300, codec.bytes_per_vector)
    X_hat = codec.decode(codes)
    assert X_hat.shape == (300, 32) and X_hat.dtype == np.float32 and np.isfinite(X_hat).all()
    again = Codec.from_state(*codec.get_state())
    assert np.array_equal(again.encode(gen[600:]), codes)
    assert np.allclose(again.decode(codes), X_hat, atol=1e-5)
    assert Codec.from_spec(spec).spec == codec.spec


def test_tc_error_falls_with_budget_and_beats_flat_pca(gen):
    train, test = gen[:600], gen[600:]

    def mse(spec):
        c = Codec.from_spec(spec).fit(train)
        return float(np.mean((c.decode(c.encode(test)) - test) ** 2))

    errs = [mse(f"tc{b}") for b in (2, 4, 8, 16)]
    assert errs == sorted(errs, reverse=True)
    assert mse("tc8") < mse("pca8,int8")


def test_tc_spends_exactly_its_bits(gen):
    q = Codec.from_spec("tc8").fit(gen).quantizer
    assert q.bits_.sum() <= 64 and q.bits_.min() >= 1 and q.bits_.max() <= 12
    assert q.bits_[0] >= q.bits_[-1]  # the leading component gets at least as many bits as the last


def test_allocate_bits_respects_budget_and_reaches_past_a_flat_first_bit():
    # component 1's first bit gains nothing but its next bits gain a lot (non-convex)
    dist = np.array([[1.0, 0.9, 0.85, 0.84, 0.83], [5.0, 5.0, 1.0, 0.2, 0.1]])
    bits = allocate_bits(dist, 3, max_bits=4)
    assert bits.sum() == 3 and bits[1] >= 2


def test_lloyd_max_beats_uniform_on_gaussian():
    v = np.random.default_rng(0).standard_normal(5000)
    levels, err = lloyd_max(v, 2)
    assert len(levels) == 4 and np.all(np.diff(levels) > 0)
    uniform = np.linspace(v.min(), v.max(), 4)
    err_u = np.mean((v - uniform[np.abs(v[:, None] - uniform).argmin(1)]) ** 2)
    assert err < err_u
    assert err == pytest.approx(0.1175, abs=0.01)  # the textbook 2-bit Lloyd-Max MSE for N(0, 1)


def test_rotations_are_orthogonal_and_itq_balances_bits(gen):
    q = random_orthogonal(16, 3)
    assert np.allclose(q @ q.T, np.eye(16), atol=1e-10)
    codec = Codec.from_spec("rot,float32").fit(gen)
    assert np.allclose(codec.decode(codec.encode(gen)), gen, atol=1e-4)
    itq = Codec.from_spec("itq16").fit(gen).transforms[0]
    z = itq.transform(gen)
    assert abs(float(np.mean(z > 0)) - 0.5) < 0.1


def test_bad_specs_are_explained():
    with pytest.raises(SpecError, match="itq64"):
        Codec.from_spec("itq64,binary").fit(np.zeros((100, 32), np.float32))
    with pytest.raises(SpecError, match="as much as float32"):
        Codec.from_spec("tc128").fit(np.random.default_rng(0).standard_normal((100, 32)).astype(np.float32))


def test_tcrq_halves_add_up_and_damaged_state_is_refused(gen):
    codec = Codec.from_spec("tcrq8").fit(gen[:600])
    tcrq = codec.quantizer
    codes = codec.encode(gen[600:])
    head = tcrq._tc.decode(codes[:, :4])
    # the residual half brings the vectors closer than the tc half alone
    assert np.mean((codec.decode(codes) - gen[600:]) ** 2) < 0.7 * np.mean((head - gen[600:]) ** 2)
    meta, arrays = codec.get_state()
    assert {k.split(".", 1)[1] for k in arrays} >= {"axes_", "tc.levels_", "rq.codebooks_"}
    bad = dict(arrays)
    bad["s0.axes_"] = arrays["s0.axes_"][:-1]
    with pytest.raises(Exception, match="axes_"):
        Codec.from_state(meta, bad)
    bad = dict(arrays)
    bad["s0.rq.codebooks_"] = arrays["s0.rq.codebooks_"][:-3]
    with pytest.raises(Exception, match="codebooks_"):
        Codec.from_state(meta, bad)
    for bad in ("tcrq1", "tcrq8h8", "tcrq8h0", "tcrq8x0"):
        with pytest.raises(SpecError, match="at least 2 bytes"):
            Codec.from_spec(bad)
    assert Codec.from_spec("tcrq8h4x4").spec == "tcrq8"  # the defaults spelt out are the default


@pytest.mark.slow
def test_tc_moves_the_recall_frontier_on_real_land_cover(data_root):
    """Real data: tc8 keeps more float32 neighbours than the study's pca8,int8 at the same 8 bytes."""
    from eocompress.embeddings.evaluation import load_dataset
    from eocompress.embeddings.evaluation.evaluate import Evaluator

    ds = load_dataset(data_root / "embeddings/presto_lulc_slovenia.npz")
    ev = Evaluator(ds, linear_cv="off")
    theirs, ours = ev.evaluate("pca8,int8"), ev.evaluate("tc8")
    assert theirs["bytes_per_vector"] == ours["bytes_per_vector"] == 8
    assert theirs["recall_at_10"] == pytest.approx(0.83, abs=0.01)  # the figure quoted in the issue
    assert ours["recall_at_10"] > theirs["recall_at_10"] + 0.01
    assert ours["knn_acc"] >= theirs["knn_acc"] - 0.005
