"""The code paths of the faster DS-ATGO and CF kernels (docs/performance.md, "The ATGO and CF
layers") against the NumPy reference: the ATGO forward's fused fire-and-charge pass with and
without the membrane, the CF kernels' compiled K = 2 path and their runtime-K path, the CF
backward that skips unwanted parameter sums, and the CF layer's membrane on request. Edge
cases: T = 1, N = 2 or 1, N just off the 512-neuron block, inputs exactly at the threshold or
on a level, huge and tiny thresholds, negative inputs; 1 and 2 threads give the same bits."""

import math

import numpy as np
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from spikegrad import kernels, ref
from spikegrad.testing import strategies as sgst
from spikegrad.testing.compare import assert_bitwise_equal, assert_close

from conftest import examples

A = ref.adaptive
ML = ref.multilevel

# N around the kernels' block of 512 neurons (a partial last block, exactly one block, ...)
NEURON_COUNTS = st.sampled_from([2, 3, 7, 511, 512, 513, 1100])


# ---------------------------------------------------------------------------------------
# DS-ATGO: the forward fuses the fire of step t-1 with the charge of step t
# ---------------------------------------------------------------------------------------

def _estimated_threshold(decay, dtype):
    """theta of threshold_mode='estimated' (f_c = v_th = 1) in the working dtype."""
    return dtype(A.estimated_threshold(decay, 1.0, 1.0))


@st.composite
def adaptive_cases(draw):
    T = draw(st.integers(1, 4))
    N = draw(NEURON_COUNTS)
    dtype = draw(st.sampled_from([np.float32, np.float64]))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    x = rng.normal(draw(st.sampled_from([-0.5, 0.0, 0.5])), 1.0, (T, N)).astype(dtype)
    return dict(x=x, decay=draw(st.sampled_from([0.0, 0.2, 0.9])),
                threshold_mode=draw(st.sampled_from(["true", "estimated"])),
                tgo=draw(st.booleans()), tgo_driver=draw(st.sampled_from(["std", "threshold"])),
                reset=draw(st.sampled_from(["hard", "soft", "none"])),
                charge=draw(st.sampled_from(["mul", "if"])))


def _at_threshold_case(dtype):
    """'estimated' mode from v = 0: x[0] exactly at theta (z = 0), just below and above."""
    theta = _estimated_threshold(0.5, dtype)   # lam = 0.5: the same in every dtype
    below, above = np.nextafter(theta, dtype(0)), np.nextafter(theta, dtype(10))
    x = np.array([[theta, below, above, -theta, dtype(0)],
                  [theta, theta, below, above, -dtype(3)]], dtype=dtype)
    return dict(x=x, decay=0.5, threshold_mode="estimated", tgo=False, tgo_driver="std",
                reset="hard", charge="mul")


@settings(max_examples=examples(60))
@given(case=adaptive_cases())
@example(case=_at_threshold_case(np.float32))
@example(case=_at_threshold_case(np.float64))
@example(case=dict(x=np.array([[1e30, -1e30]], dtype=np.float32), decay=0.2,
                   threshold_mode="true", tgo=False, tgo_driver="std", reset="soft",
                   charge="mul"))                    # T = 1, N = 2, a huge threshold
@example(case=dict(x=np.array([[1e-30, -1e-30], [2e-30, 0.0]], dtype=np.float64), decay=0.9,
                   threshold_mode="true", tgo=False, tgo_driver="std", reset="hard",
                   charge="if"))                     # a tiny threshold
def test_adaptive_forward_fused_passes_match_reference(case):
    expected = A.forward(**case)
    for return_membrane in (True, False):
        for threads in (1, 2):
            actual = kernels.adaptive_forward(**case, return_membrane=return_membrane,
                                              num_threads=threads)
            label = f"(return_membrane={return_membrane}, {threads} threads)"
            for name in ("output", "v_last", "threshold", "sg_param", "mean", "std"):
                assert_bitwise_equal(getattr(actual, name), getattr(expected, name),
                                     f"{name} {label}")
            if return_membrane:
                assert_bitwise_equal(actual.membrane, expected.membrane, f"membrane {label}")
            else:
                assert actual.membrane is None


def test_adaptive_forward_at_threshold_fires_as_the_spec_says():
    """The example above is not vacuous: some x sit exactly at theta at t = 0."""
    case = _at_threshold_case(np.float32)
    theta = _estimated_threshold(0.5, np.float32)
    r = kernels.adaptive_forward(**case, return_membrane=False)
    assert r.threshold[0] == theta
    # docs/spec.md §3: s = H(h - theta) with H(0) = 1 (formulas.heaviside); the neighbours decide
    assert r.output[0, :3].tolist() == [1.0, 0.0, 1.0]


