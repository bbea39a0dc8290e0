"""spikegrad.nn.TrLIF (MP-Init + TrSG, the MP-Init/TrSG paper; AS-SG / RS-SG baselines): the layer
against spikegrad.ref.mp_init over consecutive training windows and in eval, MP-Init by
hand, dL/dw and dL/dk against finite differences, state_dict, errors. The data-parallel test
is test_nn_ddp.py."""

import math

import numpy as np
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

torch = pytest.importorskip("torch")

from spikegrad import nn as snn  # noqa: E402
from spikegrad import ref  # noqa: E402
from spikegrad.testing.compare import assert_bitwise_equal  # noqa: E402

from conftest import examples  # noqa: E402
from nn_cases import THRESHOLDS, check_window, layer_input, upstream, value_in  # noqa: E402

SCALES = ("threshold_robust", "absolute", "relative")


@st.composite
def trlif_case(draw):
    threshold = draw(THRESHOLDS)
    kwargs = dict(tau=draw(st.one_of(st.just(2.0), st.floats(1.05, 20.0))),
                  threshold=threshold, decay_input=draw(st.booleans()),
                  scale=draw(st.sampled_from(SCALES)),
                  surrogate=draw(st.sampled_from(["rect", "triangle", "sigmoid", "atan"])),
                  sg_param=draw(st.sampled_from([1.0, 0.5, 2.0])),
                  mp_init=draw(st.booleans()), momentum=draw(st.sampled_from([0.1, 0.5, 1.0])),
                  detach_reset=draw(st.booleans()))
    x, seed = draw(layer_input(threshold))
    return kwargs, x, seed


def _reference_window(layer, x_np, training, running_mean):
    dtype = x_np.dtype
    return ref.mp_init.trlif_forward(
        x_np, decay=value_in(layer.decay, dtype),
        threshold=value_in(layer.threshold, dtype), running_mean=running_mean,
        training=training, momentum=layer.momentum, decay_input=layer.decay_input,
        scale=layer.scale, surrogate=layer.surrogate, sg_param=layer.sg_param,
        mp_init=layer.mp_init, detach_reset=layer.detach_reset)


@settings(max_examples=examples(100))
@given(case=trlif_case())
@example(case=(dict(tau=2.0, threshold=1.0, decay_input=True, scale="threshold_robust",
                    surrogate="rect", sg_param=1.0, mp_init=True, momentum=0.1,
                    detach_reset=False), np.full((1, 1, 1), 2.0, np.float32), 0))  # z = 0
@example(case=(dict(tau=1.5, threshold=1e3, decay_input=False, scale="relative",
                    surrogate="atan", sg_param=2.0, mp_init=True, momentum=1.0,
                    detach_reset=True), np.full((3, 2, 2), -5e2, np.float64), 1))  # negative
def test_trlif_matches_reference_over_windows(case):
    """Three training windows (the running mean moves, and each window starts from it),
    then one evaluation window (it stays)."""
    kwargs, x_np, seed = case
    layer = snn.TrLIF(**kwargs)
    if x_np.dtype == np.float64:
        layer = layer.double()
    running_mean = 0.0
    for window, training in enumerate((True, True, True, False)):
        layer.train(training)
        xw = x_np * (1 + 0.25 * window)       # dyadic factors: exact in both dtypes
        x = torch.from_numpy(xw).requires_grad_()
        out = layer(x)
        expected, running_mean = _reference_window(layer, xw, training, running_mean)
        running_mean = float(np.asarray(running_mean, dtype=x_np.dtype))  # buffer's dtype
        assert layer.running_mean.item() == running_mean, f"window {window}"
        check_window(out, x, expected, upstream(xw, seed + window),
                     f"TrLIF {kwargs} window {window}")


