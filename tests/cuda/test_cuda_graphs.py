"""The CUDA ops without host synchronisation (docs/cuda.md): CUDA-graph capture and replay of
forward + backward against eager, bit for bit; no synchronizing torch call inside the ops
(torch.cuda.set_sync_debug_mode("error")); indexing past 2^31 elements; and the device-side
checks of parameter values (a device-side assertion, in a subprocess, since the CUDA context
is unusable after one) beside the host checks of Python-number parameters.

GPU only: every test skips without one (tools/gpu_check.sh runs them on a GPU machine)."""

import os
import subprocess
import sys

import numpy as np
import pytest

torch = pytest.importorskip("torch")

pytestmark = pytest.mark.skipif(
    not torch.cuda.is_available(), reason="needs a CUDA GPU (tools/gpu_check.sh on a GPU machine)")

import spikegrad  # noqa: E402
from spikegrad import nn as snn  # noqa: E402

CUDA = "cuda"
T, B, F = 6, 4, 700           # N = 2800: past one 256-thread block, not a multiple of it
SHAPE = (T, B, F)
WARMUP = 3


# --------------------------------------------------------------------------------------
# The cases: forward + backward of an op or a layer, each built twice (the captured one and
# its eager twin) with the same initial state.
# --------------------------------------------------------------------------------------

class Case:
    """run(x, g): forward on x, backward of the output with upstream g; returns the output
    (and for ATGO the running threshold). `params`: the leaves whose gradients are compared;
    `module`: the layer (its state is copied to the twin before each comparison) or None."""

    def __init__(self, run, params=(), module=None):
        self.run, self.params, self.module = run, list(params), module


def _neuron_case(learnable_decay=True):
    """spikegrad.neuron, surrogate "atan", soft reset, a learnable [T] threshold, and a
    learnable 0-d decay (or the float 0.3)."""
    threshold = torch.linspace(0.6, 1.4, T, device=CUDA).requires_grad_()
    if learnable_decay:
        decay = torch.tensor(0.3, device=CUDA, requires_grad=True)
        params = [decay, threshold]
    else:
        decay, params = 0.3, [threshold]

    def run(x, g):
        out = spikegrad.neuron(x, decay=decay, threshold=threshold, surrogate="atan",
                               reset="soft")
        out.output.backward(g)
        return [out.output]

    return Case(run, params)


def _multilevel_case():
    decay = torch.tensor(0.25, device=CUDA, requires_grad=True)
    a = torch.linspace(0.8, 1.2, T, device=CUDA).requires_grad_()

    def run(x, g):
        out = spikegrad.multilevel(x, decay=decay, surrogate="tsg", a=a)
        out.output.backward(g)
        return [out.output]

    return Case(run, [decay, a])


def _layer_case(make):
    def build():
        layer = make().to(CUDA)
        layer.train()

        def run(x, g):
            out = layer(x)
            out.backward(g)
            state = [b for _, b in sorted(layer.named_buffers())]  # ATGO: running_threshold
            return [out] + state

        return Case(run, [p for _, p in sorted(layer.named_parameters())], layer)

    return build


CASES = {
    "neuron": _neuron_case,                                    # learnable 0-d decay, [T] theta
    "LIF": _layer_case(lambda: snn.LIF()),
    "multilevel": _multilevel_case,
    "CF": _layer_case(lambda: snn.CF(T=T)),
    "ATGO": _layer_case(lambda: snn.ATGO()),                   # training: adaptive threshold
}
SYNC_CASES = {
    "neuron": lambda: _neuron_case(learnable_decay=False),     # float decay, [T] theta w/ grad
    "neuron-learnable-decay": _neuron_case,
    "LIF": CASES["LIF"],
    "PLIF-learnable-threshold": _layer_case(
        lambda: snn.LIF(learn_decay=True, learn_threshold=True)),
    "multilevel": _multilevel_case,
    "CF": CASES["CF"],
    "ATGO": CASES["ATGO"],
}


