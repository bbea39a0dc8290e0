"""Data parallel MP-Init: TrLIF(sync_stats=True) on 2 CPU processes (gloo, 127.0.0.1 only)
gives bit for bit what one process gives on the whole batch: the same outputs and the same
running mean after every training window, with an uneven split of the batch (3 + 2).

Data parallel DS-ATGO on CUDA: ATGO(sync_stats=True) in 2 processes sharing one GPU (gloo,
whose collectives take CUDA tensors) gives bit for bit what ATGO on the whole batch gives in
one process on the GPU, when each rank holds whole 512-neuron blocks (the CPU variant, and
the unaligned split, are in test_atgo.py). Skipped without a GPU."""

import datetime
import os
import socket
import time

import numpy as np
import pytest

torch = pytest.importorskip("torch")
dist = pytest.importorskip("torch.distributed")
mp = pytest.importorskip("torch.multiprocessing")

from spikegrad import nn as snn  # noqa: E402

T, B, F = 4, 5, 33
SPLIT = (slice(0, 3), slice(3, 5))
WINDOWS = 3
TIME_LIMIT_S = 120


def _inputs(window):
    rng = np.random.default_rng(100 + window)
    return torch.from_numpy(rng.normal(0.8, 1.5, (T, B, F)).astype(np.float32))


def _run(layer, part):
    """Training windows over the batch part; returns the outputs and running means."""
    outputs, means = [], []
    for window in range(WINDOWS):
        out = layer(_inputs(window)[:, part])
        out.sum().backward()
        outputs.append(out.detach().numpy())
        means.append(layer.running_mean.item())
    return np.stack(outputs), np.array(means)


def _worker(rank, port, folder):
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank,
                            world_size=2, timeout=datetime.timedelta(seconds=60))
    try:
        torch.set_num_threads(1)
        outputs, means = _run(snn.TrLIF(sync_stats=True), SPLIT[rank])
        np.savez(f"{folder}/rank{rank}.npz", outputs=outputs, means=means)
        dist.barrier()
    except BaseException:
        dist.destroy_process_group()
        raise
    # Done: leave without the interpreter's teardown, where gloo's background threads
    # sometimes abort the child ("terminate called without an active exception").
    os._exit(0)


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _run_two_processes(worker, tmp_path, what):
    """worker(rank, port, folder) in 2 spawned processes, killed past TIME_LIMIT_S."""
    context = mp.start_processes(worker, args=(_free_port(), str(tmp_path)), nprocs=2,
                                 join=False, start_method="spawn")
    deadline = time.monotonic() + TIME_LIMIT_S
    while not context.join(timeout=1):
        if time.monotonic() > deadline:
            for process in context.processes:
                process.kill()
            pytest.fail(f"the {what} did not finish in {TIME_LIMIT_S} s")


def test_two_processes_equal_one_process(tmp_path):
    _run_two_processes(_worker, tmp_path, "2-process run")

    outputs, means = _run(snn.TrLIF(), slice(0, B))         # one process, whole batch
    ranks = [np.load(tmp_path / f"rank{r}.npz") for r in range(2)]
    for r in ranks:
        assert r["means"].tolist() == means.tolist()          # bit for bit, every window
    assert means[-1] != 0.0
    joined = np.concatenate([ranks[0]["outputs"], ranks[1]["outputs"]], axis=2)
    assert np.array_equal(joined, outputs)


def test_sync_stats_without_a_process_group_is_one_process():
    assert not dist.is_initialized()
    a, b = snn.TrLIF(sync_stats=True), snn.TrLIF()
    for window in range(2):
        x = _inputs(window)
        assert torch.equal(a(x), b(x))
        assert a.running_mean.item() == b.running_mean.item()


# --------------------------------------------------------------------------------------
# DS-ATGO(sync_stats=True) on CUDA: 2 gloo processes sharing cuda:0 against one process
# --------------------------------------------------------------------------------------

ATGO_T = 4
ATGO_WINDOWS = 2
# (batch, features): 2 x 512 neurons per rank (whole blocks: bit for bit), or 3 x 77 per rank
# (the blocks regroup: the ranks agree, and the statistics are within float64 rounding)
ATGO_CONFIGS = [(4, 512), (6, 77)]
needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")


def _atgo_case(window, batch, features):
    """(x, upstream gradient), [T, batch, features] float32 on the CPU, the same in every
    process."""
    rng = np.random.default_rng(1000 * window + batch * features)
    x = rng.normal(0.4, 0.8, (ATGO_T, batch, features)).astype(np.float32)
    g = rng.normal(0.0, 1.0, (ATGO_T, batch, features)).astype(np.float32)
    return torch.from_numpy(x), torch.from_numpy(g)


