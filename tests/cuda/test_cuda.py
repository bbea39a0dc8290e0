"""Layer 3b, the CUDA kernels (docs/cuda.md): every op on CUDA tensors against the NumPy
reference (the oracle the CPU kernels are held to): the forward bit for bit outside smooth
mode, the backward within the derived bound, the parameter-gradient reductions deterministic,
float16/bfloat16 against the reference on the upcast input, H(NaN) = 0, the layers, DS-ATGO,
CF and PNB. These need a GPU and skip without one (tools/gpu_check.sh runs them);
test_cuda_build.py holds what is checked without a GPU."""

import numpy as np
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

torch = pytest.importorskip("torch")

pytestmark = pytest.mark.skipif(
    not torch.cuda.is_available(), reason="needs a CUDA GPU (tools/gpu_check.sh on a GPU machine)")

import spikegrad  # noqa: E402
from spikegrad import ref  # noqa: E402
from spikegrad.testing import strategies as sgst  # noqa: E402
from spikegrad.testing.compare import (  # noqa: E402
    assert_bitwise_equal, assert_close, smooth_forward_magnitude, tolerance)

from conftest import examples  # noqa: E402

OPTION_KEYS = ("charge", "reset", "scale", "surrogate", "smooth", "detach_reset", "v_reset")
PARAMS = ("decay", "threshold", "sg_param", "v_init")
CUDA = "cuda"


def _leaves(case, device, dtype=None):
    """x and the case's parameters as leaf tensors requiring grad on `device`."""
    x = torch.from_numpy(case["x"]).to(device)
    if dtype is not None:
        x = x.to(dtype)
    x.requires_grad_()
    state = torch.float32 if x.dtype in (torch.float16, torch.bfloat16) else x.dtype

    def leaf(value):
        array = np.asarray(value, np.float64)
        return torch.as_tensor(array.copy(), dtype=state, device=device).requires_grad_()

    return dict(x=x, decay=leaf(case["decay"]), threshold=leaf(case["threshold"]),
                sg_param=leaf(case["sg_param"]),
                v_init=None if case["v_init"] is None else leaf(case["v_init"]))


def _run_neuron(case, leaves, upstream):
    """(forward outputs as NumPy, gradients as NumPy float64 by name)."""
    options = {k: case[k] for k in OPTION_KEYS}
    out = spikegrad.neuron(leaves["x"], return_membrane=True, **options,
                           **{k: leaves[k] for k in PARAMS})
    loss = sum((o.double() * u.to(o.device)).sum()
               for o, u in zip((out.output, out.membrane, out.v_last), upstream))
    names = [k for k in ("x",) + PARAMS if leaves[k] is not None]
    grads = torch.autograd.grad(loss, [leaves[k] for k in names], allow_unused=True)
    grads = {n: (torch.zeros_like(leaves[n]) if g is None else g).detach().cpu().double().numpy()
             for n, g in zip(names, grads)}
    forward = {n: getattr(out, n).detach().cpu() for n in ("output", "membrane", "v_last")}
    return forward, grads


def _upstream(case, seed):
    rng = np.random.default_rng(seed)
    T, N = case["x"].shape
    dt = case["x"].dtype
    return [rng.normal(size=s).astype(dt) for s in ((T, N), (T, N), (N,))]


EDGE_CASES = [
    # T = 1, N = 1, the input exactly at the threshold
    sgst.NeuronCase(x=np.array([[1.0]], np.float32), decay=0.2, threshold=1.0, sg_param=1.0,
                    v_init=None, v_reset=0.0, charge="mul", reset="hard", scale="absolute",
                    surrogate="rect", smooth=False, detach_reset=False),
    # negative inputs, a tiny threshold, relative scale, several chunks of 8 steps (T = 20)
    sgst.NeuronCase(x=-np.abs(np.linspace(-2, 2, 20 * 3)).reshape(20, 3).astype(np.float64),
                    decay=0.5, threshold=1e-3, sg_param=0.5, v_init=0.25, v_reset=-0.5,
                    charge="decay_input", reset="soft", scale="relative",
                    surrogate="triangle", smooth=False, detach_reset=True),
    # a huge threshold, threshold-robust output, N past one CUDA block (257), T = 9
    sgst.NeuronCase(x=np.full((9, 257), 1e3, np.float32), decay=1.0, threshold=1e3,
                    sg_param=2.0, v_init=None, v_reset=0.0, charge="if", reset="none",
                    scale="threshold_robust", surrogate="atan", smooth=False,
                    detach_reset=False),
]


