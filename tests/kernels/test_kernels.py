"""Layer 2, the compiled C++ kernels (spikegrad.kernels / spikegrad._core) against the
NumPy reference: forward bit for bit outside smooth mode, everything else within the bound
of spikegrad.testing.compare. NumPy only."""

import numpy as np
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from spikegrad import _core, kernels, ref
from spikegrad.testing import strategies as sgst
from spikegrad.testing.compare import (assert_bitwise_equal, assert_close,
                                       smooth_forward_magnitude)

from conftest import examples

GRADIENTS = ("x", "v_init", "decay", "threshold", "sg_param")


def _edge_case(dtype, **options):
    """T = 1, N = 1 with the input exactly at the threshold (z = 0: H jumps)."""
    base = dict(charge="mul", reset="hard", scale="absolute", surrogate="rect",
                smooth=False, detach_reset=False)
    base.update(options)
    return sgst.NeuronCase(x=np.array([[1.0]], dtype=dtype), decay=0.2, threshold=1.0,
                           sg_param=1.0, v_init=None, v_reset=0.0, **base)


def _upstream(rng, case, which):
    T, N = case["x"].shape
    dtype = case["x"].dtype
    draw = {"output": rng.normal(size=(T, N)), "membrane": rng.normal(size=(T, N)),
            "v_last": rng.normal(size=N)}
    return [draw[k].astype(dtype) if k in which else None
            for k in ("output", "membrane", "v_last")]


def check_against_reference(case, seed, which=("output", "membrane", "v_last")):
    variant = {k: v for k, v in case.items() if k != "x"}
    dtype = case["x"].dtype
    T = case["x"].shape[0]
    expected = ref.forward(**case)
    actual = kernels.forward(**case)
    magnitude = smooth_forward_magnitude(expected.membrane, expected.threshold,
                                         expected.v_reset)
    for name in ("output", "membrane", "v_last"):
        a, e = getattr(actual, name), getattr(expected, name)
        if case["smooth"]:
            assert_close(a, e, f"forward {name} (smooth) {variant}", dtype=dtype, T=T,
                         magnitude=magnitude)
        else:
            assert_bitwise_equal(a, e, f"forward {name} {variant}")

    upstream = _upstream(np.random.default_rng(seed), case, which)
    g_ref = ref.backward(expected, *upstream)
    g_ker = kernels.backward(actual, *upstream)
    scale = ref.error_scale(expected, *upstream)
    for name in GRADIENTS:
        assert_close(getattr(g_ker, name), getattr(g_ref, name), f"grad {name} {variant}",
                     dtype=dtype, T=T, magnitude=getattr(scale, name))


@settings(max_examples=examples(1500))
@given(case=sgst.neuron_case(), seed=st.integers(0, 2**32 - 1),
       which=st.sets(st.sampled_from(["output", "membrane", "v_last"]), min_size=1))
@example(case=_edge_case(np.float32), seed=0, which={"output"})
@example(case=_edge_case(np.float64, scale="relative", surrogate="triangle"), seed=0,
         which={"output", "v_last"})
@example(case=_edge_case(np.float32, scale="threshold_robust", reset="soft"), seed=1,
         which={"output"})
@example(case=_edge_case(np.float64, charge="decay_input", reset="soft", smooth=True,
                         surrogate="sigmoid"), seed=2, which={"membrane"})
@example(case=sgst.NeuronCase(  # subnormal gradients: dh/dx = lam = float32's tiniest normal
    x=np.array([[0.38, 1.05], [0.40, 0.83], [1.3, 0.2]], np.float32), decay=1.175494351e-38,
    threshold=np.array([0.68, 1.4, 1.3]), sg_param=np.array([6.5, 4.8, 4.9]), v_init=None,
    v_reset=0.0, charge="decay_input", reset="hard", scale="relative", surrogate="sigmoid",
    smooth=False, detach_reset=False), seed=5, which={"output", "membrane", "v_last"})
def test_kernels_match_reference(case, seed, which):
    check_against_reference(case, seed, which)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("threshold", [1e-30, 1e30, 1e-3, 1e3])