# ---------------------------------------------------------------------------------------
# CF: the compiled K = 2 path and the runtime-K path against the reference
# ---------------------------------------------------------------------------------------

def _level_case(dtype, k=2, **change):
    """theta = 1: inputs exactly on the levels +-1, +-2 and just off them, T = 1."""
    x = np.array([[-3.0, -2.0, -1.5, -1.0, 0.0, 1.0, 1.5, 2.0, 2.5, 7.0, -7.0]], dtype=dtype)
    case = sgst.NeuronCase(x=x, decay=0.25, theta_p=1.0, theta_n=1.0, k_p=k, k_n=k,
                           surrogate="tsg", a=1.0, detach_reset=False, v_init=None,
                           smooth=False)
    case.update(change)
    return case


def _check_multilevel(case, seed, threads=(1, 2)):
    dtype = case["x"].dtype
    T, N = case["x"].shape
    expected = ML.forward(**case)
    rng = np.random.default_rng(seed)
    upstream = [rng.normal(size=(T, N)).astype(dtype), rng.normal(size=(T, N)).astype(dtype),
                rng.normal(size=N).astype(dtype)]
    g_ref = ML.backward(expected, *upstream)
    scale = ML.error_scale(expected, *upstream)
    runs = []
    for n in threads:
        actual = kernels.multilevel_forward(**case, num_threads=n)
        for name in ("output", "membrane", "v_last"):
            assert_bitwise_equal(getattr(actual, name), getattr(expected, name),
                                 f"forward {name} ({n} threads)")
        g = kernels.multilevel_backward(actual, *upstream, num_threads=n)
        for name in ("x", "v_init", "decay", "a"):
            e = getattr(g_ref, name)
            if e is None:
                assert getattr(g, name) is None
                continue
            assert_close(getattr(g, name), e, f"grad {name}", dtype=dtype, T=T,
                         magnitude=getattr(scale, name))
        runs.append(g)
    for other in runs[1:]:
        for name in ("x", "v_init", "decay", "a"):
            a, b = getattr(runs[0], name), getattr(other, name)
            if a is not None:
                assert np.array_equal(np.asarray(a), np.asarray(b)), f"grad {name}, threads"


@settings(max_examples=examples(60))
@given(case=sgst.multilevel_case(shape=st.tuples(st.integers(1, 4), NEURON_COUNTS)),
       k=st.sampled_from([1, 2, 3]), seed=st.integers(0, 2**32 - 1))
@example(case=_level_case(np.float32), k=2, seed=0)
@example(case=_level_case(np.float64, surrogate="span", detach_reset=True), k=2, seed=1)
@example(case=_level_case(np.float32, smooth=True), k=2, seed=2)
@example(case=_level_case(np.float64, smooth=True, surrogate="span"), k=2, seed=3)
@example(case=_level_case(np.float32, theta_p=1e3, theta_n=1e-3, x=np.array(
    [[2e3, -2e-3, 1e3, -1e-3, 3e3, -5.0]], dtype=np.float32)), k=2, seed=4)
@example(case=_level_case(np.float32), k=3, seed=5)
def test_multilevel_paths_match_reference(case, k, seed):
    """k_p = k_n = k: 2 is the compiled fixed-K path, 1 and 3 the runtime-K loops."""
    case["k_p"] = case["k_n"] = k
    _check_multilevel(case, seed)


def test_multilevel_unequal_level_counts_use_the_runtime_path():
    rng = np.random.default_rng(3)
    x = rng.normal(0, 3, (3, 700)).astype(np.float32)
    case = sgst.NeuronCase(x=x, decay=0.25, theta_p=1.0, theta_n=0.5, k_p=2, k_n=3,
                           surrogate="tsg", a=rng.uniform(0.5, 2, 3), detach_reset=False,
                           v_init=None, smooth=False)
    _check_multilevel(case, seed=3)


# ---------------------------------------------------------------------------------------
# CF backward without the unwanted parameter sums
# ---------------------------------------------------------------------------------------

torch = pytest.importorskip("torch")
import spikegrad  # noqa: E402  (needs torch)
from spikegrad.ops import multilevel_ops  # noqa: E402