def _step(case, x, g):
    """Forward + backward from cleared gradients: [outputs..., x.grad, param grads...]."""
    x.grad = None
    for p in case.params:
        p.grad = None
    outputs = case.run(x, g)
    return outputs + [x.grad] + [p.grad for p in case.params]


def _names(case, outputs):
    extra = len(outputs) - 1 - 1 - len(case.params)
    return (["output"] + [f"state {i}" for i in range(extra)] + ["x.grad"]
            + [f"param {i} grad" for i in range(len(case.params))])


def _data(generator):
    """(x, upstream gradient) on the GPU, from a CPU generator (the same on every run)."""
    x = torch.randn(SHAPE, generator=generator) * 0.8 + 0.5
    g = torch.randn(SHAPE, generator=generator)
    return x.to(CUDA), g.to(CUDA)


# --------------------------------------------------------------------------------------
# a. CUDA-graph capture of forward + backward, replayed, equals eager bit for bit
# --------------------------------------------------------------------------------------

@pytest.mark.parametrize("name", list(CASES))
def test_cuda_graph_replay_equals_eager(name):
    captured, eager = CASES[name](), CASES[name]()
    generator = torch.Generator().manual_seed(0)
    # static buffers: the graph reads x and g and writes x.grad at fixed addresses
    x = torch.empty(SHAPE, device=CUDA, requires_grad=True)
    g = torch.empty(SHAPE, device=CUDA)
    x0, g0 = _data(generator)
    with torch.no_grad():
        x.copy_(x0)
        g.copy_(g0)

    # warm-up on a side stream (the PyTorch CUDA-graphs recipe), then capture
    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side):
        for _ in range(WARMUP):
            _step(captured, x, g)
    torch.cuda.current_stream().wait_stream(side)
    torch.cuda.synchronize()
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        static = _step(captured, x, g)
    assert all(t is not None for t in static), f"{name}: a gradient is missing in the capture"

    previous = None
    for replay in range(2):
        x_new, g_new = _data(generator)
        if captured.module is not None:        # the twin starts from the captured state
            eager.module.load_state_dict(captured.module.state_dict())
        with torch.no_grad():
            x.copy_(x_new)
            g.copy_(g_new)
        graph.replay()
        torch.cuda.synchronize()
        expected = _step(eager, x_new.clone().requires_grad_(), g_new)
        torch.cuda.synchronize()
        for what, got, want in zip(_names(captured, static), static, expected):
            assert got.shape == want.shape and got.dtype == want.dtype, f"{name} {what}"
            assert torch.equal(got, want), (
                f"{name}, replay {replay}: {what} of the graph differs from eager "
                f"(max |diff| {(got.double() - want.double()).abs().max().item():.3g})")
        assert static[0].abs().sum().item() > 0, f"{name}: nothing fired"
        if previous is not None:
            assert not torch.equal(static[0], previous), f"{name}: the replay did not recompute"
        previous = static[0].clone()


# --------------------------------------------------------------------------------------
# b. No synchronizing torch call inside the ops (forward + backward)
# --------------------------------------------------------------------------------------

@pytest.mark.parametrize("name", list(SYNC_CASES))
def test_forward_and_backward_do_not_synchronize(name):
    case = SYNC_CASES[name]()
    x0, g = _data(torch.Generator().manual_seed(1))
    _step(case, x0.clone().requires_grad_(), g)        # first call: loads spikegrad._cuda
    x = x0.clone().requires_grad_()
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("error")
    try:
        results = _step(case, x, g)                    # raises on a synchronizing call
    finally:
        torch.cuda.set_sync_debug_mode("default")
    torch.cuda.synchronize()
    assert all(t is not None for t in results), f"{name}: a gradient is missing"
    assert results[0].abs().sum().item() > 0, f"{name}: nothing fired"


# --------------------------------------------------------------------------------------
# c. Past 32-bit indexing: T * N >= 2^31 elements (in a subprocess: an out-of-range address
#    would leave this process's CUDA context unusable for the tests after it)
# --------------------------------------------------------------------------------------