def _check_neuron_against_reference(case, seed):
    upstream = _upstream(case, seed)
    forward, grads = _run_neuron(case, _leaves(case, CUDA),
                                 [torch.from_numpy(u).double() for u in upstream])
    expected = ref.forward(**case)
    dtype = case["x"].dtype
    T = case["x"].shape[0]
    options = {k: case[k] for k in OPTION_KEYS}
    magnitude = smooth_forward_magnitude(expected.membrane, expected.threshold,
                                         expected.v_reset)
    for name, value in forward.items():
        if case["smooth"]:   # exp/atan: CUDA's libdevice against NumPy, within the bound
            assert_close(value.numpy(), getattr(expected, name), f"cuda {name} (smooth) "
                         f"{options}", dtype=dtype, T=T, magnitude=magnitude)
        else:
            assert_bitwise_equal(value.numpy(), getattr(expected, name), f"cuda {name} {options}")
    g_ref = ref.backward(expected, *upstream)
    scale = ref.error_scale(expected, *upstream)
    for name, value in grads.items():
        assert_close(value, getattr(g_ref, name), f"cuda grad {name} {options}", dtype=dtype,
                     T=T, magnitude=getattr(scale, name))


@settings(max_examples=examples(300))
@given(case=sgst.neuron_case(shape=sgst.shapes(max_T=20, max_N=700)),
       seed=st.integers(0, 2**32 - 1))
@example(case=EDGE_CASES[0], seed=0)
@example(case=EDGE_CASES[1], seed=1)
@example(case=EDGE_CASES[2], seed=2)
def test_neuron_matches_reference(case, seed):
    """Every option combination, float32 and float64, T across the 8-step chunks, N across
    the 256-neuron blocks."""
    _check_neuron_against_reference(case, seed)


def _rounding_slack(expected, half):
    """Two float32 values within a bound, each rounded to `half`, may land one ulp of `half`
    apart: eps * |value|, or the subnormal spacing eps * tiny near zero."""
    info = torch.finfo(half)
    return info.eps * (np.abs(np.asarray(expected, np.float64)) + info.tiny)


@pytest.mark.parametrize("dtype", ["float16", "bfloat16"])
@settings(max_examples=examples(60))
@given(case=sgst.neuron_case(dtype=st.just(np.float32),
                             shape=sgst.shapes(max_T=12, max_N=600)),
       seed=st.integers(0, 2**32 - 1))