def test_mp_init_by_hand():
    """tau = 2 (lam = sigmoid(0) = 1/2 exactly), theta = softplus(k) ~ 1, TrSG, soft reset.
    Neuron a: x = (4, 0): h0 = 0 + (4 - 0)/2 = 2 fires (o = theta), v0 = 2 - theta;
    h1 = v0 - v0/2 = (2 - theta)/2 = v[T-1]. Neuron b: x = (0.25, 0): silent.
    Only a is active: mu_batch = (2 - theta)/2, running mean 0.9 * 0 + 0.1 * mu_batch.
    The next window starts there: neuron b at x = 0 has h0 = r + (0 - r)/2 = r/2."""
    layer = snn.TrLIF(tau=2.0, threshold=1.0)
    assert layer.decay.item() == 0.5
    theta = layer.threshold.item()
    x = torch.tensor([[4.0, 0.25], [0.0, 0.0]]).reshape(2, 1, 2)
    out = layer(x)
    assert out[:, 0, 0].tolist() == [theta, 0.0] and out[:, 0, 1].tolist() == [0.0, 0.0]
    mu_batch = (2 - theta) / 2
    assert layer.running_mean.item() == np.float32(0.9 * 0.0 + 0.1 * mu_batch)
    r = layer.running_mean.item()
    layer.eval()
    layer.record_diagnostics = True
    layer(torch.zeros(1, 1, 2))
    assert layer.running_mean.item() == r            # eval keeps mu fixed
    assert layer.diagnostics["firing_rate"].tolist() == [0.0]


@pytest.mark.parametrize("scale", SCALES)
def test_fires_exactly_at_the_threshold(scale):
    """tau = 2 makes lam = 1/2 exactly, so x = 2 theta (exact doubling) gives h = theta at
    the first step: z = 0 and H(0) = 1, on the layer as in the reference; x a hair below
    (the next float down) does not fire."""
    layer = snn.TrLIF(tau=2.0, threshold=0.7, scale=scale)
    theta = layer.threshold.detach()
    below = torch.nextafter(2 * theta, torch.tensor(0.0))
    x = torch.stack([2 * theta, below]).reshape(1, 1, 2)
    out = layer(x)
    assert (out != 0).flatten().tolist() == [True, False]
    expected = ref.mp_init.trlif_forward(x.numpy(), decay=0.5, threshold=theta.item(),
                                         scale=scale)[0]
    assert_bitwise_equal(out.detach().numpy(), expected.output, "output at z = 0")


def test_mp_init_statistic_by_hand():
    """docs/spec.md §7 on hand-made arrays: active = nonzero output at any step; silent neurons'
    membranes do not count; an all-silent batch gives mu_batch = 0 / max(0, 1) = 0."""
    output = np.array([[[0, 1, 0]], [[0, 0, 0]]], dtype=np.float32)     # [T=2, B=1, 3]
    v_last = np.array([[5.0, -0.5, 7.0]], dtype=np.float32)
    count, total = ref.mp_init.active_membrane_sum(output, v_last)
    assert (count, total) == (1.0, -0.5)
    assert ref.mp_init.batch_mean(count, total) == -0.5
    assert ref.mp_init.batch_mean(*ref.mp_init.active_membrane_sum(
        np.zeros((2, 1, 3)), v_last)) == 0.0
    assert ref.mp_init.update_running_mean(1.0, -0.5, 0.1) == 0.9 * 1.0 + 0.1 * -0.5


def test_mp_init_off_starts_from_zero_and_keeps_the_buffer():
    layer = snn.TrLIF(mp_init=False)
    x = torch.randn(4, 3, 5) * 3
    reference = ref.mp_init.trlif_forward(x.numpy(),
                                          decay=layer.decay.item(),
                                          threshold=layer.threshold.item(), mp_init=False)[0]
    assert_bitwise_equal(layer(x).detach().numpy(), reference.output, "output")
    assert layer.running_mean.item() == 0.0