def test_huge_and_tiny_thresholds(dtype, threshold):
    rng = np.random.default_rng(1)
    x = (rng.normal(0.5, 1, (6, 50)) * threshold).astype(dtype)
    x[0, :5] = dtype(threshold)
    for scale in ("absolute", "relative", "threshold_robust"):
        case = sgst.NeuronCase(x=x, decay=0.5, threshold=threshold, sg_param=1.0, v_init=None,
                               v_reset=0.0, charge="mul", reset="soft", scale=scale,
                               surrogate="rect", smooth=False, detach_reset=False)
        # 1e30 overflows float32 in the reference's partial derivatives (IEEE inf, as in
        # the kernels): NumPy's warning about it is the arithmetic the test asks for
        with np.errstate(over="ignore", divide="ignore", invalid="ignore"):
            check_against_reference(case, seed=3)


def test_nan_and_inf_inputs_follow_ieee():
    x = np.array([[np.nan, np.inf, -np.inf, 1.0], [0.5, 0.5, 0.5, np.nan]])
    for dtype in (np.float32, np.float64):
        with np.errstate(invalid="ignore"):   # NaN and inf inputs: IEEE arithmetic, asked for
            expected = ref.forward(x.astype(dtype))
        actual = kernels.forward(x.astype(dtype))
        assert_bitwise_equal(actual.output, expected.output, "output with NaN/Inf inputs")
        assert_bitwise_equal(actual.membrane, expected.membrane, "membrane with NaN/Inf")
        assert actual.output[0, 0] == 0  # H(NaN) = 0
        assert actual.output[1, 3] == 0


@pytest.mark.parametrize("smooth", [False, True])
def test_results_do_not_depend_on_thread_count(smooth):
    rng = np.random.default_rng(2)
    T, N = 5, 100_003
    x = rng.normal(0.5, 1, (T, N)).astype(np.float32)
    kw = dict(charge="decay_input", decay=0.5, threshold=rng.uniform(0.5, 1.5, T),
              surrogate="atan", sg_param=2.0, reset="soft", smooth=smooth)
    runs = []
    for threads in (1, 2):
        out = kernels.forward(x, num_threads=threads, **kw)
        grads = kernels.backward(out, np.ones_like(x), None, np.ones(N, np.float32),
                                 num_threads=threads)
        runs.append((out, grads))
    (o1, g1), (o2, g2) = runs
    assert_bitwise_equal(o1.output, o2.output, "output, 1 vs 2 threads")
    assert_bitwise_equal(o1.v_last, o2.v_last, "v_last, 1 vs 2 threads")
    for name in GRADIENTS:
        assert_bitwise_equal(np.asarray(getattr(g1, name)), np.asarray(getattr(g2, name)),
                             f"grad {name}, 1 vs 2 threads")


def test_empty_layer():
    out = kernels.forward(np.zeros((3, 0), np.float32))
    assert out.output.shape == (3, 0)
    grads = kernels.backward(out, np.zeros((3, 0), np.float32))
    assert grads.x.shape == (3, 0) and grads.decay == 0.0


@pytest.mark.parametrize("kwargs, message", [
    (dict(scale="relative", threshold=-1.0), "threshold"),
    (dict(scale="threshold_robust", threshold=0.0), "threshold"),
    (dict(threshold=float("nan")), "threshold"),
    (dict(sg_param=0.0), "sg_param"),
    (dict(sg_param=-2.0), "sg_param"),
    (dict(decay=float("nan")), "decay"),
    (dict(charge="lif"), "charge"),
    (dict(surrogate="gauss"), "surrogate"),
])
def test_kernel_rejects_bad_parameters(kwargs, message):
    x = np.ones((2, 3), np.float32)
    with pytest.raises(ValueError, match=message):
        kernels.forward(x, **kwargs)


