"""spikegrad.nn.LIF: against the reference (train and eval), the spec's equations on
hand-checked cases, PLIF / learnable-threshold gradients against finite differences,
state_dict, diagnostics and errors."""

import math

import numpy as np
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

torch = pytest.importorskip("torch")

from spikegrad import nn as snn  # noqa: E402
from spikegrad import ref  # noqa: E402
from spikegrad.testing import strategies as sgst  # noqa: E402

from conftest import examples  # noqa: E402
from nn_cases import THRESHOLDS, check_window, layer_input, upstream, value_in  # noqa: E402


@st.composite
def lif_case(draw):
    opts = draw(sgst.options(smooth=st.just(False)))
    learn_decay, learn_threshold = draw(st.booleans()), draw(st.booleans())
    decay = draw(st.one_of(st.sampled_from([0.2, 0.25, 0.5]), st.floats(0.01, 0.99)))
    if not learn_decay:
        decay = draw(st.one_of(st.just(decay), st.sampled_from([0.0, 1.0])))
    threshold = draw(THRESHOLDS)
    if opts["scale"] == "absolute" and not learn_threshold and draw(st.booleans()):
        threshold = -threshold / 4
    x, seed = draw(layer_input(threshold))
    kwargs = dict(charge=opts["charge"], decay=decay, learn_decay=learn_decay,
                  threshold=threshold, learn_threshold=learn_threshold, reset=opts["reset"],
                  v_reset=draw(st.sampled_from([0.0, -0.5])),
                  detach_reset=opts["detach_reset"], scale=opts["scale"],
                  surrogate=opts["surrogate"],
                  sg_param=draw(st.sampled_from([1.0, 0.5, 2.0, 4.0])))
    return kwargs, x, seed


@settings(max_examples=examples(150))
@given(case=lif_case(), training=st.booleans())
@example(case=(dict(charge="mul", decay=0.2, learn_decay=False, threshold=1.0,
                    learn_threshold=False, reset="hard", v_reset=0.0, detach_reset=False,
                    scale="absolute", surrogate="rect", sg_param=1.0),
               np.ones((1, 1, 1), np.float32), 0), training=True)       # T = N = 1, at theta
@example(case=(dict(charge="decay_input", decay=0.5, learn_decay=True, threshold=1e3,
                    learn_threshold=True, reset="soft", v_reset=0.0, detach_reset=True,
                    scale="threshold_robust", surrogate="atan", sg_param=2.0),
               np.full((3, 2, 2), -2e3, np.float64), 1), training=False)  # huge, negative
def test_lif_matches_reference(case, training):
    kwargs, x_np, seed = case
    layer = snn.LIF(**kwargs).double() if x_np.dtype == np.float64 else snn.LIF(**kwargs)
    layer.train(training)
    x = torch.from_numpy(x_np).requires_grad_()
    out = layer(x)
    T = x_np.shape[0]
    expected = ref.forward(
        x_np.reshape(T, -1), charge=kwargs["charge"],
        decay=value_in(layer.decay, x_np.dtype), threshold=value_in(layer.threshold, x_np.dtype),
        reset=kwargs["reset"], v_reset=kwargs["v_reset"], detach_reset=kwargs["detach_reset"],
        scale=kwargs["scale"], surrogate=kwargs["surrogate"], sg_param=kwargs["sg_param"],
        v_init=kwargs["v_reset"])
    check_window(out, x, expected, upstream(x_np, seed), f"LIF {kwargs}")


def test_lif_hand_checked_mul_hard_reset():
    """docs/spec.md §1, 3, 4 by hand with dyadic numbers: lam = 0.5, theta = 1, one neuron.
    h0 = 0.75 (no spike); h1 = 0.5 * 0.75 + 0.75 = 1.125 (spike, v = 0);
    h2 = 0 + 0.5 = 0.5; h3 = 0.25 + 0.75 = 1.0 (exactly at theta: H(0) = 1)."""
    layer = snn.LIF(decay=0.5, threshold=1.0)
    x = torch.tensor([0.75, 0.75, 0.5, 0.75]).reshape(4, 1, 1)
    assert layer(x).flatten().tolist() == [0.0, 1.0, 0.0, 1.0]


def test_lif_hand_checked_decay_input_soft_reset_threshold_robust():
    """decay_input: h = v + lam (x - v); theta = 2, soft reset v = h - theta s, output
    theta * s. x = 6: h0 = 3 -> o = 2, v = 1; x = 0: h1 = 1 + 0.5 (0 - 1) = 0.5 -> o = 0."""
    layer = snn.LIF(charge="decay_input", decay=0.5, threshold=2.0, reset="soft",
                    scale="threshold_robust")
    x = torch.tensor([6.0, 0.0]).reshape(2, 1, 1)
    assert layer(x).flatten().tolist() == [2.0, 0.0]


def test_learnable_parameters_start_at_the_given_values():
    layer = snn.LIF(decay=0.2, learn_decay=True, threshold=1.5, learn_threshold=True)
    assert layer.w.item() == pytest.approx(-math.log(4.0), abs=1e-7)   # PLIF init_a = 5
    assert layer.decay.item() == pytest.approx(0.2, rel=1e-6)
    assert layer.threshold.item() == pytest.approx(1.5, rel=1e-6)
    assert set(dict(layer.named_parameters())) == {"w", "k"}
    fixed = snn.LIF()
    assert list(fixed.parameters()) == [] and fixed.decay == 0.2 and fixed.threshold == 1.0