def _atgo_run(layer, batch, features, part, device):
    """Training windows (forward + backward) of `layer` on the batch part; every result as
    a CPU tensor, stacked over the windows."""
    layer.record_diagnostics = True
    rows = {name: [] for name in ("out", "grad_x", "running", "threshold", "grad_w")}
    for window in range(ATGO_WINDOWS):
        x_all, g_all = _atgo_case(window, batch, features)
        x = x_all[:, part].to(device=device, copy=True).contiguous().requires_grad_()
        g = g_all[:, part].to(device=device, copy=True).contiguous()
        layer.w.grad = None                        # per-window parameter gradient
        out = layer(x)
        out.backward(g)
        rows["out"].append(out.detach().cpu())
        rows["grad_x"].append(x.grad.detach().cpu())
        rows["running"].append(layer.running_threshold.detach().cpu().clone())
        rows["threshold"].append(layer.diagnostics["threshold"].detach().cpu())
        rows["grad_w"].append(layer.w.grad.detach().cpu().reshape(()))
    return {name: torch.stack(values) for name, values in rows.items()}


def _atgo_cuda_worker(rank, port, folder):
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank,
                            world_size=2, timeout=datetime.timedelta(seconds=60))
    try:
        torch.set_num_threads(1)
        torch.cuda.set_device(0)
        from spikegrad.ops import adaptive_ops
        from spikegrad.nn import ATGO

        # gloo takes CUDA tensors: the block sums travel on the GPU (the path under test)
        config = adaptive_ops._default_backend_config()
        assert adaptive_ops._collective_device(torch.device("cuda", 0), config).type == "cuda"

        results = {}
        for batch, features in ATGO_CONFIGS:
            share = batch // 2
            layer = ATGO(learn_decay=True, sync_stats=True).cuda()
            results[f"{batch}-{features}"] = _atgo_run(
                layer, batch, features, slice(rank * share, (rank + 1) * share), "cuda")
        torch.save(results, f"{folder}/atgo-cuda-rank{rank}.pt")
        dist.barrier()
    except BaseException:
        dist.destroy_process_group()
        raise
    os._exit(0)   # as _worker: no interpreter teardown with gloo's threads alive


@needs_cuda
def test_atgo_sync_stats_on_cuda_two_processes_equal_one_process(tmp_path):
    from spikegrad.nn import ATGO
    from spikegrad.testing.compare import assert_close

    _run_two_processes(_atgo_cuda_worker, tmp_path, "2-process CUDA run")
    ranks = [torch.load(tmp_path / f"atgo-cuda-rank{r}.pt") for r in range(2)]

    for batch, features in ATGO_CONFIGS:
        key = f"{batch}-{features}"
        r0, r1 = ranks[0][key], ranks[1][key]
        one = _atgo_run(ATGO(learn_decay=True).cuda(), batch, features, slice(0, batch),
                        "cuda")
        # the ranks share the thresholds whatever the split
        assert torch.equal(r0["threshold"], r1["threshold"]), key
        assert torch.equal(r0["running"], r1["running"]), key
        if (batch // 2) * features % 512 == 0:     # whole blocks per rank: the same sums
            assert torch.equal(r0["threshold"], one["threshold"]), key
            assert torch.equal(r0["running"], one["running"]), key
            # [window, T, batch, features]: the ranks' shares side by side on the batch axis
            assert torch.equal(torch.cat([r0["out"], r1["out"]], 2), one["out"]), key
            assert torch.equal(torch.cat([r0["grad_x"], r1["grad_x"]], 2), one["grad_x"]), key
            assert one["out"].sum() > 0                # the case fires
            # DDP would sum the ranks' parameter gradients: two roundings of their terms
            for window in range(ATGO_WINDOWS):
                grads = [r["grad_w"][window].item() for r in (r0, r1)]
                assert_close(sum(grads), one["grad_w"][window].item(), f"{key} grad w",
                             dtype=np.float32, T=ATGO_T, magnitude=sum(abs(g) for g in grads))
        else:                                       # regrouped float64 sums: their rounding
            assert_close(r0["threshold"].numpy(), one["threshold"].numpy(), f"{key} threshold",
                         dtype=np.float32, T=0)


def test_sync_stats_collectives_run_where_the_backend_takes_tensors():
    """The block sums travel on x's device when the backend takes its tensors (gloo: CPU and
    CUDA; nccl: CUDA only), else on one it takes. No GPU needed: only devices are named."""
    from spikegrad.ops.adaptive_ops import _collective_device as where

    cpu, gpu = torch.device("cpu"), torch.device("cuda", 1)
    assert where(cpu, "cpu:gloo,cuda:gloo") == cpu
    assert where(gpu, "cpu:gloo,cuda:gloo") == gpu
    assert where(gpu, "gloo") == gpu
    assert where(gpu, "cuda:nccl") == gpu
    assert where(gpu, "nccl") == gpu
    assert where(cpu, "cuda:nccl") == torch.device("cuda")     # the current CUDA device
    assert where(gpu, "cpu:gloo") == cpu
    with pytest.raises(RuntimeError, match="takes neither"):
        where(cpu, "xpu:xccl")