def test_half_precision_matches_reference_on_upcast_input(dtype, case, seed):
    """float16/bfloat16 x, float32 state: the reference runs on the upcast x (float32); the
    forward must be its result rounded to x's dtype, bit for bit outside smooth mode; the
    gradient of x within the float32 bound plus the final rounding to x's dtype (half an
    ulp of it)."""
    half = getattr(torch, dtype)
    x_half = torch.from_numpy(case["x"]).to(half)
    case = sgst.NeuronCase(case, x=x_half.float().numpy())   # the values x really holds
    upstream = _upstream(case, seed)
    forward, grads = _run_neuron(case, _leaves(case, CUDA, dtype=half),
                                 [torch.from_numpy(u).to(half).double() for u in upstream])
    upstream = [torch.from_numpy(u).to(half).float().numpy() for u in upstream]
    expected = ref.forward(**case)
    T = case["x"].shape[0]
    for name, value in forward.items():
        assert value.dtype == half, name
        rounded = torch.from_numpy(np.ascontiguousarray(getattr(expected, name))).to(half)
        if case["smooth"]:
            magnitude = smooth_forward_magnitude(expected.membrane, expected.threshold,
                                                 expected.v_reset)
            bound = tolerance(getattr(expected, name), dtype=np.float32, T=T,
                              magnitude=magnitude)
            diff = (value.double() - rounded.double()).abs().numpy()
            assert (diff <= bound + _rounding_slack(getattr(expected, name), half)).all(), name
        else:   # half -> float32 is exact: equal floats are equal halves (NaN payloads aside)
            assert_bitwise_equal(value.float().numpy(), rounded.float().numpy(), f"{dtype} {name}")
    g_ref = ref.backward(expected, *upstream)
    scale = ref.error_scale(expected, *upstream)
    bound = tolerance(g_ref.x, dtype=np.float32, T=T, magnitude=scale.x)
    slack = _rounding_slack(g_ref.x, half)
    diff = np.abs(grads["x"] - g_ref.x)
    assert (diff <= bound + slack).all(), f"{dtype} grad x: max excess {(diff - bound - slack).max()}"
    for name in ("decay", "threshold", "sg_param", "v_init"):
        if name in grads:   # float32 state: the float32 bound
            assert_close(grads[name], getattr(g_ref, name), f"{dtype} grad {name}",
                         dtype=np.float32, T=T, magnitude=getattr(scale, name))


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.float16, torch.bfloat16])
def test_heaviside_of_nan_is_zero(dtype):
    """H(NaN) = 0 in every dtype: a NaN input gives no spike (and a NaN membrane)."""
    x = torch.tensor([[float("nan"), 2.0, 0.5]], dtype=dtype, device=CUDA)
    out = spikegrad.neuron(x, threshold=1.0, return_membrane=True)
    assert out.output.cpu().float().tolist() == [[0.0, 1.0, 0.0]]
    assert torch.isnan(out.membrane[0, 0]).item()


def _parameter_grads(x, **options):
    leaves = {k: torch.tensor(v, dtype=x.dtype, device=x.device, requires_grad=True)
              for k, v in (("decay", 0.3), ("threshold", [0.9, 1.1, 1.0, 0.8] * 3),
                           ("sg_param", [1.0] * 12))}
    out = spikegrad.neuron(x, **options, **leaves)
    (out.output * torch.linspace(-1, 1, x.numel(), device=x.device,
                                 dtype=x.dtype).reshape(x.shape)).sum().backward()
    return [leaves[k].grad.clone() for k in ("decay", "threshold", "sg_param")]


def test_parameter_gradients_are_deterministic():
    """The float64 reductions have one order: two runs, and two streams, give the same bits
    (no float atomics); N = 70000 spans many blocks and both reduction stages."""
    torch.manual_seed(0)
    x = torch.randn(12, 70000, device=CUDA) + 0.8
    first = _parameter_grads(x, surrogate="sigmoid", reset="soft")
    second = _parameter_grads(x, surrogate="sigmoid", reset="soft")
    stream = torch.cuda.Stream()
    with torch.cuda.stream(stream):
        third = _parameter_grads(x, surrogate="sigmoid", reset="soft")
    torch.cuda.synchronize()
    for a, b, c in zip(first, second, third):
        assert torch.equal(a, b) and torch.equal(a, c)
    # the layout of x's trailing dimensions does not matter: [T, B, F] is [T, B * F]
    folded = _parameter_grads(x.reshape(12, 70, 1000), surrogate="sigmoid", reset="soft")
    for a, b in zip(first, folded):
        assert torch.equal(a, b)


def test_device_sum_order_matches_its_host_twin():
    """The second reduction stage on the device equals cuda.hpp's ordered_device_sum bits."""
    from spikegrad import _cuda
    rng = np.random.default_rng(5)
    for M in (1, 3, 255, 256, 257, 10000, 123457):
        values = rng.normal(size=M) * rng.choice([1e-8, 1.0, 1e8], size=M)
        device_values = torch.from_numpy(values).to(CUDA)
        out = torch.empty((), dtype=torch.float64, device=CUDA)
        _cuda.device_sum(device_values, out, stream=torch.cuda.current_stream().cuda_stream)
        assert out.item() == _cuda.ordered_device_sum(values), M