def test_core_rejects_bad_buffers():
    x = np.ones((2, 3), np.float32)
    th = np.ones(2, np.float32)
    out, vl = np.empty((2, 3), np.float32), np.empty(3, np.float32)
    opts = dict(charge="mul", reset="hard", scale="absolute", surrogate="rect", smooth=False)
    with pytest.raises(TypeError):     # mixed dtypes
        _core.neuron_forward(0.2, 0.0, th.astype(np.float64), th, np.zeros(3, np.float32), x,
                             out, None, vl, **opts)
    with pytest.raises(TypeError):     # integer input
        _core.neuron_forward(0.2, 0.0, th, th, np.zeros(3, np.float32), x.astype(np.int32),
                             out, None, vl, **opts)
    with pytest.raises(ValueError):    # wrong threshold length
        _core.neuron_forward(0.2, 0.0, np.ones(3, np.float32), th, np.zeros(3, np.float32), x,
                             out, None, vl, **opts)
    with pytest.raises(ValueError):    # read-only output
        ro = np.empty((2, 3), np.float32)
        ro.flags.writeable = False
        _core.neuron_forward(0.2, 0.0, th, th, np.zeros(3, np.float32), x, ro, None, vl, **opts)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("T, N", [(1, 1), (5, 3000), (8, 2048 + 515), (11, 513), (40, 700)])
def test_absent_v_init_and_skipped_parameter_sums_change_no_bits(dtype, T, N):
    # v_init=None (zeros, no [N] array read) and param_grads=False (no float64 sums) are
    # shortcuts of the op: the same bits as zeros and as the full backward. They also take
    # other loops: without parameter sums (and without the membrane as an output) the kernels
    # run four steps per pass, with them one (T = 5, 11: groups of four plus single steps)
    from spikegrad import _core

    rng = np.random.default_rng(T * N)
    x = rng.normal(0.6, 1.0, (T, N)).astype(dtype)
    x[:, ::3] = dtype(1.0)                              # exactly at the threshold
    theta, p = np.ones(T, dtype), np.full(T, 0.5, dtype)
    g = rng.normal(size=(T, N)).astype(dtype)
    options = dict(charge="decay_input", reset="hard", scale="absolute", surrogate="triangle",
                   smooth=False)

    def forward(v_init):
        out, v_last = np.empty_like(x), np.empty(N, dtype)
        _core.neuron_forward(0.25, 0.0, theta, p, v_init, x, out, None, v_last, **options)
        return out, v_last

    def backward(v_init, param_grads):
        grad_x, grad_v_init = np.empty_like(x), np.empty(N, dtype)
        # the parameter gradients' buffers, or None for all three: no sums made
        sums = (np.empty(()), np.empty(T), np.empty(T)) if param_grads else (None, None, None)
        # filled with a marker: without the sums the kernel must not touch it
        workspace = np.full(max(_core.neuron_backward_workspace_bytes(x), 8), 0xAB, np.uint8)
        _core.neuron_backward(0.25, 0.0, theta, p, v_init, x, g, None, None, grad_x,
                              grad_v_init, *sums, workspace, detach_reset=False, **options)
        return grad_x, grad_v_init, sums, workspace

    zeros = np.zeros(N, dtype)
    for a, b in zip(forward(None), forward(zeros)):
        assert_bitwise_equal(a, b, "forward from v_init=None vs zeros")
    out_h, v_last_h, membrane = np.empty_like(x), np.empty(N, dtype), np.empty_like(x)
    _core.neuron_forward(0.25, 0.0, theta, p, None, x, out_h, membrane, v_last_h, **options)
    for a, b in zip((out_h, v_last_h), forward(None)):
        assert_bitwise_equal(a, b, "forward with the membrane as an output vs without")
    full = backward(zeros, True)
    for v_init in (None, zeros):
        shortcut = backward(v_init, False)
        assert_bitwise_equal(shortcut[0], full[0], "grad_x")
        assert_bitwise_equal(shortcut[1], full[1], "grad_v_init")
        assert (shortcut[3] == 0xAB).all(), "the workspace was written without parameter sums"
    assert (full[3] != 0xAB).any(), "the workspace was not used for the parameter sums"
    with_none = backward(None, True)
    assert with_none[2][0] == full[2][0]
    assert_bitwise_equal(with_none[2][1], full[2][1], "grad_threshold")
