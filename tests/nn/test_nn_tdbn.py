"""spikegrad.nn.tdBatchNorm against a direct float64 NumPy transcription of the MPD-AGL paper
Eqs. 5-6 (spikegrad.ref.tdbn), in training and evaluation, and gamma_bar.

Tolerance: both sides compute in float64 and differ only in the order of the per-channel
sums and where alpha * V_th multiplies; the bound, (n + 16) eps times the scale of y's
terms, is stated once in spikegrad.tools.verify_layers.tdbn_bound."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

torch = pytest.importorskip("torch")

from spikegrad import nn as snn  # noqa: E402
from spikegrad import ref  # noqa: E402

from spikegrad.tools.verify_layers import tdbn_bound  # noqa: E402

from conftest import examples  # noqa: E402

EPS64 = float(np.finfo(np.float64).eps)



def _assert_close(actual, expected, bound, what):
    diff = np.abs(np.asarray(actual) - np.asarray(expected)).max()
    assert diff <= bound, f"{what}: |diff| {diff:.3g} > bound {bound:.3g}"


@settings(max_examples=examples(40))
@given(T=st.integers(1, 4), B=st.integers(1, 3), C=st.integers(1, 4),
       spatial=st.sampled_from([(), (3,), (2, 3)]), alpha=st.sampled_from([1.0, 0.5, 2.0]),
       v_th=st.sampled_from([1.0, 0.5, 0.3]), seed=st.integers(0, 2**16))
def test_tdbn_matches_numpy_transcription(T, B, C, spatial, alpha, v_th, seed):
    rng = np.random.default_rng(seed)
    shape = (T, B, C) + spatial
    n = T * B * int(np.prod(spatial, dtype=int))
    if n < 2:
        return  # training needs two values per channel (tested in test_errors)
    bn = snn.tdBatchNorm(C, alpha=alpha, v_th=v_th).double()
    gamma, beta = rng.normal(1, 0.5, C), rng.normal(0, 0.5, C)
    with torch.no_grad():
        bn.weight.copy_(torch.from_numpy(gamma))
        bn.bias.copy_(torch.from_numpy(beta))
    running_mean, running_var = np.zeros(C), np.ones(C)
    for step in range(2):
        x = rng.normal(rng.normal(0, 3), rng.uniform(0.1, 5), shape)
        y = bn(torch.from_numpy(x)).detach().numpy()
        expected, mean, var = ref.tdbn.forward(x, gamma, beta, alpha=alpha, v_th=v_th)
        bound = tdbn_bound(x, gamma, beta, var, n=n, alpha=alpha, v_th=v_th)
        _assert_close(y, expected, bound, f"train step {step}")
        running_mean, running_var = ref.tdbn.update_running(running_mean, running_var,
                                                            mean, var, n)
        sum_bound = (n + 16) * EPS64     # a float64 mean / variance in another order
        _assert_close(bn.running_mean.numpy(), running_mean, sum_bound * np.abs(x).max(),
                      "running mean")
        _assert_close(bn.running_var.numpy(), running_var,
                      sum_bound * (running_var.max() + 4 * np.abs(x).max() ** 2),
                      "running var")
    bn.eval()
    x = rng.normal(0, 2, shape)
    y = bn(torch.from_numpy(x)).detach().numpy()
    expected = ref.tdbn.forward_eval(x, gamma, beta, bn.running_mean.numpy(),
                                     bn.running_var.numpy(), alpha=alpha, v_th=v_th)
    _assert_close(y, expected, tdbn_bound(x, gamma, beta, bn.running_var.numpy(), n=1,
                                          alpha=alpha, v_th=v_th), "eval")


def test_tdbn_by_hand():
    """One channel, values (1, 3) over T = 2: mean 2, biased var 1; alpha V_th = 0.5, so
    x_hat = 0.5 * (-1, 1) / sqrt(1 + eps); gamma = 2, beta = 1 -> 1 -+ 1 / sqrt(1 + eps).
    Running: mean 0.1 * 2 = 0.2, var 0.9 + 0.1 * 2 (unbiased: 1 * 2 / 1) = 1.1."""
    bn = snn.tdBatchNorm(1, alpha=1.0, v_th=0.5, eps=1e-5).double()
    with torch.no_grad():
        bn.weight.fill_(2.0)
        bn.bias.fill_(1.0)
    y = bn(torch.tensor([1.0, 3.0], dtype=torch.float64).reshape(2, 1, 1))
    d = 1 / np.sqrt(1 + 1e-5)
    assert y.flatten().tolist() == pytest.approx([1 - d, 1 + d], rel=1e-15)
    assert bn.running_mean.item() == pytest.approx(0.2, rel=1e-15)
    assert bn.running_var.item() == pytest.approx(1.1, rel=1e-15)


def test_gamma_bar():
    bn = snn.tdBatchNorm(4)
    with torch.no_grad():
        bn.weight.copy_(torch.tensor([0.5, 1.5, 2.0, 4.0]))
    assert snn.gamma_bar(bn) == 2.0
    assert snn.gamma_bar(snn.tdBatchNorm(3, affine=False)) == 1.0
    assert snn.gamma_bar(torch.nn.BatchNorm2d(2)) == 1.0
    with pytest.raises(TypeError, match="bn"):
        snn.gamma_bar(torch.nn.Linear(2, 2))


def test_state_dict_round_trip():
    bn = snn.tdBatchNorm(3, v_th=0.5)
    bn(torch.randn(4, 2, 3, 5))
    fresh = snn.tdBatchNorm(3, v_th=0.5)
    fresh.load_state_dict(bn.state_dict())
    assert {"weight", "bias", "running_mean", "running_var"} <= set(bn.state_dict())
    bn.eval(), fresh.eval()
    x = torch.randn(2, 2, 3, 5)
    assert torch.equal(bn(x), fresh(x))


def test_errors():
    with pytest.raises(ValueError, match="C = 3"):
        snn.tdBatchNorm(3)(torch.zeros(2, 2, 4))
    with pytest.raises(ValueError, match="more than one value"):
        snn.tdBatchNorm(3)(torch.zeros(1, 1, 3))
    for kwargs, match in ((dict(v_th=0.0), "v_th"), (dict(alpha=-1.0), "alpha"),
                          (dict(momentum=2.0), "momentum")):
        with pytest.raises(ValueError, match=match):
            snn.tdBatchNorm(3, **kwargs)
    with pytest.raises(ValueError, match="num_features"):
        snn.tdBatchNorm(0)