@settings(max_examples=examples(12))
@given(scale=st.sampled_from(SCALES), decay_input=st.booleans(),
       surrogate=st.sampled_from(["sigmoid", "atan", "triangle"]),
       running_mean=st.sampled_from([0.0, 0.3, -0.2]), seed=st.integers(0, 2**16))
def test_parameter_gradients_match_finite_differences(scale, decay_input, surrogate,
                                                      running_mean, seed):
    """Smooth mode, float64, eval (the running mean is the fixed v_init): dL/dw through
    lam = sigmoid(w) and dL/dk through theta = softplus(k) equal central differences."""
    layer = snn.TrLIF(tau=2.5, threshold=0.9, decay_input=decay_input, scale=scale,
                      surrogate=surrogate, sg_param=2.0).double().eval()
    layer.smooth = True
    layer.running_mean.fill_(running_mean)
    rng = np.random.default_rng(seed)
    x = torch.from_numpy(rng.normal(0.6, 1.0, (4, 2, 3)))
    g = torch.from_numpy(rng.normal(size=(4, 2, 3)))

    def loss(w, k):
        return (torch.func.functional_call(layer, {"w": w, "k": k}, (x,)) * g).sum()

    w = layer.w.detach().clone().requires_grad_()
    k = layer.k.detach().clone().requires_grad_()
    assert torch.autograd.gradcheck(loss, (w, k), eps=1e-6, atol=1e-7, rtol=1e-5)


def test_parameters_start_at_tau_and_threshold():
    layer = snn.TrLIF(tau=4.0, threshold=2.0)
    assert layer.w.item() == pytest.approx(-math.log(3.0), abs=1e-7)
    assert layer.decay.item() == pytest.approx(0.25, rel=1e-6)
    assert layer.tau.item() == pytest.approx(4.0, rel=1e-6)
    assert layer.threshold.item() == pytest.approx(2.0, rel=1e-6)
    assert layer.running_mean.item() == 0.0


def test_state_dict_round_trip():
    torch.manual_seed(2)
    layer = snn.TrLIF()
    for _ in range(3):
        layer(torch.randn(4, 3, 6) * 2)
    state = layer.state_dict()
    assert set(state) == {"w", "k", "running_mean"} and state["running_mean"].item() != 0
    fresh = snn.TrLIF()
    fresh.load_state_dict(state)
    layer.eval(), fresh.eval()
    x = torch.randn(4, 3, 6)
    assert torch.equal(layer(x), fresh(x))


def test_backward_after_the_running_mean_moved():
    """The op saved v_init before the buffer was updated in place: backward still works and
    gives the same gradient as a layer that does not update."""
    torch.manual_seed(3)
    x = torch.randn(3, 2, 4) * 2
    a, b = snn.TrLIF(), snn.TrLIF(momentum=0.0)
    (a(x) ** 2).sum().backward()
    (b(x) ** 2).sum().backward()
    assert a.running_mean.item() != 0.0
    assert torch.equal(a.w.grad, b.w.grad) and torch.equal(a.k.grad, b.k.grad)


@pytest.mark.parametrize("kwargs, error, match", [
    (dict(tau=1.0), ValueError, "tau"), (dict(tau=0.5), ValueError, "tau"),
    (dict(tau=float("nan")), ValueError, "tau"), (dict(tau=float("inf")), ValueError, "tau"),
    (dict(threshold=0.0), ValueError, "threshold"),
    (dict(threshold=-1.0), ValueError, "threshold"),
    (dict(momentum=1.5), ValueError, "momentum"), (dict(scale="rel"), ValueError, "scale"),
    (dict(surrogate="gauss"), ValueError, "surrogate"),
    (dict(mp_init="yes"), TypeError, "mp_init"), (dict(sync_stats=1), TypeError, "sync_stats"),
])
def test_constructor_errors(kwargs, error, match):
    with pytest.raises(error, match=match):
        snn.TrLIF(**kwargs)
