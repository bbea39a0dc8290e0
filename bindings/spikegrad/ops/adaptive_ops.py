"""The torch op of DS-ATGO's adaptive threshold (docs/spec.md §2 "AT", docs/spec.md §5 "TGO"), and its
data-parallel twin.

    spikegrad::adaptive_forward  (custom_op: fake, CPU and CUDA kernels side by side)
        -> output, membrane, v_last, threshold [T], sg_param [T], mean [T], std [T]
    backward -> spikegrad::neuron_backward with the recorded threshold and widths
               (theta[t] and k_t are detached statistics: no gradient flows into them)

    synced_adaptive_statistics(...)   the same forward as a Python loop over t around the
                                      step kernels, all-gathering the per-block float64 sums
                                      over the default torch.distributed process group (CUDA x:
                                      on a host copy of x; results on x's device)

spikegrad.nn.ATGO uses both; spikegrad.ref.adaptive is the oracle of both.
"""

from __future__ import annotations

from typing import Optional

import numpy as np
import torch
from torch import Tensor

from .. import _core
from .._statistics import BLOCK, combine_partial_sums
from . import _device
from . import neuron_ops  # noqa: F401  (registers spikegrad::neuron_backward)
from ._device import _contiguous, _decay, _forward_outputs, _workspace

__all__ = ["adaptive_forward", "synced_adaptive_statistics"]


@torch.library.custom_op("spikegrad::adaptive_forward", mutates_args=())
def adaptive_forward(x: Tensor, decay: Tensor, v_init: Optional[Tensor], v_reset: float,
                     charge: str,
                     reset: str, detach_reset: bool, threshold_mode: str, f_c: float,
                     v_th: float, tgo: bool, tgo_driver: str, width: float,
                     return_membrane: bool
                     ) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor, Tensor, Tensor]:
    """x [T, N], decay 0-d, v_init [N] or None (zeros, not materialised in the forward) ->
    (output [T, N], membrane [T, N] or [0], v_last [N], threshold [T], sg_param [T],
    mean float64 [T], std float64 [T]). The default kernel: a device without a kernel of its
    own is refused by name (CPU and CUDA have theirs below)."""
    if x.device.type not in ("cpu", "cuda"):
        raise NotImplementedError(f"spikegrad.nn.ATGO has no kernel for device "
                                  f"{x.device.type!r}; CPU and CUDA tensors are supported")
    kernel = _adaptive_forward_cuda if x.is_cuda else _adaptive_forward_cpu
    return kernel(x, decay, v_init, v_reset, charge, reset, detach_reset, threshold_mode, f_c,
                  v_th, tgo, tgo_driver, width, return_membrane)


@adaptive_forward.register_fake
def _(x, decay, v_init, v_reset, charge, reset, detach_reset, threshold_mode, f_c, v_th, tgo,
      tgo_driver, width, return_membrane):
    T, N = x.shape
    f64 = dict(dtype=torch.float64)
    return (x.new_empty((T, N)), x.new_empty((T, N) if return_membrane else (0,)),
            x.new_empty((N,)), x.new_empty((T,)), x.new_empty((T,)),
            x.new_empty((T,), **f64), x.new_empty((T,), **f64))


def _launch_adaptive_forward(launch, x, decay, v_init, v_reset, charge, reset, detach_reset,
                             threshold_mode, f_c, v_th, tgo, tgo_driver, width, return_membrane):
    """spikegrad::adaptive_forward on the module `launch` gives for x (_device.host_launch,
    _device.cuda_launch): the CPU and CUDA kernels are this one body. v_init None: the kernel
    starts from zeros."""
    del detach_reset  # only the backward uses it
    module, launch_keywords, device_context = launch(x)
    x = x.contiguous()
    T, N = x.shape
    like = dict(dtype=x.dtype, device=x.device)
    f64 = dict(dtype=torch.float64, device=x.device)
    output, membrane, v_last = _forward_outputs(x, return_membrane)
    # one step's h when the membrane is not kept
    h_scratch = None if return_membrane else torch.empty((N,), **like)
    threshold, sg_param = torch.empty((T,), **like), torch.empty((T,), **like)
    mean, std = torch.empty((T,), **f64), torch.empty((T,), **f64)
    workspace = _workspace(module.adaptive_workspace_bytes(x), x)
    with device_context:
        module.adaptive_forward(
            _decay(decay, x), v_reset, _contiguous(v_init), x, output,
            membrane if return_membrane else None, v_last, threshold, sg_param, mean, std,
            h_scratch, workspace, charge=charge, reset=reset, threshold_mode=threshold_mode,
            f_c=f_c, v_th=v_th, tgo=tgo, tgo_driver=tgo_driver, width=width, **launch_keywords)
    return output, membrane, v_last, threshold, sg_param, mean, std