LARGE_T, LARGE_N = 8, 2**28 + 3           # T * N = 2^31 + 24; odd N on purpose
LARGE_FREE_BYTES = 60 * 2**30             # the neuron needs about 35 GiB at a time
EDGE = 4096


def _large_index_check(op_name, op):
    """The big call's first and last EDGE neurons against separate calls on those neurons
    alone (neurons are independent, so a 32-bit overflow shows as a mismatch or an illegal
    address). Raises AssertionError on a mismatch; its tensors are freed on return."""
    gen = torch.Generator(device=CUDA).manual_seed(0)
    x = torch.randn(LARGE_T, LARGE_N, device=CUDA, generator=gen).requires_grad_()
    grad_output = torch.randn(LARGE_T, LARGE_N, device=CUDA, generator=gen)
    grad_v_last = torch.randn(LARGE_N, device=CUDA, generator=gen)
    out = op(x)                                        # return_membrane=False
    torch.autograd.backward([out.output, out.v_last], [grad_output, grad_v_last])
    torch.cuda.synchronize()
    for where, part in (("last", slice(LARGE_N - EDGE, LARGE_N)), ("first", slice(0, EDGE))):
        xs = x.detach()[:, part].contiguous().requires_grad_()
        small = op(xs)
        torch.autograd.backward([small.output, small.v_last],
                                [grad_output[:, part].contiguous(),
                                 grad_v_last[part].contiguous()])
        torch.cuda.synchronize()
        for what, big, ref in (("output", out.output.detach()[:, part], small.output),
                               ("v_last", out.v_last.detach()[part], small.v_last),
                               ("grad_x", x.grad[:, part], xs.grad)):
            ref = ref.detach()
            if not torch.equal(big, ref):
                first = (big != ref).nonzero()[0].tolist()
                raise AssertionError(f"{op_name}: {what} of the {where} {EDGE} neurons differs "
                                     f"from a call on them alone; first at {first}")
        assert small.output.abs().sum().item() > 0, f"{op_name}: nothing fired"


def _large_index_run():
    """Run by test_past_32_bit_indexing in a fresh process. Prints 'skip: ...' when the
    memory is not free, 'ok: <op>' per op that passes; raises on a mismatch."""
    for op_name, op in (("neuron", spikegrad.neuron), ("multilevel", spikegrad.multilevel)):
        torch.cuda.empty_cache()
        free, _ = torch.cuda.mem_get_info()
        if free < LARGE_FREE_BYTES:
            print(f"skip: {free / 2**30:.1f} GiB of GPU memory free, the {op_name} check "
                  f"needs {LARGE_FREE_BYTES / 2**30:.0f} GiB", flush=True)
            return
        _large_index_check(op_name, op)
        print(f"ok: {op_name}", flush=True)


def test_past_32_bit_indexing():
    torch.cuda.empty_cache()
    free, _ = torch.cuda.mem_get_info()
    if free < LARGE_FREE_BYTES:
        pytest.skip(f"needs {LARGE_FREE_BYTES / 2**30:.0f} GiB of free GPU memory for "
                    f"T * N = 2^31 + 24 float32 elements, {free / 2**30:.1f} GiB free")
    code = (f"import sys; sys.path.insert(0, {os.path.dirname(os.path.abspath(__file__))!r}); "
            f"import test_cuda_graphs; test_cuda_graphs._large_index_run()")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            timeout=300)
    log = f"stdout:\n{result.stdout[-4000:]}\nstderr:\n{result.stderr[-4000:]}"
    assert result.returncode == 0, log
    if "skip:" in result.stdout:
        pytest.skip(result.stdout.split("skip:", 1)[1].strip().splitlines()[0])
    assert "ok: neuron" in result.stdout and "ok: multilevel" in result.stdout, log


# --------------------------------------------------------------------------------------
# d. Parameter values: tensors checked on the device (a device-side assertion), Python
#    numbers on the host (ValueError before any launch)
# --------------------------------------------------------------------------------------