def test_cuda_matches_cpu_kernel_on_large_input():
    """CUDA and the CPU kernel on the same input (float32, T = 8, N = 2^18 + 3): the forward
    and grad_x bit for bit (the same per-neuron code, no transcendentals on this path), the
    threshold's gradient (sums in two fixed orders) within the bound."""
    torch.manual_seed(1)
    T, N = 8, 2**18 + 3
    x_cpu = torch.randn(T, N) * 0.7 + 0.5
    g_out, g_mem = torch.randn(T, N), torch.randn(T, N) * 0.5
    results = []
    for device in ("cpu", CUDA):
        x = x_cpu.to(device, copy=True).requires_grad_()   # a leaf on each device
        threshold = torch.full((T,), 1.0, device=device, requires_grad=True)
        out = spikegrad.neuron(x, threshold=threshold, surrogate="triangle", return_membrane=True)
        ((out.output * g_out.to(device)).sum() + (out.membrane * g_mem.to(device)).sum()).backward()
        results.append((out.output.detach().cpu(), out.membrane.detach().cpu(),
                        x.grad.cpu(), threshold.grad.cpu()))
    (o_cpu, h_cpu, gx_cpu, gt_cpu), (o_gpu, h_gpu, gx_gpu, gt_gpu) = results
    assert_bitwise_equal(o_gpu.numpy(), o_cpu.numpy(), "output")
    assert_bitwise_equal(h_gpu.numpy(), h_cpu.numpy(), "membrane")
    assert_bitwise_equal(gx_gpu.numpy(), gx_cpu.numpy(), "grad x")
    expected = ref.forward(x_cpu.numpy(), surrogate="triangle")
    scale = ref.error_scale(expected, g_out.numpy(), g_mem.numpy())
    assert_close(gt_gpu.numpy(), gt_cpu.numpy(), "threshold grad", dtype=np.float32, T=T,
                 magnitude=scale.threshold)


# ---------------------------------------------------------------------------------------
# Multi-level CF and PNB
# ---------------------------------------------------------------------------------------

ML_OPTIONS = ("theta_p", "theta_n", "k_p", "k_n", "surrogate", "detach_reset", "smooth")


@settings(max_examples=examples(150))
@given(case=sgst.multilevel_case(shape=sgst.shapes(max_T=20, max_N=600)),
       seed=st.integers(0, 2**32 - 1))
