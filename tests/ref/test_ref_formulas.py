"""Layer 1, the reference against itself and against docs/spec.md worked by hand."""

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from spikegrad import ref
from spikegrad.ref import formulas as F

from conftest import examples


# ---- surrogates: derivative == finite difference of primitive (docs/spec.md §5) ----------------

@pytest.mark.parametrize("shape", F.SURROGATES)
@settings(max_examples=examples(200))
@given(z=st.floats(-3, 3), p=st.floats(0.2, 5))
def test_derivative_is_derivative_of_primitive(shape, z, p):
    step = 1e-6
    if shape in ("rect", "triangle"):
        # away from the kinks, where the one-sided slopes differ
        kinks = [-p / 2, p / 2] if shape == "rect" else [-p, 0.0, p]
        if min(abs(z - k) for k in kinks) < 1e-4:
            return
    z_arr = np.array([z - step, z + step, z])
    primitive = F.surrogate_primitive(shape, z_arr, np.float64(p))
    finite_difference = (primitive[1] - primitive[0]) / (2 * step)
    derivative = F.surrogate_derivative(shape, z_arr[2:], np.float64(p))[0]
    assert finite_difference == pytest.approx(derivative, abs=1e-6, rel=1e-5)


@pytest.mark.parametrize("shape", F.SURROGATES)
@settings(max_examples=examples(200))
@given(z=st.floats(-3, 3), p=st.floats(0.2, 5))
def test_param_derivative_is_finite_difference_over_p(shape, z, p):
    step = 1e-6
    if shape in ("rect", "triangle"):
        kinks = [-p / 2, p / 2] if shape == "rect" else [-p, 0.0, p]
        if min(abs(z - k) for k in kinks) < 1e-3:
            return
    z_arr = np.array([z])
    up = F.surrogate_primitive(shape, z_arr, np.float64(p + step))[0]
    down = F.surrogate_primitive(shape, z_arr, np.float64(p - step))[0]
    expected = (up - down) / (2 * step)
    actual = F.surrogate_param_derivative(shape, z_arr, np.float64(p))[0]
    assert actual == pytest.approx(expected, abs=1e-6, rel=1e-5)


@pytest.mark.parametrize("shape", F.SURROGATES)
def test_primitive_limits_and_midpoint(shape):
    z = np.array([-1e6, 0.0, 1e6])
    values = F.surrogate_primitive(shape, z, np.float64(F.DEFAULT_SG_PARAM[shape]))
    np.testing.assert_allclose(values, [0.0, 0.5, 1.0], atol=1e-6)


def test_surrogates_at_their_documented_points():
    # docs/spec.md §5 table, worked by hand
    z0 = np.array([0.0])
    assert F.rect_derivative(z0, np.float64(1.0))[0] == 1.0
    assert F.rect_derivative(np.array([0.5]), np.float64(1.0))[0] == 0.0   # open window
    assert F.triangle_derivative(z0, np.float64(0.5))[0] == 2.0              # 1/p
    assert F.sigmoid_derivative(z0, np.float64(4.0))[0] == 1.0               # p/4
    assert F.atan_derivative(z0, np.float64(2.0))[0] == 1.0                  # p/2


def test_heaviside_of_nan_is_zero_and_of_zero_is_one():
    for dtype in (np.float32, np.float64):
        z = np.array([np.nan, 0.0, -0.0, -1e-30, np.inf, -np.inf], dtype=dtype)
        np.testing.assert_array_equal(F.heaviside(z), [0, 1, 1, 0, 1, 0])


# ---- the neuron, worked by hand from docs/spec.md §1, 3, 4 -------------------------------------

def run(x, **kw):
    return ref.forward(np.array(x, dtype=np.float64).reshape(-1, 1), **kw)


def test_mul_hard_reset_by_hand():
    # h0 = 0.75 (no spike); h1 = 0.5 * 0.75 + 0.75 = 1.125 (spike, reset to 0); h2 = 0.5
    r = run([0.75, 0.75, 0.5], charge="mul", decay=0.5, threshold=1.0, reset="hard")
    np.testing.assert_array_equal(r.membrane[:, 0], [0.75, 1.125, 0.5])
    np.testing.assert_array_equal(r.output[:, 0], [0, 1, 0])
    assert r.v_last[0] == 0.5