DEVICE_CHECK_CODE = """
import ctypes
import os
import sys
import torch
import spikegrad


def leave(code):
    # no interpreter teardown on a broken CUDA context; flush C's stdout too, where the
    # device's printf lines are written
    sys.stdout.flush()
    sys.stderr.flush()
    ctypes.CDLL(None).fflush(None)
    os._exit(code)


case = sys.argv[1]
T = 4
x = torch.randn(T, 1000, device="cuda")
threshold = torch.ones(T, device="cuda")
sg_param = torch.ones(T, device="cuda")
a = torch.ones(T, device="cuda")
scale = "relative" if case.startswith("valid") else "absolute"
if case == "negative threshold, relative scale":
    threshold[2] = -1.0
    scale = "relative"
elif case == "zero sg_param":
    sg_param[1] = 0.0
elif case == "NaN threshold":
    threshold[3] = float("nan")
elif case == "zero multilevel a":
    a[1] = 0.0
try:
    if case.startswith("valid") or "multilevel" not in case:
        spikegrad.neuron(x, threshold=threshold, sg_param=sg_param, scale=scale)
    if case.startswith("valid") or "multilevel" in case:
        spikegrad.multilevel(x, surrogate="tsg", a=a)
    torch.cuda.synchronize()
except RuntimeError as error:
    print(f"raised {type(error).__name__}: {error}", file=sys.stderr, flush=True)
    leave(3)
print("finished", flush=True)
leave(0)
"""

DEVICE_CHECK_CASES = {   # case -> the line the kernel prints, or None: must run cleanly
    "valid (relative scale, tensors > 0)": None,
    "negative threshold, relative scale": "spikegrad: threshold[2]",
    "zero sg_param": "spikegrad: sg_param[1]",
    "NaN threshold": "spikegrad: threshold[3]",
    "zero multilevel a": "spikegrad: a[1]",
}


def test_device_side_parameter_checks():
    """Each case in its own process, all at once (a device-side assertion leaves the CUDA
    context unusable): the bad values stop the kernel with a printed line and a RuntimeError
    ("device-side assert") at the next synchronization; the valid case runs."""
    processes = {case: subprocess.Popen([sys.executable, "-c", DEVICE_CHECK_CODE, case],
                                        stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                        text=True)
                 for case in DEVICE_CHECK_CASES}
    failures = []
    for case, process in processes.items():
        try:
            stdout, stderr = process.communicate(timeout=120)
        except subprocess.TimeoutExpired:
            process.kill()
            stdout, stderr = process.communicate()
            failures.append(f"{case}: timed out")
            continue
        output = stdout + stderr
        expected = DEVICE_CHECK_CASES[case]
        if expected is None:
            ok = process.returncode == 0 and "finished" in stdout
        else:
            ok = (process.returncode == 3 and expected in output
                  and "device-side assert" in output and "finished" not in stdout)
        if not ok:
            failures.append(f"{case}: return code {process.returncode}, expected "
                            f"{'0' if expected is None else '3 and ' + repr(expected)}\n"
                            f"--- stdout:\n{stdout[-2000:]}\n--- stderr:\n{stderr[-2000:]}")
    assert not failures, "\n\n".join(failures)


def test_python_number_parameters_are_checked_on_the_host():
    x = torch.randn(4, 100, device=CUDA)
    with pytest.raises(ValueError, match="threshold"):
        spikegrad.neuron(x, threshold=-1.0, scale="relative")
    with pytest.raises(ValueError, match="threshold"):
        spikegrad.neuron(x, threshold=float("nan"))
    with pytest.raises(ValueError, match="sg_param"):
        spikegrad.neuron(x, sg_param=0.0)
    with pytest.raises(ValueError, match="a must be"):
        spikegrad.multilevel(x, surrogate="tsg", a=0.0)
    # nothing was launched with those values: the context is sound and a valid call runs
    out = spikegrad.neuron(x, threshold=0.5, scale="relative")
    torch.cuda.synchronize()
    assert np.isfinite(out.output.cpu().numpy()).all()
