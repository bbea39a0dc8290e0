"""DS-ATGO (docs/spec.md §2 "AT", docs/spec.md §5 "TGO", docs/spec.md §9): the reference against the spec's equations worked
by hand, the C++ adaptive kernel against the reference (forward bit for bit, backward within
the bound of spikegrad.testing.compare), the torch layer spikegrad.nn.ATGO against both in
training and evaluation, its state, its errors, its diagnostics, and data parallelism over
two gloo processes."""

import math
import os
import socket
import statistics
import tempfile

import numpy as np
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from spikegrad import _core, kernels, ref
from spikegrad.ref import adaptive as A
from spikegrad.testing.compare import assert_bitwise_equal, assert_close

from conftest import examples

GRADIENTS = ("x", "v_init", "decay")  # theta and k_t are detached: their gradients are dropped


# --------------------------------------------------------------------------------------
# The fixed-order sum, against a transcription of the C++ loops (detail::block_sum per
# 512-block, then the block sums in the canonical order of spikegrad/portable.hpp)
# --------------------------------------------------------------------------------------

def _shuffle_tree(lanes):
    """One warp's shfl_down tree as the GPU runs it: for offset 16, 8, 4, 2, 1, every lane l
    adds lane l + offset's value (a lane past 31 reads its own); lane 0 keeps the total."""
    lanes = [float(v) for v in lanes]
    for offset in (16, 8, 4, 2, 1):
        lanes = [lanes[l] + (lanes[l + offset] if l + offset < 32 else lanes[l])
                 for l in range(32)]
    return lanes[0]


def _canonical_combine(partials):
    """The canonical order, in loops: thread k of 256 adds partials k, k + 256, ... from 0.0;
    a shuffle tree per warp of 32 threads; the tree over the 8 warps' totals (zeros past)."""
    threads = [0.0] * 256
    for k in range(256):
        for b in range(k, len(partials), 256):
            threads[k] += float(partials[b])
    warps = [_shuffle_tree(threads[32 * w:32 * (w + 1)]) for w in range(8)]
    return _shuffle_tree(warps + [0.0] * 24)


def _cpp_order_sum(terms):
    """neuron_cpu.hpp's block_sum per 512-block, then the blocks combined canonically."""
    partials = []
    for n0 in range(0, len(terms), 512):
        block = terms[n0:n0 + 512]
        acc = [0.0] * 8
        for i, term in enumerate(block):
            acc[i % 8] += float(term)
        partials.append(((acc[0] + acc[1]) + (acc[2] + acc[3]))
                        + ((acc[4] + acc[5]) + (acc[6] + acc[7])))
    return _canonical_combine(partials)


@settings(max_examples=examples(60))
@given(n=st.one_of(st.sampled_from([1, 7, 8, 9, 511, 512, 513, 1024, 1537]),
                   st.integers(1, 2000)),
       seed=st.integers(0, 2**32 - 1), spread=st.sampled_from([1.0, 1e8, 1e-8]))
def test_ordered_sum_is_the_cpp_order(n, seed, spread):
    rng = np.random.default_rng(seed)
    terms = rng.normal(0, spread, n) * rng.choice([1.0, -1.0, 1e10], n)  # much cancellation
    assert A.ordered_sum(terms) == _cpp_order_sum(list(terms))
    assert A.ordered_sum(np.array([-0.0, -0.0])) == 0.0


@settings(max_examples=examples(40))
@given(M=st.one_of(st.sampled_from([0, 1, 2, 3, 31, 32, 255, 256, 257, 511, 513, 2049, 40000]),
                   st.integers(0, 5000)),
       seed=st.integers(0, 2**32 - 1))
def test_combine_partial_sums_is_the_canonical_order_in_reference_and_cpp(M, seed):
    """Many partials (more than the 256 lanes): the reference's vectorised combine, the C++
    combine_block_sums and a loop transcription of the GPU's order give the same bits."""
    rng = np.random.default_rng(seed)
    partials = rng.normal(size=M) * rng.choice([1e-12, 1.0, -1.0, 1e12], size=M)
    expected = _canonical_combine(list(partials))
    assert A.combine_partial_sums(partials) == expected
    assert _core.adaptive_combine_block_sums(partials) == expected