@settings(max_examples=examples(12))
@given(charge=st.sampled_from(["mul", "decay_input", "no_decay_input"]),
       reset=st.sampled_from(["hard", "soft"]),
       scale=st.sampled_from(["absolute", "relative", "threshold_robust"]),
       surrogate=st.sampled_from(["sigmoid", "atan", "triangle"]),
       seed=st.integers(0, 2**16))
def test_parameter_gradients_match_finite_differences(charge, reset, scale, surrogate, seed):
    """Smooth mode (s = F(z)) makes the whole window differentiable: dL/dw and dL/dk of the
    fused kernel plus the sigmoid / softplus parameterisation equal central differences.
    (detach_reset drops a true path on purpose, so it is not a finite-difference case.)"""
    layer = snn.LIF(charge=charge, decay=0.3, learn_decay=True, threshold=0.8,
                    learn_threshold=True, reset=reset,
                    scale=scale, surrogate=surrogate, sg_param=2.0).double()
    layer.smooth = True
    rng = np.random.default_rng(seed)
    x = torch.from_numpy(rng.normal(0.5, 1.0, (4, 2, 3)))
    g = torch.from_numpy(rng.normal(size=(4, 2, 3)))

    def loss(w, k):
        out = torch.func.functional_call(layer, {"w": w, "k": k}, (x,))
        return (out * g).sum()

    w = layer.w.detach().clone().requires_grad_()
    k = layer.k.detach().clone().requires_grad_()
    assert torch.autograd.gradcheck(loss, (w, k), eps=1e-6, atol=1e-7, rtol=1e-5)


def test_state_dict_round_trip():
    torch.manual_seed(0)
    layer = snn.LIF(decay=0.3, learn_decay=True, threshold=0.7, learn_threshold=True)
    with torch.no_grad():
        layer.w.add_(0.37)
        layer.k.sub_(0.21)
    state = layer.state_dict()
    assert set(state) == {"w", "k"}
    fresh = snn.LIF(decay=0.3, learn_decay=True, threshold=0.7, learn_threshold=True)
    fresh.load_state_dict(state)
    x = torch.randn(5, 3, 7)
    assert torch.equal(layer(x), fresh(x))


def test_diagnostics_hand_checked():
    """Two neurons, T = 2, theta = 1, rect width 1 (window |h - 1| < 1/2), lam = 0:
    t0: h = (1.2, 0.2): firing 1/2, gradient available 1/2 (|0.2| < 0.5 only for the first);
    t1: h = (0.6, 3.0): firing 1/2, available 1/2."""
    layer = snn.LIF(decay=0.0)
    assert layer.diagnostics == {}
    layer(torch.zeros(1, 1, 2))
    assert layer.diagnostics == {}          # not recorded unless asked for
    layer.record_diagnostics = True
    layer(torch.tensor([[1.2, 0.2], [0.6, 3.0]]).reshape(2, 1, 2))
    assert layer.diagnostics["firing_rate"].tolist() == [0.5, 0.5]
    assert layer.diagnostics["gradient_available"].tolist() == [0.5, 0.5]


def test_diagnostics_sigmoid_uses_a_tenth_of_the_peak():
    """sigmoid p = 4: f'(z) >= f'(0)/10 iff |z| <= ln((19 + sqrt(360)) / 1)/4 ~ 0.9184
    (e / (1 + e)^2 = 1/40 with e = exp(-4|z|)); h = 1.9 is inside, 1.95 outside."""
    layer = snn.LIF(decay=0.0, surrogate="sigmoid", sg_param=4.0)
    layer.record_diagnostics = True
    layer(torch.tensor([1.9, 1.95, 0.5, -1.0], dtype=torch.float64).reshape(1, 1, 4))
    assert layer.diagnostics["gradient_available"].tolist() == [0.5]


@pytest.mark.parametrize("kwargs, error, match", [
    (dict(decay=1.5), ValueError, "decay"),
    (dict(decay=0.0, learn_decay=True), ValueError, "decay"),
    (dict(threshold=0.0, learn_threshold=True), ValueError, "threshold"),
    (dict(threshold=-1.0, scale="relative"), ValueError, "threshold"),
    (dict(threshold=float("nan")), ValueError, "threshold"),
    (dict(sg_param=0.0), ValueError, "sg_param"),
    (dict(charge="bogus"), ValueError, "charge"),
    (dict(learn_decay=1), TypeError, "learn_decay"),
])
def test_constructor_errors(kwargs, error, match):
    with pytest.raises(error, match=match):
        snn.LIF(**kwargs)


def test_input_errors():
    layer = snn.LIF()
    with pytest.raises(TypeError, match="x"):
        layer(np.zeros((2, 2)))
    with pytest.raises(ValueError, match=r"\[T, B"):
        layer(torch.zeros(3))
    with pytest.raises(TypeError, match="float32 or float64"):
        layer(torch.zeros(2, 2, dtype=torch.int64))


def test_float32_parameters_on_float64_input():
    """The module's float32 parameters are cast (exactly) to x's dtype: the window equals
    the float64 reference run with those values."""
    layer = snn.LIF(decay=0.3, learn_decay=True, threshold=0.9, learn_threshold=True)
    x = torch.from_numpy(np.random.default_rng(5).normal(0.5, 1.0, (6, 2, 9)))
    out = layer(x)
    assert out.dtype == torch.float64
    expected = ref.forward(x.numpy(), decay=float(layer.decay.detach()),
                           threshold=float(layer.threshold.detach()),
                           v_init=0.0)
    assert np.array_equal(out.detach().numpy(), expected.output)
    out.sum().backward()
    assert layer.w.grad.dtype == torch.float32 and layer.k.grad.dtype == torch.float32