@adaptive_forward.register_kernel("cpu")
def _adaptive_forward_cpu(*args):
    """spikegrad::adaptive_forward's CPU kernel."""
    return _launch_adaptive_forward(_device.host_launch, *args)


@adaptive_forward.register_kernel("cuda")
def _adaptive_forward_cuda(*args):
    """spikegrad::adaptive_forward's CUDA kernel (float32 and float64 x)."""
    return _launch_adaptive_forward(_device.cuda_launch, *args)


def _setup_context(ctx, inputs, output):
    (x, decay, v_init, v_reset, charge, reset, detach_reset, *_rest) = inputs
    _, _, _, threshold, sg_param, mean, std = output
    ctx.save_for_backward(x, decay, v_init, threshold, sg_param)
    ctx.mark_non_differentiable(threshold, sg_param, mean, std)
    ctx.options = dict(v_reset=v_reset, charge=charge, reset=reset, scale="absolute",
                       surrogate="rect", smooth=False, detach_reset=detach_reset)
    ctx.set_materialize_grads(False)


def _backward(ctx, grad_output, grad_membrane, grad_v_last, *_detached):
    x, decay, v_init, threshold, sg_param = ctx.saved_tensors
    if grad_membrane is not None and grad_membrane.numel() == 0:
        grad_membrane = None  # return_membrane=False: the [0] placeholder
    # theta[t] and k_t are detached statistics: the float64 parameter sums are wanted only
    # for a learnable decay (v_init None: the kernel starts from zeros)
    need_decay = ctx.needs_input_grad[1]
    grad_x, grad_v_init, grad_decay, _, _ = torch.ops.spikegrad.neuron_backward(
        x, decay, threshold, sg_param, v_init, grad_output, grad_membrane, grad_v_last,
        **ctx.options, param_grads=need_decay)
    return (grad_x, grad_decay if need_decay else None,
            None if v_init is None else grad_v_init) + (None,) * 11


torch.library.register_autograd("spikegrad::adaptive_forward", _backward,
                                setup_context=_setup_context)


# ---------------------------------------------------------------------------------------
# Data parallel: the statistics of h[t] over the whole batch of every process
# ---------------------------------------------------------------------------------------

def _backend_devices(backend_config: str) -> set[str]:
    """The device types a process group's backend takes tensors of, from its configuration
    string (`torch.distributed.get_backend_config()`: "cpu:gloo,cuda:gloo", "cuda:nccl") or
    a plain backend name ("gloo", "nccl"; torch's table of their devices)."""
    import torch.distributed as dist

    config = str(backend_config).lower()
    if ":" in config:
        return {pair.split(":")[0].strip() for pair in config.split(",") if ":" in pair}
    capability = getattr(dist.Backend, "backend_capability", {})
    return set(capability.get(config, ["cpu", "cuda"]))


def _collective_device(x_device: torch.device, backend_config: str) -> torch.device:
    """Where the block sums travel: on x's device when the backend takes tensors of its type
    (gloo: CPU and CUDA; nccl: CUDA), else on a device it takes (the CPU, or the current CUDA
    device for CPU x under nccl)."""
    devices = _backend_devices(backend_config)
    if x_device.type in devices:
        return x_device
    if "cpu" in devices:
        return torch.device("cpu")
    if "cuda" in devices:
        return torch.device("cuda")  # the current CUDA device (torch.cuda.set_device)
    raise RuntimeError(f"sync_stats=True: the default process group's backend "
                       f"({backend_config}) takes neither {x_device.type} nor CPU tensors")


def _default_backend_config() -> str:
    import torch.distributed as dist

    if hasattr(dist, "get_backend_config"):
        return dist.get_backend_config()
    return str(dist.get_backend())