def test_combine_partial_sums_by_hand():
    # 3 partials: lanes 0, 1, 2 hold one each; the trees add (p0 + p2) + p1, not p0 + p1 + p2
    tiny = 2.0**-53                        # 1 + tiny rounds back to 1 (ties to even)
    for combine in (A.combine_partial_sums, _core.adaptive_combine_block_sums):
        assert combine(np.array([1.0, tiny, -1.0])) == tiny        # block order: 0.0
        # 257 partials: lane 0 adds p0 and p256 first
        p = np.zeros(257)
        p[0], p[1], p[256] = 1.0, tiny, -1.0
        assert combine(p) == tiny
        assert combine(np.array([])) == 0.0 and combine(np.array([-0.0])) == 0.0
        assert math.isnan(combine(np.array([1.0, np.nan])))
        assert combine(np.array([np.inf, 1.0])) == np.inf


# --------------------------------------------------------------------------------------
# tanh of the TGO width: spikegrad's own algorithm, the same bits in Python and C++
# --------------------------------------------------------------------------------------

def _tanh_arguments():
    rng = np.random.default_rng(13)
    special = [0.0, -0.0, np.nan, -np.nan, np.inf, -np.inf, 5e-324, -5e-324, 1e-310,
               2.0**-55, -(2.0**-55), 2.0**-54, np.nextafter(2.0**-55, 0), 1e-300, 1e-17,
               0.5, 1.0, -1.0, np.nextafter(1.0, 0), np.nextafter(1.0, 2), 0.34657359,
               0.3465735912322998, 1.0397205352783203, 19.0, -19.0, -19.5, -20.0,
               np.nextafter(22.0, 0), 22.0, -22.0, np.nextafter(-22.0, 0), 38.8, 44.0, 700.0,
               710.0, 1e300, -1e300, np.finfo(np.float64).max]
    edges = np.array([22.0, 1.0, 0.3465735912322998, 1.0397205352783203 / 2, 2.0**-55])
    near = np.concatenate([np.nextafter(edges, np.inf), np.nextafter(edges, -np.inf)])
    return np.concatenate([
        np.array(special), near, -near,
        rng.uniform(-25, 25, 20000),                                  # the interesting range
        rng.normal(0, 1, 10000),
        10.0 ** rng.uniform(-320, 3, 5000) * rng.choice([-1.0, 1.0], 5000),  # tiny .. huge
        rng.uniform(-23, -21, 1000), rng.uniform(21, 23, 1000)])      # near +-22


def _ulp_distance(a, b):
    """|a - b| in units in the last place (ordered integers of the doubles)."""
    def ordered(v):
        i = np.asarray(v, dtype=np.float64).view(np.int64)
        return np.where(i < 0, np.int64(-2**63) - i, i)
    return np.abs(ordered(a) - ordered(b))


def test_portable_tanh_python_and_cpp_agree_bit_for_bit():
    x = _tanh_arguments()
    python = np.array([A.portable_tanh(v) for v in x])
    assert_bitwise_equal(_core.portable_tanh(x), python, "portable_tanh, C++ vs Python")
    # signed zeros keep their sign, NaN stays NaN, the saturation is exact
    assert math.copysign(1.0, A.portable_tanh(-0.0)) == -1.0
    assert math.isnan(A.portable_tanh(math.nan))
    assert A.portable_tanh(math.inf) == 1.0 and A.portable_tanh(-22.0) == -1.0


def test_portable_tanh_is_within_2_ulp_of_tanh():
    """fdlibm's tanh is within 2 ulp of the correctly rounded tanh (checked with mpmath on a
    sample), hence within 3 ulp of np.tanh (itself within 1) on a dense sweep."""
    x = np.concatenate([np.linspace(-23, 23, 400_001), np.linspace(-1e-3, 1e-3, 20_001),
                        _tanh_arguments()])
    x = x[np.isfinite(x)]
    mine = np.array([A.portable_tanh(v) for v in x])
    distance = _ulp_distance(mine, np.tanh(x))
    assert distance.max() <= 3 and (distance <= 1).mean() > 0.995
    mpmath = pytest.importorskip("mpmath")
    with mpmath.workprec(160):
        sample = x[::97]
        exact = np.array([float(mpmath.tanh(mpmath.mpf(float(v)))) for v in sample])
    assert _ulp_distance(mine[::97], exact).max() <= 2


# --------------------------------------------------------------------------------------
# The reference against the spec's equations, by hand
# --------------------------------------------------------------------------------------