@pytest.mark.parametrize("need_decay, need_a", [(False, True), (True, False), (False, False)])
def test_multilevel_backward_skips_only_the_unwanted_sums(need_decay, need_a):
    rng = np.random.default_rng(8)
    T, N = 3, 1030
    x = torch.from_numpy(rng.normal(0, 2, (T, N)).astype(np.float32))
    g = torch.from_numpy(rng.normal(size=(T, N)).astype(np.float32))
    args = (x, torch.tensor(0.25), torch.full((T,), 1.2), torch.zeros(N), g, None, None, 1.0,
            1.0, 2, 2, "tsg", False, False)
    full = multilevel_ops.multilevel_backward(*args)
    part = multilevel_ops.multilevel_backward(*args, need_grad_decay=need_decay,
                                              need_grad_a=need_a)
    assert torch.equal(part[0], full[0]) and torch.equal(part[1], full[1])
    for index, needed in ((2, need_decay), (3, need_a)):
        if needed:
            assert torch.equal(part[index], full[index])
        else:   # not computed: NaN, never a plausible number
            assert torch.isnan(part[index]).all()


def test_multilevel_autograd_asks_only_for_the_needed_sums():
    """decay a float (no grad), a learnable: dL/da equals the full backward's."""
    rng = np.random.default_rng(9)
    x = torch.from_numpy(rng.normal(0, 2, (4, 600)).astype(np.float32)).requires_grad_()
    a = torch.full((4,), 1.3, requires_grad=True)
    out = spikegrad.multilevel(x, surrogate="tsg", a=a)
    g = torch.from_numpy(rng.normal(size=(4, 600)).astype(np.float32))
    out.output.backward(g)
    full = multilevel_ops.multilevel_backward(
        x.detach(), torch.tensor(0.25), a.detach(), torch.zeros(600), g, None, None, 1.0, 1.0,
        2, 2, "tsg", False, False)
    assert torch.equal(x.grad, full[0])
    assert torch.equal(a.grad, full[3])


# ---------------------------------------------------------------------------------------
# spikegrad.nn.CF: the membrane on request
# ---------------------------------------------------------------------------------------

def _cf_pair(T):
    torch.manual_seed(0)
    kept, lazy = spikegrad.nn.CF(T=T, keep_membrane=True), spikegrad.nn.CF(T=T)
    lazy.load_state_dict(kept.state_dict())
    return kept, lazy


@pytest.mark.parametrize("T", [1, 3])
def test_cf_membrane_on_request_equals_the_kept_one(T):
    kept, lazy = _cf_pair(T)
    x = (torch.randn(T, 2, 513) * 2).requires_grad_()
    x2 = x.detach().clone().requires_grad_()
    out_kept, out_lazy = kept(x), lazy(x2)
    assert torch.equal(out_kept, out_lazy)
    assert lazy._membrane is None                       # not written by the forward
    assert torch.equal(lazy.membrane, kept.membrane)    # recomputed: the same bits
    assert lazy.membrane is lazy.membrane               # once
    g = torch.randn_like(out_kept)
    ((out_kept * g).sum() + spikegrad.pnb_loss(kept.membrane)).backward()
    ((out_lazy * g).sum() + spikegrad.pnb_loss(lazy.membrane)).backward()
    # one fused backward call (kept) or two added by autograd (lazy): both within the
    # reference's bound, with the PNB loss's dL/dh as the membrane's upstream gradient
    h = kept.membrane.detach().requires_grad_()
    (g_mem,) = torch.autograd.grad(spikegrad.pnb_loss(h), h)
    a = kept.a().to(torch.float32).detach().numpy()
    expected = ML.forward(x.detach().numpy(), decay=0.25, theta_p=1.0, theta_n=1.0, k_p=2,
                          k_n=2, surrogate="tsg", a=a)
    upstream = (g.numpy(), g_mem.numpy(), None)
    g_ref = ML.backward(expected, *upstream)
    scale = ML.error_scale(expected, *upstream)
    for name, grad in (("kept", x.grad), ("lazy", x2.grad)):
        assert_close(grad.numpy(), g_ref.x, f"grad x ({name} membrane)", dtype=np.float32,
                     T=T, magnitude=scale.x)
    torch.testing.assert_close(lazy.q.grad, kept.q.grad, rtol=1e-5, atol=1e-7)


def test_cf_membrane_of_an_input_changed_in_place_is_an_error():
    layer = spikegrad.nn.CF(T=2)
    x = torch.randn(2, 4, 8)
    layer(x)
    x.mul_(2)
    with pytest.raises(RuntimeError, match="modified in place"):
        _ = layer.membrane


