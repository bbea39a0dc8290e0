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
from spikegrad import _cuda_ops, multilevel_ops, ops  # noqa: E402,F401


def _cuda_module_or_skip():
    try:
        from spikegrad import _cuda
    except ImportError:
        pytest.skip("spikegrad was built without CUDA (no nvcc at build time)")
    return _cuda


@pytest.mark.parametrize("op", ["neuron_forward", "neuron_backward", "multilevel_forward",
                                "multilevel_backward", "pnb_partial_sums", "adaptive_forward"])
def test_every_op_has_a_cuda_kernel(op):
    from spikegrad import adaptive_ops  # noqa: F401
    assert torch._C._dispatch_has_kernel_for_dispatch_key(f"spikegrad::{op}", "CUDA")


def test_import_loads_no_cuda():
    code = ("import sys, torch, spikegrad, spikegrad.ops, spikegrad.multilevel_ops, "
            "spikegrad.adaptive_ops, spikegrad.nn\n"
            "assert 'spikegrad._cuda' not in sys.modules, 'spikegrad._cuda loaded eagerly'\n"
            "assert not torch.cuda.is_initialized(), 'CUDA initialized by import'\n")
    subprocess.run([sys.executable, "-c", code], check=True)


def test_missing_cuda_module_is_a_clear_error(monkeypatch):
    monkeypatch.setitem(sys.modules, "spikegrad._cuda", None)   # import fails as if not built
    with pytest.raises(NotImplementedError, match="built without a CUDA compiler"):
        _cuda_ops.cuda_module()


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
        ops._check_device(x)


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


def test_launchers_check_arguments_before_touching_the_device():
    cuda = _cuda_module_or_skip()
    with pytest.raises(ValueError, match="T >= 1"):
        cuda.neuron_forward("float32", 0, 4, 0.2, 0.0, 0, 0, 0, 0, 0, 0, 0, charge="mul",
                            reset="hard", scale="absolute", surrogate="rect", smooth=False,
                            stream=0)
    with pytest.raises(ValueError, match="charge must be one of"):
        cuda.neuron_forward("float32", 1, 4, 0.2, 0.0, 0, 0, 0, 0, 0, 0, 0, charge="lif",
                            reset="hard", scale="absolute", surrogate="rect", smooth=False,
                            stream=0)
    with pytest.raises(TypeError, match="dtype must be one of"):
        cuda.neuron_backward_workspace_bytes("int8", 8, 100)
    with pytest.raises(ValueError, match="N >= 2"):
        cuda.adaptive_forward("float32", 1, 1, 0.2, 0.0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
                              charge="mul", reset="hard", threshold_mode="true", f_c=1.0,
                              v_th=1.0, tgo=True, tgo_driver="std", width=1.0, stream=0)
    # [2T + 1] float64 rows per 256 neurons, then the checkpoints of chunks 1 .. last - 1
    assert cuda.neuron_backward_workspace_bytes("float32", 8, 2**24) == 8 * 17 * 2**16
    assert cuda.neuron_backward_workspace_bytes("bfloat16", 20, 256) == 8 * 41 + 4 * 256


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the no-GPU message")
def test_bench_on_cuda_without_a_gpu_says_so(capsys):
    from spikegrad import cli
    assert cli.main(["bench", "--device", "cuda", "--no-progress", "--methods", "spikegrad"]) == 2
    assert "no CUDA GPU is available" in capsys.readouterr().err