def test_soft_reset_and_v_reset_by_hand():
    r = run([0.75, 0.75, 0.5], charge="mul", decay=0.5, threshold=1.0, reset="soft")
    # v1 = 1.125 - 1 = 0.125; h2 = 0.0625 + 0.5
    np.testing.assert_array_equal(r.membrane[:, 0], [0.75, 1.125, 0.5625])
    r = run([1.5, 0.0], charge="if", threshold=1.0, reset="hard", v_reset=-0.5)
    np.testing.assert_array_equal(r.membrane[:, 0], [1.5, -0.5])


def test_decay_input_charges_by_hand():
    # SpikingJelly LIF: h = v + lam (x - (v - v_reset)); lam = 0.5, v_reset = -1, v0 = 1
    r = run([2.0], charge="decay_input", decay=0.5, v_reset=-1.0, v_init=1.0, threshold=9.0)
    assert r.membrane[0, 0] == 1.0 + 0.5 * (2.0 - 2.0)
    r = run([2.0], charge="no_decay_input", decay=0.5, v_reset=-1.0, v_init=1.0,
            threshold=9.0)
    assert r.membrane[0, 0] == 1.0 - 0.5 * 2.0 + 2.0


def test_exactly_at_threshold_fires_in_every_scale():
    for scale in F.SCALES:
        r = run([0.5], threshold=0.5, scale=scale)
        assert r.output[0, 0] == (0.5 if scale == "threshold_robust" else 1.0)


def test_backward_single_step_by_hand():
    # T = 1, h = x, L = o. absolute: dL/dx = f'(x - 1) = 1 inside the window, dL/dtheta = -1
    r = run([1.25], threshold=1.0, surrogate="rect", sg_param=1.0)
    g = ref.backward(r, np.ones((1, 1)))
    assert g.x[0, 0] == 1.0 and g.threshold == -1.0
    # TrSG: o = theta s, z = x/theta - 1; dL/dtheta = s + theta f'(z) (-x/theta^2) = 1 - 1.25
    r = run([1.25], threshold=1.0, scale="threshold_robust", reset="soft")
    g = ref.backward(r, np.ones((1, 1)))
    assert g.threshold == pytest.approx(-0.25)
    # outside the window nothing flows to x
    r = run([1.75], threshold=1.0)
    assert ref.backward(r, np.ones((1, 1))).x[0, 0] == 0.0


def test_backward_reset_path_by_hand():
    # T = 2, mul, lam = 0.5, hard reset, L = v_last. Step 0 fires (x0 = 1.25):
    # v0 = h0 (1 - s0); dv0/dh0 = (1 - s0) + (0 - h0) f'(z0) = 0 - 1.25 * 1
    # h1 = 0.5 v0 + x1 with x1 = 0.25 (no spike, outside window), v1 = h1
    r = run([1.25, 0.25], decay=0.5, threshold=1.0, reset="hard")
    g = ref.backward(r, None, grad_v_last=np.ones(1))
    assert g.x[1, 0] == 1.0
    assert g.x[0, 0] == 0.5 * -1.25
    r = run([1.25, 0.25], decay=0.5, threshold=1.0, reset="hard", detach_reset=True)
    g = ref.backward(r, None, grad_v_last=np.ones(1))
    assert g.x[0, 0] == 0.0  # detached: only the (1 - s0) = 0 path remains


def test_sigmoid_derivative_keeps_its_subnormal_tail():
    # p sg(pz) (1 - sg(pz)) = p e^{-|pz|} / (1 + e^{-|pz|})^2 -> p e^{-|pz|} in the tail, where
    # sg(-|pz|) written as 1 / (1 + exp(|pz|)) would overflow to 0 (the op's gradients there
    # are subnormal, not 0; tests/ops/test_ops.py leaves such draws out of the eager comparison)
    p = np.float64(1.0)
    tail = F.sigmoid_derivative(np.array([714.0, -714.0]), p)
    assert tail[0] == tail[1] > 0
    assert abs(tail[0] - math.exp(-714.0)) <= 2 * np.finfo(np.float64).smallest_subnormal
