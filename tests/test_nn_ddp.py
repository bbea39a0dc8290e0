"""Data parallel MP-Init: TrLIF(sync_stats=True) on 2 CPU processes (gloo, 127.0.0.1 only)
gives bit for bit what one process gives on the whole batch: the same outputs and the same
running mean after every training window, with an uneven split of the batch (3 + 2)."""

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


def test_two_processes_equal_one_process(tmp_path):
    context = mp.spawn(_worker, args=(_free_port(), str(tmp_path)), nprocs=2, join=False)
    deadline = time.monotonic() + TIME_LIMIT_S
    while not context.join(timeout=1):
        if time.monotonic() > deadline:
            for process in context.processes:
                process.kill()
            pytest.fail(f"the 2-process run did not finish in {TIME_LIMIT_S} s")

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
