"""The CUDA build and plumbing, checked without a GPU (docs/cuda.md): the ops' CUDA kernels are
registered, a missing CUDA module or an unsupported device gives a clear error, float16 and
bfloat16 are refused on the CPU, `import spikegrad` loads no CUDA, and the compiled module's
host side (the canonical float64 sum order, argument checks) where it was built."""

import subprocess
import sys

import numpy as np
import pytest

torch = pytest.importorskip("torch")

import spikegrad  # noqa: E402
from spikegrad.ops import _device, adaptive_ops, multilevel_ops, neuron_ops  # noqa: E402,F401


def _cuda_module_or_skip():
    try:
        from spikegrad import _cuda
    except ImportError:
        pytest.skip("spikegrad was built without CUDA (no nvcc at build time)")
    return _cuda


@pytest.mark.parametrize("op", ["neuron_forward", "neuron_backward", "multilevel_forward",
                                "multilevel_backward", "pnb_partial_sums", "adaptive_forward"])
def test_every_op_has_a_cuda_kernel(op):
    from spikegrad.ops import adaptive_ops  # noqa: F401
    assert torch._C._dispatch_has_kernel_for_dispatch_key(f"spikegrad::{op}", "CUDA")


def test_import_loads_no_cuda():
    code = ("import sys, torch, spikegrad, spikegrad.ops, spikegrad.ops.multilevel_ops, "
            "spikegrad.ops.adaptive_ops, spikegrad.nn\n"
            "assert 'spikegrad._cuda' not in sys.modules, 'spikegrad._cuda loaded eagerly'\n"
            "assert not torch.cuda.is_initialized(), 'CUDA initialized by import'\n")
    subprocess.run([sys.executable, "-c", code], check=True)


def test_missing_cuda_module_is_a_clear_error(monkeypatch):
    monkeypatch.setitem(sys.modules, "spikegrad._cuda", None)   # import fails as if not built
    monkeypatch.delattr(spikegrad, "_cuda", raising=False)      # (an earlier import set it)
    with pytest.raises(NotImplementedError, match="built without a CUDA compiler"):
        _device.cuda_module()


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_half_precision_on_cpu_is_a_type_error(dtype):
    x = torch.zeros(2, 3, dtype=dtype)
    with pytest.raises(TypeError, match="x has dtype .* on cpu: float16 and bfloat16 are "
                                        "supported on CUDA only"):
        spikegrad.neuron(x)
    with pytest.raises(TypeError, match="CUDA only"):
        spikegrad.multilevel(x)


def test_other_devices_are_refused_clearly():
    x = torch.zeros(2, 3, device="meta")
    with pytest.raises(NotImplementedError, match="no kernel for device 'meta'"):
        neuron_ops._check_device(x)