def test_cf_membrane_before_any_forward_is_none_and_flag_is_checked():
    assert spikegrad.nn.CF(T=2).membrane is None
    with pytest.raises(TypeError, match="keep_membrane"):
        spikegrad.nn.CF(T=2, keep_membrane=1)


def test_cf_diagnostics_without_kept_membrane():
    layer = spikegrad.nn.CF(T=1, a0=1.0)
    layer.record_diagnostics = True
    x = torch.tensor([[[0.0, 0.5, 1.0, 1.5, -2.0, 3.0, 4.0, -3.5]]])
    layer(x)
    assert layer.diagnostics["firing_rate"].tolist() == [5 / 8]
    assert layer.diagnostics["gradient_available"].tolist() == [4 / 8]
    assert math.isfinite(float(layer.membrane.detach().sum()))


# ---------------------------------------------------------------------------------------
# DS-ATGO op: v_init None (zeros never materialised in the forward)
# ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("T, N", [(1, 2), (3, 513)])
def test_adaptive_op_without_v_init_equals_zeros(T, N):
    from spikegrad.ops import adaptive_ops

    rng = np.random.default_rng(T + N)
    base = torch.from_numpy(rng.normal(0.5, 1, (T, N)).astype(np.float32))
    g = torch.from_numpy(rng.normal(size=(T, N)).astype(np.float32))
    results = []
    for v_init in (None, torch.zeros(N)):
        x = base.clone().requires_grad_()
        out = adaptive_ops.adaptive_forward(x, torch.tensor(0.2), v_init, 0.0, "mul", "hard",
                                            False, "true", 1.0, 1.0, True, "std", 1.0, False)
        out[0].backward(g)
        results.append((out, x.grad))
    (out_none, grad_none), (out_zeros, grad_zeros) = results
    for a, b in zip(out_none, out_zeros):
        assert torch.equal(a, b)
    assert torch.equal(grad_none, grad_zeros)
    expected = A.forward(base.numpy())
    assert_bitwise_equal(out_none[0].detach().numpy(), expected.output, "output, v_init None")


# ---------------------------------------------------------------------------------------
# The PNB partial sums' backward kernel
# ---------------------------------------------------------------------------------------

def _pnb_edges(dtype, theta_p, theta_n, K):
    """h on every region bound and level (+-k theta), just off them, 0 and beyond K theta."""
    values = [0.0, 1e-30, -1e-30]
    for k in range(0, K + 2):
        for centre in (dtype(k) * dtype(theta_p), -(dtype(k) * dtype(theta_n))):
            values += [centre, np.nextafter(centre, dtype(np.inf)),
                       np.nextafter(centre, dtype(-np.inf))]
    return np.array(values, dtype=dtype)


@settings(max_examples=examples(40))
@given(seed=st.integers(0, 2**32 - 1), n=st.sampled_from([1, 7, 4095, 4096, 4097, 9000]),
       K=st.integers(1, 3), dtype=st.sampled_from([np.float32, np.float64]),
       thetas=st.sampled_from([(1.0, 1.0), (0.5, 2.0), (1e-3, 1e3)]))
@example(seed=0, n=1, K=2, dtype=np.float32, thetas=(1.0, 1.0))
def test_pnb_backward_kernel_matches_reference(seed, n, K, dtype, thetas):
    from spikegrad import _core

    theta_p, theta_n = thetas
    rng = np.random.default_rng(seed)
    h = (rng.normal(0, 1, n) * max(thetas) * K).astype(dtype)
    h = np.concatenate([h, _pnb_edges(dtype, theta_p, theta_n, K)])
    grad_sums = rng.normal(size=(K, 2, 2))
    expected = ref.pnb.sums_backward(h, grad_sums, theta_p, theta_n, K)
    results = []
    for threads in (1, 2):
        out = np.empty_like(h)
        _core.pnb_partial_sums_backward(h, theta_p, theta_n, K, grad_sums, out,
                                        num_threads=threads)
        results.append(out)
    assert np.array_equal(results[0], results[1])
    # each element's gradient is one region's g_w dw + g_hw (w + h dw), |w|, |dw| <= 1
    magnitude = float(np.abs(grad_sums).max() * (2 + np.abs(h.astype(np.float64)).max()))
    assert_close(results[0], expected.astype(dtype), "pnb sums backward", dtype=dtype, T=1,
                 magnitude=magnitude)
    # outside every region (0, beyond K theta) the gradient is exactly 0
    outside = (h == 0) | (h > dtype(K) * dtype(theta_p)) | (h < -(dtype(K) * dtype(theta_n)))
    assert (results[0][outside] == 0).all() and (expected[outside] == 0).all()