def test_reference_hand_case_mean_plus_bessel_std():
    # T = 2, N = 4, lam = 0.5, f_c = 1, V_th = 1, k0 = 1, TGO driven by std (released code)
    x = np.array([[1.0, 2.0, 3.0, 4.0], [0.0, 1.0, -1.0, 2.0]])
    r = A.forward(x, decay=0.5)
    # step 0: h = x; mean 2.5; std = sqrt(((1.5^2 + 0.5^2) * 2) / 3) = sqrt(5/3)
    std0 = math.sqrt(5 / 3)
    assert r.mean[0] == 2.5 and r.std[0] == pytest.approx(std0, rel=1e-15)
    assert r.threshold[0] == pytest.approx(2.5 + std0, rel=1e-15)        # 3.79...: only 4 fires
    assert r.output[0].tolist() == [0, 0, 0, 1]
    assert r.sg_param[0] == pytest.approx(1 + math.tanh(std0 - 1), rel=1e-15)
    # step 1: v = [1, 2, 3, 0] (hard reset to 0); h = 0.5 v + x = [0.5, 2, 0.5, 2]
    h1 = [0.5, 2.0, 0.5, 2.0]
    assert r.membrane[1].tolist() == h1
    assert r.mean[1] == statistics.mean(h1)
    assert r.std[1] == pytest.approx(statistics.stdev(h1), rel=1e-15)   # Bessel: / (N - 1)
    theta1 = statistics.mean(h1) + statistics.stdev(h1)                  # 1.25 + 0.866 = 2.116
    assert r.threshold[1] == pytest.approx(theta1, rel=1e-15)
    assert r.output[1].tolist() == [0, 0, 0, 0]
    # the paper's driver (Eq. 7): d_t = theta[t]
    p = A.forward(x, decay=0.5, tgo_driver="threshold")
    assert p.sg_param[1] == pytest.approx(1 + math.tanh(theta1 - 1), rel=1e-15)
    # the estimated form (Eq. 5, first line): f_c sqrt(1 + lam^2) V_th, every step
    e = A.forward(x, decay=0.5, threshold_mode="estimated", f_c=2.0, v_th=0.5, tgo=False,
                  width=0.7)
    assert e.threshold.tolist() == [math.sqrt(1.25)] * 2
    assert e.sg_param.tolist() == [0.7, 0.7]


def test_equal_inputs_sit_exactly_on_the_threshold():
    # std = 0 and mean = h: theta = h exactly, z = 0, H(0) = 1: every neuron fires
    for dtype in (np.float32, np.float64):
        x = np.full((1, 5), 0.25, dtype=dtype)
        for backend in (A.forward, kernels.adaptive_forward):
            r = backend(x)
            assert r.std[0] == 0.0 and r.threshold[0] == x[0, 0]
            assert (r.output == 1).all()


def test_running_threshold_update_by_hand():
    r = A.update_running_threshold(np.ones(3), np.array([2.0, 0.0]), 0.1)
    assert r.tolist() == [0.9 * 1 + 0.1 * 2.0, 0.9 * 1 + 0.1 * 0.0, 1.0]


# --------------------------------------------------------------------------------------
# The C++ kernel against the reference
# --------------------------------------------------------------------------------------

