"""Layer 1, the reference's hand-written backward against central finite differences.

In smooth mode the forward uses the surrogate's primitive, so the whole forward is
differentiable and its exact gradient is what the hand-written BPTT must return (docs/spec.md §5):
this proves the structure of the backward (reset paths, leak, threshold and surrogate
parameter gradients). float64, step 1e-6; the finite-difference error is O(step^2) times
the third derivative, far below the 1e-6 tolerance for the sigmoid and atan primitives used
here (rect and triangle have kinks, where finite differences are meaningless).
"""

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from spikegrad import ref
from spikegrad.testing import strategies as sgst

from conftest import examples

STEP = 1e-6


def _loss_and_grads(case, upstream):
    def loss(**change):
        kw = dict(case, **change)
        r = ref.forward(**kw)
        go, gm, gv = upstream
        return float((r.output * go).sum() + (r.membrane * gm).sum() + (r.v_last * gv).sum())

    r = ref.forward(**case)
    return loss, ref.backward(r, *upstream)


def _finite_difference(loss, name, value):
    value = np.array(value, dtype=np.float64)
    grad = np.zeros_like(value)
    for index in np.ndindex(value.shape):
        up, down = value.copy(), value.copy()
        up[index] += STEP
        down[index] -= STEP
        grad[index] = (loss(**{name: up}) - loss(**{name: down})) / (2 * STEP)
    return grad


@settings(max_examples=examples(400))
@given(case=sgst.neuron_case(
    option_strategy=sgst.options(surrogates=("sigmoid", "atan"), smooth=st.just(True),
                                 detach_reset=st.just(False)),
    dtype=st.just(np.float64), shape=sgst.shapes(max_T=5, max_N=3),
    thresholds=st.floats(0.3, 3.0), allow_negative_threshold=False),
    seed=st.integers(0, 2**32 - 1))
def test_smooth_backward_equals_finite_differences(case, seed):
    rng = np.random.default_rng(seed)
    T, N = case["x"].shape
    case["v_init"] = rng.normal(0, 0.5, N)
    upstream = (rng.normal(size=(T, N)), rng.normal(size=(T, N)), rng.normal(size=N))
    loss, grads = _loss_and_grads(case, upstream)

    for name in ("x", "v_init", "threshold", "sg_param"):
        expected = _finite_difference(loss, name, case[name])
        np.testing.assert_allclose(getattr(grads, name), expected, rtol=1e-5, atol=1e-6,
                                   err_msg=f"d loss / d {name}, variant {case}")
    expected = _finite_difference(loss, "decay", case["decay"])
    np.testing.assert_allclose(grads.decay, expected, rtol=1e-5, atol=1e-6,
                               err_msg=f"d loss / d decay, variant {case}")


def test_scalar_parameters_get_summed_gradients():
    rng = np.random.default_rng(0)
    x = rng.normal(0.5, 1, (4, 3))
    common = dict(surrogate="sigmoid", smooth=True)
    scalar = ref.forward(x, threshold=0.8, sg_param=3.0, v_init=0.1, **common)
    vector = ref.forward(x, threshold=np.full(4, 0.8), sg_param=np.full(4, 3.0),
                         v_init=np.full(3, 0.1), **common)
    go = rng.normal(size=x.shape)
    gs, gv = ref.backward(scalar, go), ref.backward(vector, go)
    assert np.isclose(gs.threshold, gv.threshold.sum())
    assert np.isclose(gs.sg_param, gv.sg_param.sum())
    assert np.isclose(gs.v_init, gv.v_init.sum())