def test_multilevel_matches_reference(case, seed):
    """CF on CUDA: the forward bit for bit (smooth mode too: no transcendentals), the
    backward within the bound."""
    x = torch.from_numpy(case["x"]).to(CUDA).requires_grad_()
    dt = x.dtype
    T, N = x.shape
    tsg = case["surrogate"] == "tsg"
    a = torch.as_tensor(np.asarray(case["a"], np.float64).copy(), dtype=dt,
                        device=CUDA).requires_grad_(tsg)
    decay = torch.tensor(case["decay"], dtype=dt, device=CUDA, requires_grad=True)
    v_init = case["v_init"]
    v_init_t = None if v_init is None else torch.as_tensor(
        np.asarray(v_init, np.float64), dtype=dt, device=CUDA).requires_grad_()
    out = spikegrad.multilevel(x, decay=decay, a=a, v_init=v_init_t, return_membrane=True,
                               **{k: case[k] for k in ML_OPTIONS})
    expected = ref.multilevel.forward(**case)
    for name in ("output", "membrane", "v_last"):
        assert_bitwise_equal(getattr(out, name).detach().cpu().numpy(),
                             getattr(expected, name), f"cuda multilevel {name}")
    upstream = _upstream(case, seed)
    loss = sum((o * torch.from_numpy(u).to(CUDA)).sum()
               for o, u in zip((out.output, out.membrane, out.v_last), upstream))
    leaves = {"x": x, "decay": decay}
    if v_init_t is not None:
        leaves["v_init"] = v_init_t
    if tsg:
        leaves["a"] = a
    grads = dict(zip(leaves, torch.autograd.grad(loss, list(leaves.values()))))
    g_ref = ref.multilevel.backward(expected, *upstream)
    scale = ref.multilevel.error_scale(expected, *upstream)
    for name, g in grads.items():
        assert_close(g.cpu().numpy(), getattr(g_ref, name), f"cuda multilevel grad {name}",
                     dtype=case["x"].dtype, T=T, magnitude=getattr(scale, name))


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("count", [1, 4095, 4097, 300001])
def test_pnb_partial_sums_match_cpu(dtype, count):
    """The PNB sums: the same regions (the bounds in h's precision), float64 sums within the
    bound of exp's ulps and a reordered sum (magnitude: the sum of |terms|)."""
    torch.manual_seed(count)
    h = torch.randn(count, dtype=dtype) * 1.5
    h[::7] = 1.0   # exactly on a level: the regions' closed ends
    from spikegrad.ops import multilevel_ops
    cpu = multilevel_ops.pnb_partial_sums(h, 1.0, 0.5, 3)
    gpu = multilevel_ops.pnb_partial_sums(h.to(CUDA), 1.0, 0.5, 3).cpu()
    magnitude = float((h.double().abs() + 1).sum())   # |h w| + |w| per term, w <= 1
    assert_close(gpu.numpy(), cpu.numpy(), "pnb sums", dtype=np.float64, T=1,
                 magnitude=magnitude)
    # the loss and its gradient on CUDA
    hc = h.to(CUDA).requires_grad_()
    loss = spikegrad.pnb_loss(hc, theta_p=1.0, theta_n=0.5, k=3)
    loss.backward()
    assert hc.grad.shape == hc.shape and torch.isfinite(hc.grad).all()


# ---------------------------------------------------------------------------------------
# DS-ATGO and the layers
# ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("N", [2, 511, 513, 5000, 256 * 512 + 513])
@pytest.mark.parametrize("variant", [
    dict(charge="mul", reset="hard", threshold_mode="true", tgo=True, tgo_driver="std"),
    dict(charge="decay_input", reset="soft", threshold_mode="estimated", tgo=True,
         tgo_driver="threshold"),
    dict(charge="if", reset="none", threshold_mode="true", tgo=False, tgo_driver="std"),
])
def test_adaptive_forward_matches_cpu_bit_for_bit(dtype, N, variant):
    """The statistics follow the CPU's summation order: every output, threshold, width, mean
    and std the CPU's bits; the backward (neuron_backward on CUDA) within the bound."""
    from spikegrad.ops import adaptive_ops
    torch.manual_seed(N)
    x = torch.randn(6, N, dtype=dtype) * 0.8 + 0.3
    v_init = torch.randn(N, dtype=dtype) * 0.1
    results = []
    for device in ("cpu", CUDA):
        results.append(adaptive_ops.adaptive_forward(
            x.to(device), torch.tensor(0.3, dtype=dtype, device=device), v_init.to(device),
            0.0, variant["charge"], variant["reset"], False, variant["threshold_mode"], 1.0,
            1.0, variant["tgo"], variant["tgo_driver"], 1.0, True))
    names = ("output", "membrane", "v_last", "threshold", "sg_param", "mean", "std")
    for name, cpu, gpu in zip(names, *results):
        assert_bitwise_equal(gpu.cpu().numpy(), cpu.numpy(), f"atgo {name} {variant}")