@st.composite
def adaptive_case(draw, max_T=6):
    T = draw(st.one_of(st.just(1), st.integers(1, max_T)))
    N = draw(st.one_of(st.sampled_from([2, 3, 511, 512, 513, 1025]), st.integers(2, 1500)))
    dtype = draw(st.sampled_from([np.float32, np.float64]))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    scale = draw(st.sampled_from([1.0, 1e-3, 1e3, 1e-30, 1e30]))
    x = (rng.normal(draw(st.sampled_from([0.5, 0.0, -0.5])), 1.0, (T, N)) * scale).astype(dtype)
    if draw(st.booleans()):                      # repeated values: ties with the statistic
        x[:, : N // 2] = x[:, :1]
    v_init = {"none": None, "scalar": float(rng.normal() * scale),
              "array": (rng.normal(0, 1, N) * scale).astype(dtype)}[
        draw(st.sampled_from(["none", "scalar", "array"]))]
    return dict(
        x=x, v_init=v_init,
        decay=draw(st.one_of(st.sampled_from([0.0, 0.2, 0.5, 1.0]), st.floats(0, 1))),
        v_th=draw(st.sampled_from([1.0, 0.5, 2.0, 1e-3, 1e3])),
        f_c=draw(st.sampled_from([1.0, 0.5, 1.5])),
        threshold_mode=draw(st.sampled_from(["true", "estimated"])),
        tgo=draw(st.booleans()), tgo_driver=draw(st.sampled_from(["std", "threshold"])),
        width=draw(st.sampled_from([1.0, 0.5, 2.0])),
        charge=draw(st.sampled_from(["mul", "mul", "decay_input", "no_decay_input", "if"])),
        reset=draw(st.sampled_from(["hard", "hard", "soft", "none"])),
        v_reset=draw(st.sampled_from([0.0, 0.0, -0.5])),
        detach_reset=draw(st.booleans()))


def _hand_edge(dtype, T=1, N=2, **kw):
    case = dict(x=np.ones((T, N), dtype=dtype), v_init=None, decay=0.2, v_th=1.0, f_c=1.0,
                threshold_mode="true", tgo=True, tgo_driver="std", width=1.0, charge="mul",
                reset="hard", v_reset=0.0, detach_reset=False)
    case.update(kw)
    return case


def check_kernel_against_reference(case, seed):
    dtype = case["x"].dtype
    T = case["x"].shape[0]
    what = {k: v for k, v in case.items() if k not in ("x", "v_init")}
    try:
        expected = A.forward(**case)
    except ValueError as error:      # k_t rounded to 0: both backends refuse, at the same t
        assert "TGO width" in str(error), error
        with pytest.raises(ValueError, match=str(error).split(" (")[0].replace("*", r"\*")
                           .replace("(", r"\(").replace(")", r"\)")):
            kernels.adaptive_forward(**case)
        return
    actual = kernels.adaptive_forward(**case)
    for name in ("output", "membrane", "v_last", "threshold", "mean", "std"):
        assert_bitwise_equal(getattr(actual, name), getattr(expected, name),
                             f"adaptive forward {name} {what}")
    # k_t: both call portable_tanh, spikegrad's own tanh, so k_t is bit-identical too
    assert_bitwise_equal(actual.sg_param, expected.sg_param, f"adaptive width {what}")
    # the backward: an ordinary neuron with the recorded per-step thresholds and widths
    rng = np.random.default_rng(seed)
    upstream = [rng.normal(size=case["x"].shape).astype(dtype),
                rng.normal(size=case["x"].shape).astype(dtype),
                rng.normal(size=case["x"].shape[1:]).astype(dtype)]
    g_ref = ref.backward(expected, *upstream)
    g_ker = kernels.backward(actual, *upstream)
    scale = ref.error_scale(expected, *upstream)
    for name in GRADIENTS:
        assert_close(getattr(g_ker, name), getattr(g_ref, name), f"grad {name} {what}",
                     dtype=dtype, T=T, magnitude=getattr(scale, name))


@settings(max_examples=examples(300))
@given(case=adaptive_case(), seed=st.integers(0, 2**32 - 1))
@example(case=_hand_edge(np.float32), seed=0)                                  # T = 1, N = 2
@example(case=_hand_edge(np.float64, T=3, N=513, threshold_mode="estimated", decay=0.0),
         seed=1)                                              # x exactly at theta = V_th
@example(case=_hand_edge(np.float32, T=2, N=1024, x=-np.ones((2, 1024), np.float32),
                         tgo_driver="threshold"), seed=2)     # negative inputs and threshold
def test_adaptive_kernel_matches_reference(case, seed):
    check_kernel_against_reference(case, seed)


def test_tgo_width_rounding_to_zero_is_an_error():
    # d_t - V_th = std - 1000 < -19: tanh = -1 in float64, k_t = 0 (an undefined rect width)
    x = np.array([[0.5, 0.25]], np.float32)
    for backend in (A.forward, kernels.adaptive_forward):
        with pytest.raises(ValueError, match="TGO width .* rounds to 0 at t = 0"):
            backend(x, v_th=1000.0)
        assert backend(x, v_th=1000.0, tgo=False).sg_param.tolist() == [1.0]
    assert A.forward(x, v_th=15.0).sg_param[0] > 0   # tiny, but a width


def test_adaptive_kernel_huge_and_tiny_inputs():
    rng = np.random.default_rng(5)
    for dtype in (np.float32, np.float64):
        for magnitude in (1e-30, 1e30, 1e37 if dtype == np.float32 else 1e150):
            x = (rng.normal(0.5, 1, (3, 700)) * magnitude).astype(dtype)
            check_kernel_against_reference(_hand_edge(dtype, x=x), seed=3)


@pytest.mark.parametrize("x", [
    np.array([[np.nan, 1.0, 2.0], [0.5, 0.5, 0.5]]),    # NaN input at t = 0
    np.array([[1.0, 2.0, 3.0], [np.inf, 0.5, 0.5]]),    # Inf input at t = 1
    np.array([[1e300, -1e300, 0.0]]),                   # float64: the squared deviations
])                                                      # overflow; float32: inf inputs
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_undefined_statistic_is_an_error_in_reference_and_kernel(x, dtype):
    """One NaN membrane would make every threshold NaN and silence the layer (docs/atgo.md)."""
    with np.errstate(over="ignore"):
        x = x.astype(dtype)
    for forward in (A.forward, kernels.adaptive_forward):
        # the reference's statistic meets NaN / inf / overflow (NumPy warns) before it raises
        with pytest.raises(ValueError, match="not finite at t = "), \
                np.errstate(over="ignore", invalid="ignore"):
            forward(x)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_adaptive_kernel_matches_reference_past_256_blocks(dtype):
    """More block sums than the 256 lanes of the canonical combine (N = 301 blocks of 512
    and a partial one): the lanes add several block sums each, then the trees."""
    rng = np.random.default_rng(17)
    N = 301 * 512 + 77
    x = (rng.normal(0.3, 1.0, (2, N)) * rng.choice([1.0, 1e-4, 1e4], N)).astype(dtype)
    check_kernel_against_reference(_hand_edge(dtype, T=2, N=N, x=x, decay=0.3, v_th=0.9),
                                   seed=4)


def test_adaptive_kernel_does_not_depend_on_thread_count():
    rng = np.random.default_rng(6)
    x = rng.normal(0.5, 1, (4, 20_011)).astype(np.float32)
    runs = [kernels.adaptive_forward(x, num_threads=n) for n in (1, 2, 3)]
    for other in runs[1:]:
        for name in ("output", "membrane", "v_last", "threshold", "sg_param", "mean", "std"):
            assert_bitwise_equal(getattr(other, name), getattr(runs[0], name),
                                 f"{name}, thread counts")


def test_step_functions_compose_to_the_fused_kernel():
    """The data-parallel building blocks, run by hand in one process, give the same bits."""
    rng = np.random.default_rng(7)
    x = rng.normal(0.5, 1, (3, 1300)).astype(np.float32)
    fused = kernels.adaptive_forward(x, decay=0.3)
    v, h, o = np.zeros(1300, np.float32), np.empty(1300, np.float32), np.empty(1300, np.float32)
    for t in range(3):
        total = A.combine_partial_sums(_core.adaptive_charge_step(x[t], v, h, 0.3, 0.0,
                                                                  charge="mul"))
        squared = A.combine_partial_sums(_core.adaptive_deviation_step(h, total / 1300))
        theta, width, mean, std = _core.adaptive_step_values(
            total, squared, 1300, t, 0.3, np.dtype(np.float32), threshold_mode="true", f_c=1.0,
            v_th=1.0, tgo=True, tgo_driver="std", width=1.0)
        _core.adaptive_fire_step(h, v, o, theta, 0.0, reset="hard")
        assert (theta, width, mean, std) == (fused.threshold[t], fused.sg_param[t],
                                             fused.mean[t], fused.std[t])
        assert_bitwise_equal(o, fused.output[t], f"step {t} output")
    assert_bitwise_equal(v, fused.v_last, "v_last")


@pytest.mark.parametrize("kwargs, error, message", [
    (dict(x=np.ones((2, 1), np.float32)), ValueError, "N >= 2"),
    (dict(threshold_mode="paper"), ValueError, "threshold_mode"),
    (dict(tgo_driver="theta"), ValueError, "tgo_driver"),
    (dict(width=0.0), ValueError, "width"),
    (dict(f_c=float("nan")), ValueError, "f_c"),
    (dict(decay=float("nan")), ValueError, "decay"),
    (dict(charge="lif"), ValueError, "charge"),
    (dict(x=np.ones((2, 3), np.int32)), TypeError, "x"),
])
def test_adaptive_kernel_rejects_bad_input(kwargs, error, message):
    case = dict(x=np.ones((2, 3), np.float32))
    case.update(kwargs)
    with pytest.raises(error, match=message):
        kernels.adaptive_forward(**case)
    if error is ValueError:
        with pytest.raises(ValueError, match=message):
            A.forward(**case)


# --------------------------------------------------------------------------------------
# The layer spikegrad.nn.ATGO
# --------------------------------------------------------------------------------------

torch = pytest.importorskip("torch")
from spikegrad.nn import ATGO  # noqa: E402


def _layer_case(seed, dtype=torch.float32, shape=(4, 3, 50)):
    g = torch.Generator().manual_seed(seed)
    return (torch.randn(shape, generator=g, dtype=dtype) * 0.8 + 0.4).requires_grad_()


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("settings_", [
    dict(), dict(learn_decay=True), dict(threshold_mode="estimated", decay=0.5),
    dict(tgo=False, width=0.5), dict(tgo_driver="threshold", f_c=1.2, v_th=0.8)])
def test_layer_matches_reference_in_training_and_evaluation(dtype, settings_):
    layer = ATGO(**settings_).to(dtype)
    np_dtype = np.float32 if dtype == torch.float32 else np.float64
    ref_kw = {k: v for k, v in settings_.items() if k not in ("learn_decay", "decay")}
    running = np.full(4, layer.v_th, dtype=np_dtype)
    for step in range(2):
        x = _layer_case(step, dtype)
        lam = layer.leak(dtype)
        out = layer(x)
        upstream = torch.randn(x.shape, generator=torch.Generator().manual_seed(9), dtype=dtype)
        (out * upstream).sum().backward()
        expected = A.forward(x.detach().numpy(), decay=lam.item(), **ref_kw)
        assert_bitwise_equal(out.detach().numpy(), expected.output, f"train output {settings_}")
        grads = ref.backward(expected, upstream.numpy())
        scale = ref.error_scale(expected, upstream.numpy())
        assert_close(x.grad.numpy(), grads.x, "grad x", dtype=np_dtype, T=4, magnitude=scale.x)
        if layer.learn_decay:   # dL/dw = dL/dlam * sigmoid'(w)
            s = torch.sigmoid(layer.w.detach().double()).item()
            assert_close(layer.w.grad.item(), grads.decay * s * (1 - s), "grad w",
                         dtype=np_dtype, T=4, magnitude=scale.decay * s * (1 - s))
            layer.w.grad = None
        running = A.update_running_threshold(running, expected.threshold, layer.momentum)
        assert_bitwise_equal(layer.running_threshold.numpy(), running, "running_threshold")

    layer.eval()
    x = _layer_case(5, dtype)
    out = layer(x)
    lam = layer.leak(dtype).item()
    if layer.threshold_mode == "estimated":
        theta = np.full(4, A.estimated_threshold(lam, layer.f_c, layer.v_th))
    else:
        theta = running
    expected = ref.forward(x.detach().numpy(), decay=lam, threshold=theta,
                           sg_param=layer.width)
    assert_bitwise_equal(out.detach().numpy(), expected.output, "eval output")
    upstream = torch.ones_like(x)
    out.backward(upstream)
    assert_close(x.grad.numpy(), ref.backward(expected, upstream.numpy()).x, "eval grad x",
                 dtype=np_dtype, T=4,
                 magnitude=ref.error_scale(expected, upstream.numpy()).x)


def test_learn_decay_starts_at_decay():
    layer = ATGO(learn_decay=True)
    assert layer.w.item() == pytest.approx(-math.log(4), abs=1e-7)
    assert layer.leak(torch.float64).item() == pytest.approx(0.2, rel=1e-7)


def test_untrained_evaluation_uses_v_th_and_shorter_windows_use_the_first_steps():
    layer = ATGO(v_th=0.7).eval()
    x = _layer_case(1).detach()
    expected = ref.forward(x.numpy(), threshold=0.7)
    assert_bitwise_equal(layer(x).numpy(), expected.output, "untrained eval")
    layer.train()
    layer(_layer_case(2, shape=(5, 2, 10)).detach())
    layer.eval()
    short = x[:3]
    expected = ref.forward(short.numpy(), threshold=layer.running_threshold[:3].numpy())
    assert_bitwise_equal(layer(short).numpy(), expected.output, "eval, shorter window")


def test_state_dict_round_trip():
    layer = ATGO(learn_decay=True)
    for seed in range(3):
        layer(_layer_case(seed))
    with torch.no_grad():
        layer.w += 0.3
    state = layer.state_dict()
    assert set(state) == {"w", "running_threshold"}
    fresh = ATGO(learn_decay=True)
    fresh.load_state_dict(state)
    assert torch.equal(fresh.running_threshold, layer.running_threshold)
    assert torch.equal(fresh.w, layer.w)
    layer.eval(), fresh.eval()
    x = _layer_case(7).detach()
    assert torch.equal(fresh(x), layer(x))


@pytest.mark.parametrize("kwargs, error, message", [
    (dict(threshold_mode="paper"), ValueError, "threshold_mode"),
    (dict(tgo_driver="theta"), ValueError, "tgo_driver"),
    (dict(v_th=0.0), ValueError, "v_th"),
    (dict(v_th=float("inf")), ValueError, "v_th"),
    (dict(f_c=-1.0), ValueError, "f_c"),
    (dict(width=0.0), ValueError, "width"),
    (dict(momentum=1.5), ValueError, "momentum"),
    (dict(decay=1.0, learn_decay=True), ValueError, "decay"),
    (dict(decay="0.2"), TypeError, "decay"),
    (dict(tgo=1), TypeError, "tgo"),
])
def test_layer_rejects_bad_arguments(kwargs, error, message):
    with pytest.raises(error, match=message):
        ATGO(**kwargs)


def test_layer_errors_in_use():
    layer = ATGO()
    with pytest.raises(ValueError, match="at least 2 neurons"):
        layer(torch.ones(3, 1))
    layer(torch.randn(4, 2, 8))
    with pytest.raises(ValueError, match="training window T = 5 is longer"):
        layer(torch.randn(5, 2, 8))
    layer.eval()
    with pytest.raises(ValueError, match="evaluation window T = 6 is longer than the trained T = 4"):
        layer(torch.randn(6, 2, 8))
    with pytest.raises(TypeError, match="x must be float32 or float64"):
        layer(torch.ones(2, 2, dtype=torch.int64))
    with pytest.raises(ValueError, match=r"\[T, B, ...\]"):
        layer(torch.ones(4))


def test_sync_stats_without_a_process_group_is_an_error():
    with pytest.raises(RuntimeError, match="init_process_group"):
        ATGO(sync_stats=True)(torch.randn(2, 2, 3))


def test_diagnostics():
    layer = ATGO()
    x = _layer_case(3).detach()
    layer(x)
    assert layer.diagnostics == {}                     # nothing computed unless asked for
    layer.record_diagnostics = True
    out = layer(x)
    d = layer.diagnostics
    h = A.forward(x.numpy()).membrane.reshape(4, -1)
    theta = d["threshold"].numpy()
    width = d["width"].numpy()
    spikes = out.reshape(4, -1).numpy().sum(1)           # 0/1 spikes: counted exactly
    np.testing.assert_allclose(d["firing_rate"].numpy(), spikes / 150, rtol=2**-23)
    # rect: f'(z) > 0 exactly where |h - theta| < width / 2 (evaluated in float64)
    z = h.astype(np.float64) - theta.astype(np.float64)[:, None]
    available = (np.abs(z) < width.astype(np.float64)[:, None] / 2).sum(1)
    np.testing.assert_allclose(d["gradient_available"].numpy(), available / 150, rtol=2**-23)
    assert (0 < d["firing_rate"]).all() and (d["gradient_available"] < 1).all()


def test_opcheck():
    from spikegrad.ops import adaptive_ops  # noqa: F401

    x = torch.randn(3, 40, dtype=torch.float64, requires_grad=True)
    args = (x, torch.tensor(0.2, dtype=torch.float64, requires_grad=True),
            torch.zeros(40, dtype=torch.float64), 0.0, "mul", "hard", False, "true", 1.0,
            1.0, True, "std", 1.0, True)
    torch.library.opcheck(torch.ops.spikegrad.adaptive_forward, args)


# --------------------------------------------------------------------------------------
# Data parallel: 2 gloo processes give the result of one process on the whole batch
# --------------------------------------------------------------------------------------

def _free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


DDP_CONFIGS = [(4, 512), (6, 77)]   # (batch, features): whole 512-blocks per rank, or not


def _ddp_worker(rank, world, port, directory):
    import datetime

    import torch.distributed as dist

    os.environ["MASTER_ADDR"] = "127.0.0.1"
    os.environ["MASTER_PORT"] = str(port)
    dist.init_process_group("gloo", rank=rank, world_size=world,
                            timeout=datetime.timedelta(seconds=60))
    try:
        torch.set_num_threads(1)
        for batch, features in DDP_CONFIGS:
            x = _layer_case(11, shape=(4, batch, features))
            share = batch // world
            x_local = x.detach()[:, rank * share:(rank + 1) * share].clone().requires_grad_()
            layer = ATGO(learn_decay=True, sync_stats=True)
            layer.record_diagnostics = True
            for _ in range(2):
                out = layer(x_local)
            out.sum().backward()
            torch.save(dict(out=out.detach(), grad_x=x_local.grad, grad_w=layer.w.grad,
                            running=layer.running_threshold,
                            threshold=layer.diagnostics["threshold"]),
                       os.path.join(directory, f"{batch}-{features}-rank{rank}.pt"))
        dist.barrier()
    except BaseException:
        dist.destroy_process_group()
        raise
    # Done: leave without the interpreter's teardown, where gloo's background threads
    # sometimes abort the child ("terminate called without an active exception").
    os._exit(0)


def test_sync_stats_two_processes_equal_one_process():
    import torch.multiprocessing as mp

    with tempfile.TemporaryDirectory() as directory:
        context = mp.start_processes(_ddp_worker, args=(2, _free_port(), directory),
                                     nprocs=2, join=False, start_method="spawn")
        for _ in range(120):                       # at most 2 minutes
            if context.join(timeout=1):
                break
        else:
            for process in context.processes:
                process.kill()
            pytest.fail("the gloo processes did not finish in 2 minutes")
        results = {config: [torch.load(os.path.join(directory, f"{config[0]}-{config[1]}-rank{r}.pt"))
                            for r in range(2)] for config in DDP_CONFIGS}

    for (batch, features), ranks in results.items():
        x = _layer_case(11, shape=(4, batch, features))
        single = ATGO(learn_decay=True)
        single.record_diagnostics = True
        for _ in range(2):
            out = single(x)
        out.sum().backward()
        grad_w = [r["grad_w"].item() for r in ranks]
        # DDP all-reduces (sums) the ranks' parameter gradients: two roundings of their terms
        assert_close(sum(grad_w), single.w.grad.item(), "grad w, 2 ranks", dtype=np.float32,
                     T=4, magnitude=sum(abs(g) for g in grad_w))
        if features * (batch // 2) % 512 == 0:    # each rank holds whole blocks: same sums
            for r in ranks:
                assert torch.equal(r["threshold"], single.diagnostics["threshold"])
                assert torch.equal(r["running"], single.running_threshold)
            assert torch.equal(torch.cat([r["out"] for r in ranks], 1), out.detach())
            assert torch.equal(torch.cat([r["grad_x"] for r in ranks], 1), x.grad)
        else:                                     # regrouped float64 sums: their rounding
            for r in ranks:
                assert torch.equal(r["threshold"], ranks[0]["threshold"])  # ranks agree
                assert_close(r["threshold"].numpy(), single.diagnostics["threshold"].numpy(),
                             "threshold", dtype=np.float32, T=0)


# --------------------------------------------------------------------------------------
# The PLIF parameter w against finite differences (smooth mode, at ATGO's recorded values)
# --------------------------------------------------------------------------------------

@pytest.mark.parametrize("seed", [0, 1, 2])
def test_w_gradient_equals_finite_differences_in_smooth_mode(seed):
    """theta[t] and k_t are detached statistics, so what the backward differentiates is the
    neuron with those per-step values: in smooth mode (s = F(z), rect's clamp primitive)
    that neuron is differentiable in w through lam = sigmoid(w), and dL/dw must equal the
    central difference of the loss. Tolerances as in test_ref_backward (float64, step 1e-6);
    the fixed cases keep every z away from rect's kinks by far more than the step moves it."""
    rng = np.random.default_rng(seed)
    x = rng.normal(0.5, 1.0, (4, 6))
    w0 = -math.log(4) + 0.3 * seed
    recorded = A.forward(x, decay=1 / (1 + math.exp(-w0)))
    go, gv = rng.normal(size=x.shape), rng.normal(size=6)

    def loss(w):
        r = ref.forward(x, decay=1 / (1 + math.exp(-w)), threshold=recorded.threshold,
                        sg_param=recorded.sg_param, smooth=True)
        return float((r.output * go).sum() + (r.v_last * gv).sum())

    r = ref.forward(x, decay=1 / (1 + math.exp(-w0)), threshold=recorded.threshold,
                    sg_param=recorded.sg_param, smooth=True)
    z = r.membrane - r.threshold[:, None]
    kinks = np.abs(np.abs(z) - r.sg_param[:, None] / 2)
    assert kinks.min() > 1e-4, "case too close to a kink of the rect primitive"
    lam = 1 / (1 + math.exp(-w0))
    analytic = ref.backward(r, go, None, gv).decay * lam * (1 - lam)     # dlam/dw = s(1 - s)
    step = 1e-6
    numeric = (loss(w0 + step) - loss(w0 - step)) / (2 * step)
    np.testing.assert_allclose(analytic, numeric, rtol=1e-5, atol=1e-6)
    # and the layer (float64, training) returns exactly this chain for the non-smooth neuron
    layer = ATGO(learn_decay=True).double()
    with torch.no_grad():
        layer.w.fill_(w0)
    out = layer(torch.from_numpy(x))
    (out * torch.from_numpy(go)).sum().backward()
    plain = ref.backward(recorded, go)
    scale = ref.error_scale(recorded, go)
    assert_close(layer.w.grad.item(), plain.decay * lam * (1 - lam), "layer grad w",
                 dtype=np.float64, T=4, magnitude=scale.decay * lam * (1 - lam))