def _gather_block_sums(local: np.ndarray, counts: list[int],
                       device: torch.device) -> np.ndarray:
    """Every rank's per-block sums, concatenated in rank order (all_gather on `device`,
    padded to the largest block count; float64 travels exactly)."""
    import torch.distributed as dist

    width = max(counts)
    padded = torch.zeros(width, dtype=torch.float64)
    padded[:local.size] = torch.from_numpy(local)
    padded = padded.to(device)
    gathered = [torch.empty(width, dtype=torch.float64, device=device) for _ in counts]
    dist.all_gather(gathered, padded)
    rows = torch.stack(gathered).cpu().numpy()
    return np.concatenate([row[:c] for row, c in zip(rows, counts)])


def synced_adaptive_statistics(x: Tensor, decay: float, *, v_reset: float = 0.0,
                               charge: str = "mul", reset: str = "hard",
                               threshold_mode: str = "true", f_c: float = 1.0,
                               v_th: float = 1.0, tgo: bool = True, tgo_driver: str = "std",
                               width: float = 1.0
                               ) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """theta[t], k_t (x's dtype) and mean, std (float64), all [T], of this process's x
    ([T, N], its share of the batch) together with every other process's, over the default
    torch.distributed process group. No gradient (the statistics are detached).

    A Python loop over t around the step kernels (charge -> gather -> deviations -> gather
    -> fire): per step, every rank's per-block float64 sums are all-gathered, concatenated
    in rank order and combined in the kernels' order (`combine_partial_sums`, as one
    process combines its blocks). When every rank but the last holds a multiple of 512
    neurons (the kernels' block), those are the very blocks one process would make on the
    whole batch, so the result is bit-identical to it; otherwise the sums are regrouped and
    may differ from it by float64 rounding.

    CUDA x: the statistics are computed by the same CPU step kernels on a host copy of x (one
    device-to-host copy per call; the results are the CPU's, which the CUDA adaptive kernel
    equals bit for bit), and returned on x's device. The collectives run on x's device when
    the backend takes its tensors (gloo: CPU and CUDA; nccl: CUDA only), else on one it takes
    (CPU x under nccl: the current CUDA device)."""
    import torch.distributed as dist

    if x.device.type not in ("cpu", "cuda"):
        raise NotImplementedError(
            f"sync_stats=True (the data-parallel DS-ATGO statistics) has no kernel for device "
            f"{x.device.type!r}; CPU and CUDA tensors are supported")
    if not (dist.is_available() and dist.is_initialized()):
        raise RuntimeError("sync_stats=True needs the default torch.distributed process group: "
                           "call torch.distributed.init_process_group first (or use "
                           "sync_stats=False in a single process)")
    device = x.device
    comm = _collective_device(device, _default_backend_config())
    xs = x.detach().cpu().contiguous().numpy()   # CUDA: the one host copy of x
    T, N = xs.shape
    dtype = xs.dtype
    counts_t = [torch.zeros(1, dtype=torch.int64, device=comm)
                for _ in range(dist.get_world_size())]
    dist.all_gather(counts_t, torch.tensor([N], dtype=torch.int64).to(comm))
    neuron_counts = [int(c) for c in torch.cat(counts_t).cpu().tolist()]
    block_counts = [-(-n // BLOCK) for n in neuron_counts]
    N_total = sum(neuron_counts)
    if N_total < 2:
        raise ValueError(f"ATGO training needs at least 2 neurons in the whole batch (the "
                         f"std divides by N - 1), got N = {N_total}")
    v = np.zeros(N, dtype=dtype)
    h = np.empty(N, dtype=dtype)
    o = np.empty(N, dtype=dtype)
    theta, p = np.empty(T, dtype=dtype), np.empty(T, dtype=dtype)
    mean, std = np.empty(T), np.empty(T)
    for t in range(T):
        local = _core.adaptive_charge_step(xs[t], v, h, float(decay), float(v_reset),
                                           charge=charge)
        total = combine_partial_sums(
            _gather_block_sums(local, block_counts, comm))
        local = _core.adaptive_deviation_step(h, total / N_total)  # layer_mean's division
        squared = combine_partial_sums(
            _gather_block_sums(local, block_counts, comm))
        theta[t], p[t], mean[t], std[t] = _core.adaptive_step_values(
            total, squared, N_total, t, float(decay), dtype, threshold_mode=threshold_mode,
            f_c=f_c, v_th=v_th, tgo=tgo, tgo_driver=tgo_driver, width=width)
        _core.adaptive_fire_step(h, v, o, float(theta[t]), float(v_reset), reset=reset)
    return tuple(torch.from_numpy(a).to(device) for a in (theta, p, mean, std))