def test_layers_run_on_cuda_like_on_cpu():
    """spikegrad.nn layers and their copies on CUDA: the same forward bits; grad x on CUDA
    equals the CPU's up to the transcendentals' last bits (libmvec's and CUDA's expf differ
    by a few ulp in the sigmoid surrogate's derivative; 1e-5 of the gradient's scale)."""
    import copy

    from spikegrad import nn as snn
    torch.manual_seed(0)
    x = torch.randn(4, 8, 300) * 0.8 + 0.4
    # fixed decays and thresholds: a learnable one goes through torch's sigmoid/softplus,
    # whose CPU and CUDA implementations may differ by an ulp (not spikegrad's kernels)
    for make in (lambda: snn.LIF(), lambda: snn.CF(T=4), lambda: snn.ATGO(),
                 lambda: snn.MPDAGL()):
        layer = make()
        twin = copy.deepcopy(layer).to(CUDA)   # the same state (running statistics) as layer
        x_cpu, x_gpu = x.clone().requires_grad_(), x.to(CUDA).requires_grad_()
        cpu, gpu = layer(x_cpu), twin(x_gpu)
        assert_bitwise_equal(gpu.detach().cpu().numpy(), cpu.detach().numpy(),
                             f"layer {type(layer).__name__}")
        upstream = torch.randn(cpu.shape)
        (cpu * upstream).sum().backward()
        (gpu * upstream.to(CUDA)).sum().backward()
        scale = float(x_cpu.grad.abs().max())
        assert scale > 0, f"layer {type(layer).__name__}: no gradient reached x"
        torch.testing.assert_close(x_gpu.grad.cpu(), x_cpu.grad, rtol=1e-5, atol=1e-5 * scale,
                                   msg=lambda m: f"layer {type(layer).__name__}: {m}")
    # evaluation: DS-ATGO with its running (or estimated) threshold
    for mode in ("true", "estimated"):
        layer = snn.ATGO(threshold_mode=mode)
        layer(x)                      # one training step sets the running threshold
        layer.eval()
        twin = copy.deepcopy(layer).to(CUDA)
        assert_bitwise_equal(twin(x.to(CUDA)).cpu().numpy(), layer(x).numpy(),
                             f"ATGO eval {mode}")


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.float16])
def test_opcheck_on_cuda(dtype):
    """The CUDA kernels agree with the ops' fake kernels and schemas (torch.library.opcheck)."""
    from spikegrad.ops import multilevel_ops, neuron_ops
    torch.manual_seed(0)
    state = torch.float32 if dtype == torch.float16 else dtype
    T, N = 5, 300
    x = (torch.randn(T, N, device=CUDA) + 0.5).to(dtype)
    decay = torch.tensor(0.3, dtype=state, device=CUDA)
    threshold = torch.full((T,), 0.9, dtype=state, device=CUDA)
    sg_param = torch.full((T,), 1.0, dtype=state, device=CUDA)
    v_init = torch.zeros(N, dtype=state, device=CUDA)
    torch.library.opcheck(neuron_ops.neuron_forward, (x, decay, threshold, sg_param, v_init, 0.0,
                                               "mul", "hard", "absolute", "rect", False, False,
                                               True))
    torch.library.opcheck(neuron_ops.neuron_backward, (
        x, decay, threshold, sg_param, v_init, torch.randn_like(x), None,
        torch.randn(N, device=CUDA).to(dtype), 0.0, "mul", "soft", "absolute", "atan", False,
        True))
    torch.library.opcheck(multilevel_ops.multilevel_forward, (
        x, decay, sg_param, v_init, 1.0, 1.0, 2, 2, "tsg", False, False, True))


def test_torch_compile_on_cuda_matches_eager():
    torch.manual_seed(0)

    def layer(x, threshold):
        out = spikegrad.neuron(x, decay=0.25, threshold=threshold, reset="soft",
                               surrogate="atan", return_membrane=True)
        return out.output.sum(0) + out.membrane.mean(0) + out.v_last

    x = torch.randn(6, 4, 5, device=CUDA, requires_grad=True)
    threshold = torch.tensor(0.9, device=CUDA, requires_grad=True)
    compiled = torch.compile(layer, fullgraph=True, backend="aot_eager")
    torch.testing.assert_close(compiled(x, threshold), layer(x, threshold), rtol=0, atol=0)
