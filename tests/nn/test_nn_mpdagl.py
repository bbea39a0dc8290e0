"""spikegrad.nn.MPDAGL (the MPD-AGL paper) and its width schedule (spikegrad.ref.mpdagl): Eq. 7 by
hand, the layer against the reference in train and eval, the PLIF gradient against finite
differences with the width held fixed (lam is detached in Eq. 7), errors."""

import math

import numpy as np
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

torch = pytest.importorskip("torch")

from spikegrad import nn as snn  # noqa: E402
from spikegrad import ref  # noqa: E402

from conftest import examples  # noqa: E402
from nn_cases import check_window, layer_input, upstream, value_in  # noqa: E402


def test_widths_eq7_by_hand():
    """lam = 0.2, gbar = 1, V_th = 0.5: kappa[0] = 1 (the standard rectangle), kappa[t>0] =
    sqrt(1.04) = 1.0198039027185568; gbar = 2 doubles both."""
    widths = ref.mpdagl.surrogate_widths(3, 0.2, 1.0, 0.5)
    assert widths[0] == 1.0
    assert widths[1] == widths[2] == pytest.approx(1.0198039027185568, rel=1e-15)
    assert ref.mpdagl.surrogate_widths(2, 0.2, 2.0, 0.5).tolist() == \
        (2 * ref.mpdagl.surrogate_widths(2, 0.2, 1.0, 0.5)).tolist()
    # the released code's reading: only 1 + lam^2 under the root (not the paper's print)
    assert ref.mpdagl.surrogate_widths(2, 0.5, 4.0, 0.5)[1] == pytest.approx(
        2 * math.sqrt(1.25) * 4.0 * 0.5, rel=1e-15)
    assert ref.mpdagl.surrogate_widths(1, 0.5, 4.0, 0.5).tolist() == [4.0]


@settings(max_examples=examples(100))
@given(data=layer_input(0.5), decay=st.one_of(st.just(0.2), st.floats(0.01, 0.99)),
       learn_decay=st.booleans(), training=st.booleans(),
       gamma_bar=st.one_of(st.just(1.0), st.floats(0.05, 5.0)))
@example(data=(np.full((1, 1, 1), 0.5, np.float32), 0), decay=0.2, learn_decay=False,
         training=True, gamma_bar=1.0)                      # T = N = 1, exactly at V_th
@example(data=(np.full((4, 2, 3), -3.0, np.float64), 1), decay=0.9, learn_decay=True,
         training=False, gamma_bar=1e-3)                    # negative input, tiny width
def test_mpdagl_matches_reference(data, decay, learn_decay, training, gamma_bar):
    x_np, seed = data
    layer = snn.MPDAGL(decay=decay, learn_decay=learn_decay)
    if x_np.dtype == np.float64:
        layer = layer.double()
    layer.train(training)
    layer.record_diagnostics = True
    x = torch.from_numpy(x_np).requires_grad_()
    out = layer(x, gamma_bar=gamma_bar)
    T = x_np.shape[0]
    lam = value_in(layer.decay, x_np.dtype)
    expected = ref.mpdagl.forward(x_np.reshape(T, -1), decay=lam, v_th=0.5,
                                  gamma_bar=gamma_bar)
    assert np.array_equal(layer.diagnostics["sg_width"].numpy(), expected.sg_param)
    check_window(out, x, expected, upstream(x_np, seed), "MPDAGL")


def test_width_reaches_the_backward():
    """One neuron, V_th = 0.5, x = 0.2 at t = 0 (z = -0.3): with gbar = 0.5 the width is
    0.5 (|z| >= 0.25, no gradient); with gbar = 1 it is 1 (|z| < 0.5, gradient 1)."""
    layer = snn.MPDAGL()
    for gbar, expected in ((0.5, 0.0), (1.0, 1.0)):
        x = torch.tensor([[[0.2]]], requires_grad=True)
        layer(x, gamma_bar=gbar).sum().backward()
        assert x.grad.item() == expected


@settings(max_examples=examples(6))
@given(seed=st.integers(0, 2**16), gamma_bar=st.sampled_from([0.7, 1.0, 1.6]))
def test_decay_gradient_matches_finite_differences(seed, gamma_bar):
    """Smooth mode, float64. Eq. 7 detaches lam, so the check holds the widths at their
    value for the unperturbed w (otherwise the smooth forward would move with them)."""
    layer = snn.MPDAGL(decay=0.3, learn_decay=True).double()
    layer.smooth = True
    rng = np.random.default_rng(seed)
    x = torch.from_numpy(rng.normal(0.3, 0.6, (4, 2, 3)))
    g = torch.from_numpy(rng.normal(size=(4, 2, 3)))
    frozen = layer.widths(4, float(layer.decay.detach()), gamma_bar)
    layer.widths = lambda T, lam, gbar: frozen

    def loss(w):
        return (torch.func.functional_call(layer, {"w": w}, (x, gamma_bar)) * g).sum()

    w = layer.w.detach().clone().requires_grad_()
    assert torch.autograd.gradcheck(loss, (w,), eps=1e-6, atol=1e-7, rtol=1e-5)


def test_with_tdbn_gamma_bar():
    torch.manual_seed(1)
    bn = snn.tdBatchNorm(3, v_th=0.5)
    with torch.no_grad():
        bn.weight.copy_(torch.tensor([0.5, 1.0, 2.1]))
    assert snn.gamma_bar(bn) == pytest.approx(3.6 / 3, rel=1e-7)
    layer = snn.MPDAGL()
    layer.record_diagnostics = True
    layer(bn(torch.randn(2, 4, 3)), gamma_bar=snn.gamma_bar(bn))
    assert layer.diagnostics["sg_width"][0].item() == pytest.approx(1.2, rel=1e-6)


def test_state_dict_round_trip():
    layer = snn.MPDAGL(learn_decay=True)
    with torch.no_grad():
        layer.w.add_(0.5)
    fresh = snn.MPDAGL(learn_decay=True)
    fresh.load_state_dict(layer.state_dict())
    assert set(layer.state_dict()) == {"w"}
    x = torch.randn(3, 2, 5)
    assert torch.equal(layer(x, gamma_bar=1.3), fresh(x, gamma_bar=1.3))


@pytest.mark.parametrize("gamma_bar, error", [
    (0.0, ValueError), (-1.0, ValueError), (float("nan"), ValueError),
    (float("inf"), ValueError), (torch.zeros(()), ValueError), (torch.ones(2), ValueError),
    ("1", TypeError)])
def test_gamma_bar_errors(gamma_bar, error):
    with pytest.raises(error, match="gamma_bar"):
        snn.MPDAGL()(torch.zeros(2, 1, 1), gamma_bar=gamma_bar)


@pytest.mark.parametrize("kwargs, match", [
    (dict(v_th=0.0), "v_th"), (dict(decay=1.2), "decay"),
    (dict(decay=1.0, learn_decay=True), "decay")])
def test_constructor_errors(kwargs, match):
    with pytest.raises(ValueError, match=match):
        snn.MPDAGL(**kwargs)