def _numpy_ordered_device_sum(values, threads=256):
    """NumPy transcription of cuda.hpp's order: thread k adds values k, k + threads, ...
    left to right; then per warp of 32 lanes a shfl_down tree (offsets 16, 8, 4, 2, 1; a
    lane past 31 reads its own value); then the same tree over the warps' sums (zeros past
    the last warp)."""
    acc = np.zeros(threads)
    for k in range(threads):
        total = 0.0
        for v in values[k::threads]:
            total += float(v)
        acc[k] = total

    def tree(lanes):
        lanes = np.array(lanes, dtype=np.float64)
        for offset in (16, 8, 4, 2, 1):
            shifted = np.concatenate([lanes[offset:], lanes[32 - offset:]])
            lanes = lanes + shifted
        return lanes[0]

    warps = [tree(acc[32 * w:32 * (w + 1)]) for w in range(threads // 32)]
    return tree(warps + [0.0] * (32 - len(warps)))


@pytest.mark.parametrize("M", [0, 1, 3, 31, 256, 257, 1000, 9999])
def test_host_sum_order_matches_numpy_transcription(M):
    cuda = _cuda_module_or_skip()
    rng = np.random.default_rng(M)
    values = rng.normal(size=M) * rng.choice([1e-12, 1.0, 1e12], size=M)
    assert cuda.ordered_device_sum(values) == _numpy_ordered_device_sum(values)
    assert cuda.BLOCK_THREADS == 256 and cuda.CHUNK_STEPS == 8


class _FakeCudaTensor:
    """What spikegrad._cuda reads of a CUDA tensor (bindings/buffers.hpp), without a GPU: the
    launchers must refuse bad arguments before they touch the device."""

    class _Device:
        type, index = "cuda", 0

    device = _Device()

    def __init__(self, shape, dtype=torch.float32):
        self.shape, self.dtype = torch.Size(shape), dtype

    def is_contiguous(self):
        return True

    def data_ptr(self):
        return 4096   # never dereferenced: every check comes first


def test_launchers_check_arguments_before_touching_the_device():
    cuda = _cuda_module_or_skip()
    fake = _FakeCudaTensor
    options = dict(charge="mul", reset="hard", scale="absolute", surrogate="rect", smooth=False,
                   stream=0)
    with pytest.raises(ValueError, match="T >= 1"):
        cuda.neuron_forward(0.2, 0.0, fake((0,)), fake((0,)), None, fake((0, 4)), fake((0, 4)),
                            None, fake((4,)), **options)
    with pytest.raises(ValueError, match="charge must be one of"):
        cuda.neuron_forward(0.2, 0.0, fake((1,)), fake((1,)), None, fake((1, 4)), fake((1, 4)),
                            None, fake((4,)), **dict(options, charge="lif"))
    with pytest.raises(TypeError, match="x must be float32, float64, float16 or bfloat16"):
        cuda.neuron_backward_workspace_bytes(fake((8, 100), torch.int8))
    with pytest.raises(ValueError, match="N >= 2"):
        cuda.adaptive_forward(
            0.2, 0.0, None, fake((1, 1)), fake((1, 1)), None, fake((1,)), fake((1,)), fake((1,)),
            fake((1,), torch.float64), fake((1,), torch.float64), fake((1,)),
            fake((64,), torch.uint8), charge="mul", reset="hard", threshold_mode="true",
            f_c=1.0, v_th=1.0, tgo=True, tgo_driver="std", width=1.0, stream=0)
    with pytest.raises(TypeError, match="threshold must be a torch.Tensor on a CUDA device"):
        cuda.neuron_forward(0.2, 0.0, np.ones(1, np.float32), fake((1,)), None, fake((1, 4)),
                            fake((1, 4)), None, fake((4,)), **options)
    with pytest.raises(ValueError, match="sg_param must be on a CUDA device, got a tensor on cpu"):
        cuda.neuron_forward(0.2, 0.0, fake((1,)), torch.ones(1), None, fake((1, 4)),
                            fake((1, 4)), None, fake((4,)), **options)
    # [2T + 1] float64 rows per 256 neurons, then the checkpoints of chunks 1 .. last - 1
    assert cuda.neuron_backward_workspace_bytes(fake((8, 2**24))) == 8 * 17 * 2**16
    assert cuda.neuron_backward_workspace_bytes(fake((20, 256), torch.bfloat16)) == \
        8 * 41 + 4 * 256


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the no-GPU message")
def test_bench_on_cuda_without_a_gpu_says_so(capsys):
    from spikegrad.tools import cli
    assert cli.main(["bench", "--device", "cuda", "--no-progress", "--methods", "spikegrad"]) == 2
    assert "no CUDA GPU is available" in capsys.readouterr().err


# ---------------------------------------------------------------------------------------
# The ops' CUDA kernels (spikegrad/ops/*_ops.py) without a GPU: a host stand-in for spikegrad._cuda
# runs the CPU kernels on the very pointers the wrappers pass (CPU tensors here), so that the
# argument order, the buffers, the pointer offsets of the float64 gradients and the assembly
# of the results are checked against the CPU ops.
# ---------------------------------------------------------------------------------------

class _HostStandIn:
    """spikegrad._cuda on the host: the two modules share one calling convention, so each op
    is spikegrad._core's, with the `stream` keyword recorded and dropped."""

    def __init__(self):
        from spikegrad import _core
        self.core = _core
        self.streams = []
        self.param_grads = []   # per backward call: were the gradient buffers given?

    def __getattr__(self, name):
        op = getattr(self.core, name)

        def launch(*args, stream=None, **kwargs):
            if stream is not None:
                self.streams.append(stream)
            return op(*args, **kwargs)
        return launch

    def neuron_backward(self, *args, stream, **kwargs):
        # all three gradient buffers or none (cuda.hpp): none means no parameter sums
        grads = args[11:14]
        param_grads = grads != (None, None, None)
        assert param_grads == (None not in grads)
        self.param_grads.append(param_grads)
        return self.core.neuron_backward(*args, **kwargs)

    def multilevel_backward(self, *args, stream, **kwargs):
        grads = args[13:15]
        param_grads = grads != (None, None)
        assert param_grads == (None not in grads)
        self.param_grads.append(param_grads)
        return self.core.multilevel_backward(*args, **kwargs)

    def adaptive_forward(self, *args, stream, **kwargs):
        membrane, h_scratch = args[5], args[11]
        assert (membrane is None) != (h_scratch is None), "exactly one of membrane and h_scratch"
        return self.core.adaptive_forward(*args, **kwargs)


@pytest.fixture
def host_stand_in(monkeypatch):
    import contextlib
    stand_in = _HostStandIn()
    monkeypatch.setattr(_device, "cuda_module", lambda: stand_in)
    monkeypatch.setattr(_device, "_stream", lambda x: 12345)
    monkeypatch.setattr(_device, "_device_guard", lambda x: contextlib.nullcontext())
    return stand_in


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("return_membrane", [True, False])
def test_neuron_wrappers_pass_the_right_buffers(host_stand_in, dtype, return_membrane):
    torch.manual_seed(0)
    T, N = 5, 37
    x = torch.randn(T, N, dtype=dtype) + 0.6
    decay = torch.tensor(0.3, dtype=dtype)
    threshold = torch.rand(T, dtype=dtype) + 0.5
    sg_param = torch.rand(T, dtype=dtype) + 0.5
    v_init = torch.randn(N, dtype=dtype) * 0.2
    options = ("soft", "relative", "sigmoid", False, False)   # reset .. detach_reset
    args = (x, decay, threshold, sg_param, v_init, -0.1, "decay_input") + options
    expected = neuron_ops.neuron_forward(*args, return_membrane)
    actual = neuron_ops._neuron_forward_cuda(*args, return_membrane)
    for e, a in zip(expected, actual):
        assert a.dtype == e.dtype and torch.equal(a, e)
    assert host_stand_in.streams == [12345]

    g_out, g_mem, g_v = torch.randn(T, N, dtype=dtype), torch.randn(T, N, dtype=dtype), None
    backward_args = (x, decay, threshold, sg_param, v_init, g_out, g_mem, g_v, -0.1,
                     "decay_input", "soft", "relative", "sigmoid", False, True)
    expected = neuron_ops.neuron_backward(*backward_args)
    actual = neuron_ops._neuron_backward_cuda(*backward_args)
    for name, e, a in zip(("x", "v_init", "decay", "threshold", "sg_param"), expected, actual):
        assert a.dtype == e.dtype and a.shape == e.shape and torch.equal(a, e), name
    # no parameter gradient wanted: null gradient pointers (no sums), zeros as on the CPU
    expected = neuron_ops.neuron_backward(*backward_args, param_grads=False)
    actual = neuron_ops._neuron_backward_cuda(*backward_args, param_grads=False)
    for name, e, a in zip(("x", "v_init", "decay", "threshold", "sg_param"), expected, actual):
        assert a.dtype == e.dtype and a.shape == e.shape and torch.equal(a, e), name
    assert host_stand_in.param_grads == [True, False]


def test_multilevel_and_pnb_wrappers_pass_the_right_buffers(host_stand_in):
    torch.manual_seed(1)
    T, N = 4, 29
    x = torch.randn(T, N, dtype=torch.float64) * 2
    decay = torch.tensor(0.25, dtype=torch.float64)
    a = torch.rand(T, dtype=torch.float64) + 0.5
    v_init = torch.randn(N, dtype=torch.float64) * 0.2
    args = (x, decay, a, v_init, 1.0, 0.5, 2, 3, "tsg", False, False, True)
    for e, g in zip(multilevel_ops.multilevel_forward(*args),
                    multilevel_ops._multilevel_forward_cuda(*args)):
        assert torch.equal(g, e)
    g_out = torch.randn(T, N, dtype=torch.float64)
    backward_args = (x, decay, a, v_init, g_out, None, torch.randn(N, dtype=torch.float64),
                     1.0, 0.5, 2, 3, "tsg", False, False)
    for e, g in zip(multilevel_ops.multilevel_backward(*backward_args),
                    multilevel_ops._multilevel_backward_cuda(*backward_args)):
        assert g.shape == e.shape and torch.equal(g, e)
    # neither parameter gradient wanted: null pointers, and NaN (never a plausible number)
    # in their place, as on the CPU
    flags = (False, False)
    for e, g in zip(multilevel_ops.multilevel_backward(*backward_args, *flags),
                    multilevel_ops._multilevel_backward_cuda(*backward_args, *flags)):
        assert g.shape == e.shape
        if e.isnan().all():
            assert g.isnan().all()
        else:
            assert torch.equal(g, e)
    assert host_stand_in.param_grads == [True, False]
    h = torch.randn(1000, dtype=torch.float32) * 2
    assert torch.equal(multilevel_ops._pnb_partial_sums_cuda(h, 1.0, 0.5, 3),
                       multilevel_ops.pnb_partial_sums(h, 1.0, 0.5, 3))


@pytest.mark.parametrize("return_membrane", [True, False])
def test_adaptive_wrapper_passes_the_right_buffers(host_stand_in, return_membrane):
    from spikegrad.ops import adaptive_ops
    torch.manual_seed(2)
    T, N = 3, 600
    x = torch.randn(T, N) + 0.3
    args = (x, torch.tensor(0.3), torch.randn(N) * 0.1, 0.0, "decay_input", "soft", False,
            "true", 1.0, 1.0, True, "std", 1.0, return_membrane)
    expected = adaptive_ops.adaptive_forward(*args)
    actual = adaptive_ops._adaptive_forward_cuda(*args)
    for name, e, a in zip(("output", "membrane", "v_last", "threshold", "sg_param", "mean",
                           "std"), expected, actual):
        assert a.dtype == e.dtype and torch.equal(a, e), name
