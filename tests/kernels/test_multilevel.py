"""The multi-level circulate-firing (CF) neuron and the PNB loss (docs/spec.md §6, the CF paper), NumPy
only: the reference against hand-checked cases and finite differences, the compiled kernels
against the reference (forward bit for bit, the rest within spikegrad.testing.compare's
bound), and the PNB loss against a direct transcription of Eqs. 18-22 written here."""

import math

import numpy as np
import pytest
from hypothesis import assume, example, given, settings
from hypothesis import strategies as st

from spikegrad import kernels, ref
from spikegrad.testing import strategies as sgst
from spikegrad.testing.compare import assert_bitwise_equal, assert_close

from conftest import examples
from pnb_transcription import transcription

ML = ref.multilevel
F = ref.formulas

# ---------------------------------------------------------------------------------------
# Hand-checked cases
# ---------------------------------------------------------------------------------------

ISSUE_H = [-3, -2, -1.5, -1, -0.5, 0, 1, 1 + 1e-7, 2, 2.5, 7]
ISSUE_O = [-2, -1, -1, 0, 0, 0, 0, 1, 1, 2, 2]
ISSUE_V = [-1, -1, -0.5, -1, -0.5, 0, 1, None, 1, 0.5, 5]   # None: h - 1, see below


@pytest.mark.parametrize("backend", ["ref", "kernels"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("surrogate", ["span", "tsg"])
def test_issue_hand_checked_case(backend, dtype, surrogate):
    """theta = 1, K = 2, v_prev = 0: the strict comparisons (h = 1, 2, -1, -2 do not
    fire that level) and the circulate part (h = 7 emits 2, keeps 5)."""
    forward = ML.forward if backend == "ref" else kernels.multilevel_forward
    h = np.array(ISSUE_H, dtype=dtype)
    r = forward(h[None, :], decay=0.25, surrogate=surrogate)
    assert r.output.dtype == dtype
    np.testing.assert_array_equal(r.output[0], np.array(ISSUE_O, dtype=dtype))
    np.testing.assert_array_equal(r.membrane[0], h)
    expected_v = np.array([v if v is not None else 0.0 for v in ISSUE_V], dtype=dtype)
    # 1 + 1e-7 fires one level; h - 1 is exact (Sterbenz), the value of h[7] in the dtype
    expected_v[7] = float(h[7]) - 1.0
    np.testing.assert_array_equal(r.v_last, expected_v)
    assert abs(float(r.v_last[7]) - 1e-7) <= 2 * np.finfo(dtype).eps


@pytest.mark.parametrize("backend", ["ref", "kernels"])
def test_two_steps_and_asymmetric_levels(backend):
    forward = ML.forward if backend == "ref" else kernels.multilevel_forward
    # t = 0: h = 7 -> o = 2, v = 5; t = 1: h = 0.25 * 5 + 0 = 1.25 -> o = 1, v = 0.25
    r = forward(np.array([[7.0], [0.0]]), decay=0.25, surrogate="tsg")
    np.testing.assert_array_equal(r.output[:, 0], [2.0, 1.0])
    np.testing.assert_array_equal(r.membrane[:, 0], [7.0, 1.25])
    np.testing.assert_array_equal(r.v_last, [0.25])
    # theta_p = 0.5, K_P = 3: h = 1.75 passes 0.5, 1.0, 1.5 -> o = 3, v = 0.25;
    # theta_n = 2, K_N = 1: h = -5 passes -2 only -> o = -1, v = -3; h = -2 fires nothing
    r = forward(np.array([[1.75, -5.0, -2.0, 0.5]]), theta_p=0.5, theta_n=2.0, k_p=3, k_n=1,
                surrogate="span")
    np.testing.assert_array_equal(r.output[0], [3.0, -1.0, 0.0, 0.0])
    np.testing.assert_array_equal(r.v_last, [0.25, -3.0, -2.0, 0.5])


def test_span_surrogate_window_by_hand():
    """Eq. 14 with theta = 1, K = 2, a = 0.7: a on (0.5, 2.5) and on (-2.5, -0.5), open."""
    h = np.array([0.5, 0.50001, 1.0, 2.49999, 2.5, -0.5, -0.50001, -2.49999, -2.5, 0.0, 3.0])
    r = ML.forward(h[None, :], surrogate="span", a=0.7)
    g = ML.backward(r, grad_output=np.ones((1, h.size)))
    # with only dL/do = 1 and no future, dL/dh = do/dh
    np.testing.assert_array_equal(g.x[0], [0, 0.7, 0.7, 0.7, 0, 0, 0.7, 0.7, 0, 0, 0])
    assert g.a is None


def test_tsg_surrogate_and_reset_path_by_hand():
    """TSG with a = 1, theta = 1, K = 2 at h = 1.25: the level-1 triangle gives
    1 * (1 - 0.25) = 0.75, the level-2 triangle 1 * (1 - 0.75) = 0.25, the negative
    levels nothing; do/dh = 1, dv/dh = 1 - 1 * 1 = 0."""
    r = ML.forward(np.array([[1.25]]), surrogate="tsg", a=1.0)
    g_o = ML.backward(r, grad_output=np.ones((1, 1)))
    assert g_o.x[0, 0] == 1.0
    # dF_a/da at d = 0.25: 0.25 * 0.75; at d = -0.75: -0.75 * 0.25 -> sum 0
    assert g_o.a == 0.0
    g_v = ML.backward(r, grad_output=None, grad_v_last=np.ones(1))
    assert g_v.x[0, 0] == 0.0
    r = ML.forward(np.array([[0.5]]), surrogate="tsg", a=1.0)   # d = -0.5 from level 1
    g = ML.backward(r, grad_output=np.ones((1, 1)))
    assert g.x[0, 0] == 0.5 and g.a == -0.25                    # -0.5 * (1 - 0.5)


# ---------------------------------------------------------------------------------------
# The level formulas: derivatives against finite differences of their primitives
# ---------------------------------------------------------------------------------------

@settings(max_examples=examples(200))
@given(d=st.floats(-3, 3), a=st.floats(0.2, 4))
def test_tsg_derivatives_are_those_of_the_primitive(d, a):
    step = 1e-6
    m = 1 - a * abs(d)
    if abs(m) < 1e-4 or abs(d) < 1e-4:   # the kinks of the C1 primitive
        return
    dd = np.array([d - step, d + step])
    fd_d = np.diff(F.tsg_primitive(dd, a))[0] / (2 * step)
    fd_a = (F.tsg_primitive(np.array([d]), a + step)[0]
            - F.tsg_primitive(np.array([d]), a - step)[0]) / (2 * step)
    np.testing.assert_allclose(F.tsg_derivative(np.array([d]), a)[0], fd_d, atol=1e-6)
    np.testing.assert_allclose(F.tsg_a_derivative(np.array([d]), a)[0], fd_a, atol=1e-6)
    # the triangle of docs/spec.md §5 with p = 1/a is the same function
    np.testing.assert_allclose(F.tsg_derivative(np.array([d]), a)[0],
                               F.triangle_derivative(np.array([d]), 1 / a)[0], rtol=1e-12,
                               atol=1e-15)
    assert F.tsg_primitive(np.array([-1 / a - 1.0]), a)[0] == 0.0
    assert F.tsg_primitive(np.array([1 / a + 1.0]), a)[0] == 1.0


# ---------------------------------------------------------------------------------------
# The reference's backward against finite differences in smooth mode
# ---------------------------------------------------------------------------------------

STEP = 1e-6


def _kink_distance(case, result):
    """The smallest distance of any h[t, n] from a point where the smooth neuron's
    derivative has a kink (TSG: each level and level +- 1/a; span: the window bounds).
    A central difference whose stencil straddles one is off by O(STEP * a^2), not O(STEP^2),
    which can exceed the test's atol: such draws test the stencil, not the backward."""
    h = result.membrane
    T = h.shape[0]
    a = np.broadcast_to(np.asarray(case["a"], dtype=np.float64), (T,))[:, None]
    theta_p, theta_n = float(case["theta_p"]), float(case["theta_n"])
    if case["surrogate"] == "tsg":
        levels = [k * theta_p for k in range(1, case["k_p"] + 1)] + \
                 [-k * theta_n for k in range(1, case["k_n"] + 1)]
        distances = [np.abs(h - (c + offset / a)) for c in levels for offset in (-1, 0, 1)]
    else:
        bounds = (0.5 * theta_p, (case["k_p"] + 0.5) * theta_p,
                  -(case["k_n"] + 0.5) * theta_n, -0.5 * theta_n)
        distances = [np.abs(h - bound) for bound in bounds]
    return float(np.min(distances))


@settings(max_examples=examples(250))
@given(case=sgst.multilevel_case(smooth=st.just(True), detach_reset=st.just(False),
                                 dtype=st.just(np.float64), shape=sgst.shapes(max_T=5, max_N=3)),
       seed=st.integers(0, 2**32 - 1))
def test_smooth_backward_equals_finite_differences(case, seed):
    rng = np.random.default_rng(seed)
    T, N = case["x"].shape
    case["v_init"] = rng.normal(0, 0.5, N)
    upstream = (rng.normal(size=(T, N)), rng.normal(size=(T, N)), rng.normal(size=N))

    def loss(**change):
        r = ML.forward(**dict(case, **change))
        return float((r.output * upstream[0]).sum() + (r.membrane * upstream[1]).sum()
                     + (r.v_last * upstream[2]).sum())

    result = ML.forward(**case)
    assume(_kink_distance(case, result) > 1e-4)
    grads = ML.backward(result, *upstream)
    names = ["x", "v_init", "decay"] + (["a"] if case["surrogate"] == "tsg" else [])
    for name in names:
        value = np.array(case[name], dtype=np.float64)
        expected = np.zeros_like(value)
        for index in np.ndindex(value.shape):
            up, down = value.copy(), value.copy()
            up[index] += STEP
            down[index] -= STEP
            expected[index] = (loss(**{name: up}) - loss(**{name: down})) / (2 * STEP)
        np.testing.assert_allclose(getattr(grads, name), expected, rtol=1e-5, atol=1e-6,
                                   err_msg=f"d loss / d {name}, case {case}")


# ---------------------------------------------------------------------------------------
# The C++ kernels against the reference
# ---------------------------------------------------------------------------------------

GRADIENTS = ("x", "v_init", "decay", "a")


def _issue_case(dtype, **change):
    case = sgst.NeuronCase(x=np.array([ISSUE_H], dtype=dtype), decay=0.25, theta_p=1.0,
                           theta_n=1.0, k_p=2, k_n=2, surrogate="tsg", a=1.0,
                           detach_reset=False, v_init=None, smooth=False)
    case.update(change)
    return case


@settings(max_examples=examples(800))
@given(case=sgst.multilevel_case(), seed=st.integers(0, 2**32 - 1))
@example(case=_issue_case(np.float32), seed=0)
@example(case=_issue_case(np.float64, surrogate="span", detach_reset=True), seed=1)
@example(case=_issue_case(np.float64, smooth=True, v_init=0.3), seed=2)
@example(case=_issue_case(np.float32, theta_p=1e3, theta_n=1e-3, x=np.array(
    [[2e3, -2e-3, 1e3, -1e-3, 3e3]], dtype=np.float32)), seed=3)
def test_kernels_match_reference(case, seed):
    dtype = case["x"].dtype
    T, N = case["x"].shape
    expected = ML.forward(**case)
    actual = kernels.multilevel_forward(**case)
    # the level primitives use no transcendental function (only +, -, *, |.|, clamp), so
    # the forward is bit-identical in smooth mode too
    for name in ("output", "membrane", "v_last"):
        a, e = getattr(actual, name), getattr(expected, name)
        assert_bitwise_equal(a, e, f"forward {name} (smooth={case['smooth']})")

    rng = np.random.default_rng(seed)
    upstream = [rng.normal(size=(T, N)).astype(dtype), rng.normal(size=(T, N)).astype(dtype),
                rng.normal(size=N).astype(dtype)]
    for drop in range(3):
        if rng.random() < 0.3:
            upstream[drop] = None
    g_ref = ML.backward(expected, *upstream)
    g_ker = kernels.multilevel_backward(actual, *upstream)
    scale = ML.error_scale(expected, *upstream)
    for name in GRADIENTS:
        e = getattr(g_ref, name)
        if e is None:
            assert getattr(g_ker, name) is None
            continue
        assert_close(getattr(g_ker, name), e, f"grad {name}", dtype=dtype, T=T,
                     magnitude=getattr(scale, name))


@pytest.mark.parametrize("surrogate", ["span", "tsg"])
@pytest.mark.parametrize("smooth", [False, True])
def test_kernels_same_bits_for_any_thread_count(surrogate, smooth):
    rng = np.random.default_rng(5)
    x = rng.normal(0, 2, (6, 3000)).astype(np.float32)
    case = dict(x=x, surrogate=surrogate, smooth=smooth, a=rng.uniform(0.5, 1.5, 6))
    go = rng.normal(size=x.shape).astype(np.float32)
    results = []
    for threads in (1, 2, 3):
        r = kernels.multilevel_forward(**case, num_threads=threads)
        g = kernels.multilevel_backward(r, go, num_threads=threads)
        results.append((r.output, r.v_last, g.x, g.decay, g.a))
    for other in results[1:]:
        for a, b in zip(results[0], other):
            if a is None:   # no gradient for the span height
                assert b is None and surrogate == "span"
                continue
            assert np.array_equal(np.asarray(a), np.asarray(b), equal_nan=True)


@pytest.mark.parametrize("bad, error", [
    (dict(theta_p=0.0), ValueError), (dict(theta_n=-1.0), ValueError),
    (dict(theta_p=math.inf), ValueError), (dict(k_p=0), ValueError),
    (dict(k_n=1.5), TypeError), (dict(a=0.0), ValueError),
    (dict(a=np.ones(3)), ValueError), (dict(surrogate="rect"), ValueError),
    (dict(decay=math.nan), ValueError)])
@pytest.mark.parametrize("backend", ["ref", "kernels"])
def test_bad_parameters_raise(bad, error, backend):
    forward = ML.forward if backend == "ref" else kernels.multilevel_forward
    with pytest.raises(error, match=next(iter(bad)) if next(iter(bad)) != "surrogate"
                       else "surrogate"):
        forward(np.zeros((2, 3)), **bad)


# ---------------------------------------------------------------------------------------
# The PNB loss against a direct transcription of Eqs. 18-22
# ---------------------------------------------------------------------------------------

def _membranes(rng, layers, theta_p, theta_n, K):
    hs = []
    for n in layers:
        h = rng.normal(0, 1.2 * K * max(theta_p, theta_n), n)
        # keep a margin from the region bounds so finite differences stay in one region
        bounds = np.concatenate([np.arange(0, K + 2) * theta_p, -np.arange(0, K + 2) * theta_n])
        near = np.abs(h[:, None] - bounds[None, :]).min(1) < 1e-3
        h[near] += 3e-3
        hs.append(h)
    return hs


@settings(max_examples=examples(60))
@given(seed=st.integers(0, 2**32 - 1), K=st.integers(1, 3),
       thetas=st.sampled_from([(1.0, 1.0), (0.5, 2.0), (1.5, 0.75)]),
       layers=st.lists(st.integers(1, 40), min_size=1, max_size=3), pooled=st.booleans())
def test_pnb_value_and_gradient_against_transcription(seed, K, thetas, layers, pooled):
    rng = np.random.default_rng(seed)
    theta_p, theta_n = thetas
    hs = _membranes(rng, layers, theta_p, theta_n, K)
    kw = dict(theta_p=theta_p, theta_n=theta_n, k=K, pooled=pooled)
    expected = transcription(hs, theta_p, theta_n, K, pooled=pooled)
    np.testing.assert_allclose(ref.pnb.loss(hs, **kw), expected, rtol=1e-12, atol=1e-12)
    grads = ref.pnb.loss_backward(hs, **kw)
    step = 1e-7
    for i, h in enumerate(hs):
        fd = np.empty_like(h)
        for j in range(h.size):
            up = [x.copy() for x in hs]
            down = [x.copy() for x in hs]
            up[i][j] += step
            down[i][j] -= step
            fd[j] = (transcription(up, theta_p, theta_n, K, pooled=pooled)
                     - transcription(down, theta_p, theta_n, K, pooled=pooled)) / (2 * step)
        np.testing.assert_allclose(grads[i], fd, rtol=1e-5, atol=1e-6,
                                   err_msg=f"dL/dh of layer {i}")


def test_pnb_empty_regions():
    eps = 1e-8
    # nothing in any region (0 and beyond K theta belong to none): |log eps| for every k
    h = np.array([0.0, 2.5, -2.5, 7.0, -7.0])
    assert ref.pnb.loss(h, k=2) == pytest.approx(-math.log(eps), rel=1e-15)
    assert transcription([h]) == pytest.approx(-math.log(eps), rel=1e-15)
    np.testing.assert_array_equal(ref.pnb.loss_backward(h, k=2)[0], np.zeros(5))
    # only R+_1 filled: mu- = 0, so the k = 1 term is |log(|mu+| / eps + eps)|
    h = np.array([0.5, 1.0, 0.0])
    w = np.exp(-np.abs(1.0 - h[:2]))
    mu = (h[:2] * w).sum() / (w.sum() + eps)
    expected = (abs(math.log(mu / eps + eps)) + abs(math.log(eps))) / 2
    assert ref.pnb.loss(h, k=2) == pytest.approx(expected, rel=1e-14)
    assert transcription([h]) == pytest.approx(expected, rel=1e-14)
    # the boundaries: h = theta is in R+_1, h = -theta in R-_1, h = 0 in neither
    sums = ref.pnb.partial_sums(np.array([1.0, -1.0, 0.0]), k=1)
    np.testing.assert_array_equal(sums[0], [[1.0, 1.0], [1.0, -1.0]])


@settings(max_examples=examples(150))
@given(seed=st.integers(0, 2**32 - 1), n=st.one_of(st.integers(1, 40), st.integers(1, 20000)),
       K=st.integers(1, 4), dtype=st.sampled_from([np.float32, np.float64]),
       thetas=st.sampled_from([(1.0, 1.0), (0.5, 2.0), (1e-3, 1e3), (0.3, 0.3)]),
       edge=st.booleans())
def test_pnb_partial_sums_kernel_matches_reference(seed, n, K, dtype, thetas, edge):
    rng = np.random.default_rng(seed)
    theta_p, theta_n = thetas
    h = rng.normal(0, K * max(thetas), n).astype(dtype)
    if edge:   # exactly on the region bounds
        ks = rng.integers(0, K + 2, n).astype(dtype)
        on = rng.random(n) < 0.3
        h[on] = np.where(rng.random(n) < 0.5, ks * dtype(theta_p), -(ks * dtype(theta_n)))[on]
    expected = ref.pnb.partial_sums(h, theta_p, theta_n, K)
    actual = kernels.pnb_partial_sums(h, theta_p, theta_n, K)
    assert actual.shape == (K, 2, 2) and actual.dtype == np.float64
    # the same elements in each region (exact counts through sum w with w = 1 would not
    # tell), so compare the sums within the bound: only exp differs, by its ulps, and every
    # term is positive in S_w, so the magnitude of S_hw is sum |h| w
    magnitude = np.empty_like(expected)
    for k in range(1, K + 1):
        for sign, (w, hw) in enumerate(ref.pnb.contributions(h.reshape(-1), theta_p, theta_n, k)):
            magnitude[k - 1, sign] = [w.sum(), np.abs(hw).sum()]
    assert_close(actual, expected, "pnb partial sums", dtype=np.float64, T=1,
                 magnitude=magnitude)
    again = kernels.pnb_partial_sums(h, theta_p, theta_n, K, num_threads=1)
    assert np.array_equal(again, kernels.pnb_partial_sums(h, theta_p, theta_n, K,
                                                          num_threads=2))
