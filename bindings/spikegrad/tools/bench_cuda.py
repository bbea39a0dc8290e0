"""`spikegrad bench --device cuda`: the bench table on a GPU (docs/cuda.md, docs/performance.md).

    spikegrad bench --device cuda                     # T = 8, N in {2^16, 2^20, 2^24}, ~1-2 min
    spikegrad bench --device cuda --json r.json
    spikegrad bench --device cuda --profile           # torch.profiler: kernels vs host time

The same neuron, methods and floor as `spikegrad bench` (bench.py), on CUDA tensors, float32.

Timing. A GPU call returns before its kernels finish, so every measurement lies between two
torch.cuda.synchronize(). One call between two synchronizations measures the launch latency
plus one synchronization, which at small N is most of it and is not what a training loop sees
(it queues call after call and synchronizes rarely). So each case is timed in batches: after
one warm-up call (compilation, the caching allocator) and three single synchronized calls
(their median is the `1-call ms` column and `single_call_s` in the JSON), the number of calls
per batch is chosen so that a batch runs for at least TARGET_BATCH_S (20 ms; at most
MAX_CALLS calls), then `repeat` batches of that many calls run back to back between two
synchronizations each: the per-call time of a batch is its time divided by its calls, and a
row's time is the median over the batches. The same is done for every method, and for the
copy that sets the floor: dst.copy_(src) of a [T, N] float32 array (4 B read + 4 B written per
element), measured in the same run at the same size. The floor of a case is the method's
bytes (8 per element and step forward, 20 forward + backward) at that copy bandwidth.

Methods (all: LIF `mul` charge, lam = 0.2, threshold 1, hard reset to 0, rect surrogate of
width 1, unless stated):
  spikegrad             spikegrad.neuron (the fused CUDA kernels, through the torch op)
  loop                  the seed papers' per-timestep PyTorch loop (bench.make_loop)
  compile               torch.compile of that loop, default mode, dynamic=False: one graph per
                        (N, grad mode), the fastest code torch.compile makes for each case. The
                        compiled function is reused across sizes (each new N recompiles, 6
                        compilations for 3 sizes x 2 modes, each in its warm-up call, which the
                        JSON records as warmup_s); mark_dynamic would compile twice instead of six
                        times, but a dynamic-shape kernel is not the strongest opponent.
  spikingjelly-triton   SpikingJelly 2.0's multi-step LIFNode, its Triton kernels
  spikingjelly-cuda     the same, its native CUDA kernels (only when SpikingJelly was built from
                        source with them; the PyPI wheel has none, so this row is skipped)
  spikingjelly-torch    the same, its PyTorch reference loop (not timed by default)
                        SpikingJelly 2.0 has no CuPy backend. Its neuron is the same up to two
                        differences it cannot express: the charge is decay_input=False with
                        tau = 1 / (1 - lam) (h = v - v / tau + x, the `mul` charge up to rounding)
                        and the surrogate is PiecewiseQuadratic(alpha = 2 / width), a triangle on
                        the rect's support |z| < width / 2 with the same area (SpikingJelly's
                        kernels have no rect); a memory-bound kernel's speed does not depend on
                        the surrogate's shape. The goals compare spikegrad with the fastest of
                        the SpikingJelly GPU backends that ran (triton, cuda).
  spikegrad-ATGO        the spikegrad.nn.ATGO layer in training mode (adaptive threshold)
  spikegrad-CF          the spikegrad.nn.CF layer (multi-level, TSG, K = 2)
A method that fails to import, build or run is recorded in the JSON's meta.skipped (and
printed) and the run goes on. SIGTERM (e.g. from `timeout`) stops the run after the case in
progress is abandoned; the table and JSON of the cases measured so far are still written.

The goals (goals_cuda; float32, T = 8): at N = 2^16, 2^20 and 2^24, forward and
forward + backward of spikegrad each faster than torch.compile of the loop and faster than
the fastest SpikingJelly GPU backend; at N = 2^24, forward + backward within 1.25x of the
20-byte floor, the forward within 1.15x of its 8-byte floor, spikegrad-ATGO and spikegrad-CF
forward + backward within 2x of their floors. A goal whose rows are missing is NOT met.

--profile runs torch.profiler over PROFILE_CALLS forward + backward calls of spikegrad at
N = 2^16 and 2^24 (or --N) and prints, per call, the self CUDA time of each kernel, the top
host-side operations by self CPU time, and the wall time of a batch of calls without the
profiler: where the host overhead goes at small N.
"""

from __future__ import annotations

import math
import os
import platform
import signal
import statistics
import sys
import time
from dataclasses import dataclass

from . import bench

GPU_T = (8,)
GPU_N = (2 ** 16, 2 ** 20, 2 ** 24)
SJ_BACKENDS = {"spikingjelly-triton": "triton", "spikingjelly-cuda": "cuda",
               "spikingjelly-torch": "torch"}
SJ_GPU_METHODS = ("spikingjelly-triton", "spikingjelly-cuda")   # compared in the goals
GPU_METHODS = ("spikegrad", "loop", "compile", "spikingjelly-triton", "spikingjelly-cuda",
               "spikegrad-ATGO", "spikegrad-CF")
ALL_GPU_METHODS = GPU_METHODS + ("spikingjelly-torch",)
GOAL_T = 8
GOAL_SPEED_N = (2 ** 16, 2 ** 20, 2 ** 24)
GOAL_N = 2 ** 24
FLOOR_LIMITS = (  # (mode, method, limit on x floor) at T = 8, N = 2^24
    (bench.FORWARD_BACKWARD, "spikegrad", 1.25), (bench.FORWARD, "spikegrad", 1.15),
    (bench.FORWARD_BACKWARD, "spikegrad-ATGO", 2.0), (bench.FORWARD_BACKWARD, "spikegrad-CF", 2.0))

TARGET_BATCH_S = 0.02   # a timed batch of calls runs at least this long
MAX_CALLS = 5000        # ... with at most this many calls
SINGLE_CALLS = 3        # single synchronized calls, before the batches
PROFILE_N = (2 ** 16, 2 ** 24)
PROFILE_CALLS = 20


@dataclass
class CudaRow(bench.Row):
    calls_per_batch: int = 1     # calls between two synchronizations in each timed batch
    single_call_s: float = 0.0   # median of single calls, each between two synchronizations
    warmup_s: float = 0.0        # the first call (torch.compile / Triton compilation included)


class BenchInterrupted(BaseException):
    """SIGTERM during the run (BaseException: the per-method `except Exception` lets it pass)."""


def _synchronizer(device: str):
    torch = bench._torch()
    if device == "cuda":
        return torch.cuda.synchronize
    return lambda: None


def time_batches(fn, repeat: int, sync, *, target_s: float = TARGET_BATCH_S,
                 max_calls: int = MAX_CALLS):
    """Time fn in batches between two sync() calls (module docstring).

    Returns (per-call times of the `repeat` batches, calls per batch, median single-call time,
    warm-up time), in seconds."""
    clock = time.perf_counter
    sync()
    start = clock()
    fn()
    sync()
    warmup = clock() - start
    singles = []
    for _ in range(SINGLE_CALLS):
        sync()
        start = clock()
        fn()
        sync()
        singles.append(clock() - start)
    single = statistics.median(singles)

    def batch(calls):
        sync()
        start = clock()
        for _ in range(calls):
            fn()
        sync()
        return (clock() - start) / calls

    calls = max(1, min(max_calls, math.ceil(target_s / max(single, 1e-9))))
    if calls > 1:   # a single call overstates a call's time in a batch: calibrate on one batch
        per_call = batch(calls)
        calls = max(1, min(max_calls, math.ceil(target_s / max(per_call, 1e-9))))
    times = [batch(calls) for _ in range(repeat)]
    return times, calls, single, warmup


def copy_bandwidth_cuda(T: int, N: int, repeat: int, device: str = "cuda") -> float:
    """Bytes per second of dst.copy_(src) for [T, N] float32 (read 4 B + write 4 B)."""
    torch = bench._torch()
    src = torch.randn(T, N, device=device)
    dst = torch.empty_like(src)
    times, *_ = time_batches(lambda: dst.copy_(src), max(repeat, 3), _synchronizer(device))
    return 8 * T * N / statistics.median(times)


def _inputs(T: int, N: int, device: str, seed: int = 0):
    """bench._inputs's distribution (mean 0.5, unit spread), drawn on the device."""
    torch = bench._torch()
    generator = torch.Generator(device=device).manual_seed(seed)
    x = torch.randn(T, N, generator=generator, device=device) + 0.5
    grad = torch.randn(T, N, generator=generator, device=device)
    return x, grad


# ---------------------------------------------------------------------------------------
# SpikingJelly 2.0
# ---------------------------------------------------------------------------------------

SJ_NEURON = dict(
    charge="decay_input=False, tau = 1 / (1 - lam): h = v - v / tau + x (mul up to rounding)",
    surrogate="PiecewiseQuadratic(alpha = 2 / width): triangle on |z| < width / 2, area 1 "
              "(SpikingJelly's kernels have no rect)",
    reset="hard, v_reset = 0, detach_reset=False")


def make_spikingjelly_cuda(backend: str, device: str = "cuda"):
    """SpikingJelly 2.0's multi-step LIFNode with the bench's neuron (see SJ_NEURON), forced to
    one backend: "triton", "cuda" (native kernels) or "torch" (its PyTorch reference).

    SpikingJelly 2.0 picks the implementation per operator once per device, from the
    environment variable SJ_LIF_CUDA_IMPLEMENTATION read at import ("auto": cuda, then triton,
    then torch) into spikingjelly._ops.lif._selection, and caches the choice. Each call here
    sets that request to `backend` (clearing the cache when it changes), so that several
    backends can be timed in one process; a requested backend that cannot run raises instead
    of falling back. The first call checks that the backend asked for is the one that ran."""
    if backend not in SJ_BACKENDS.values():
        raise ValueError(f"unknown SpikingJelly backend {backend!r}")
    from spikingjelly.activation_based import neuron, surrogate
    from spikingjelly._ops import lif as sj_lif

    if device != "cuda" and backend != "torch":
        raise RuntimeError(f"SpikingJelly's {backend} backend runs on CUDA tensors only")

    selection = sj_lif._selection
    for name in ("_requested", "_selections", "_compiled_selections"):
        if not hasattr(selection, name):
            raise RuntimeError(f"SpikingJelly's backend selection has no {name} (not 2.0?)")
    node = neuron.LIFNode(tau=1.0 / (1.0 - bench.DECAY), decay_input=False,
                          v_threshold=bench.THRESHOLD, v_reset=bench.V_RESET,
                          surrogate_function=surrogate.PiecewiseQuadratic(alpha=2.0 / bench.WIDTH),
                          detach_reset=False, step_mode="m")
    checked = []

    def lif(x):
        if selection._requested != backend:
            selection._requested = backend
            selection._selections.clear()
            selection._compiled_selections.clear()
        node.reset()
        out = node(x)
        if not checked and x.is_cuda:
            ran = selection.diagnostics(x.device)["implementation"]
            if ran != backend:
                raise RuntimeError(f"SpikingJelly ran {ran!r}, not {backend!r}")
            checked.append(True)
        return out
    return lif


def _spikingjelly_version():
    try:
        from importlib.metadata import version
        return version("spikingjelly")
    except Exception:   # noqa: BLE001 - not installed, or no metadata
        return None


# ---------------------------------------------------------------------------------------
# The run
# ---------------------------------------------------------------------------------------

def _factories(methods, device: str = "cuda", compile_mode=None):
    """name -> factory(T) -> fn(x); unknown methods and methods that cannot be built land in
    the returned `skipped` (name -> why), never raise."""
    torch = bench._torch()
    factories, skipped = {}, {}
    for name in methods:
        try:
            if name == "spikegrad":
                fused = bench.make_spikegrad()
                factories[name] = lambda T, fused=fused: fused
            elif name == "loop":
                loop = bench.make_loop()
                factories[name] = lambda T, loop=loop: loop
            elif name == "compile":
                loop, compiled = bench.make_loop(), {}

                def factory(T, loop=loop, compiled=compiled):
                    if T not in compiled:
                        compiled[T] = torch.compile(loop, dynamic=False, mode=compile_mode)
                    return compiled[T]
                factories[name] = factory
            elif name in SJ_BACKENDS:
                made = make_spikingjelly_cuda(SJ_BACKENDS[name], device)
                factories[name] = lambda T, made=made: made
            elif name == "spikegrad-ATGO":
                factories[name] = lambda T: bench.make_atgo(T).to(device)
            elif name == "spikegrad-CF":
                factories[name] = lambda T: bench.make_cf(T).to(device)
            else:
                skipped[name] = f"unknown method (choose from {', '.join(ALL_GPU_METHODS)})"
        except Exception as error:   # noqa: BLE001 - e.g. SpikingJelly not installed
            skipped[name] = f"{type(error).__name__}: {error}"
    return factories, skipped


def _on_sigterm(signum, frame):
    raise BenchInterrupted(f"signal {signum}")


def run_bench_cuda(*, Ts=GPU_T, Ns=GPU_N, modes=(bench.FORWARD, bench.FORWARD_BACKWARD),
                   methods=GPU_METHODS, repeat: int = 10, progress: bool = True,
                   device: str = "cuda") -> bench.Report:
    """Time every method at every (T, N, mode) on `device` ("cpu" only to test this code
    without a GPU). Raises ValueError when there is no usable GPU."""
    torch = bench._torch()
    bench.check_run_arguments(Ts, Ns, repeat, modes)
    if device == "cuda":
        if not torch.cuda.is_available():
            raise ValueError("--device cuda: no CUDA GPU is available to this process")
        from ..ops._device import cuda_module
        try:
            cuda_module()
        except NotImplementedError as error:
            raise ValueError(str(error)) from error
    sync = _synchronizer(device)
    factories, skipped = _factories(methods, device)
    if "compile" in factories:
        bench._raise_recompile_limit(torch, 2 * len(Ts) * len(Ns) * len(modes))
    meta = dict(
        device=device,
        gpu=torch.cuda.get_device_name() if device == "cuda" else f"none ({device})",
        allocator="torch's CUDA caching allocator" if device == "cuda" else "torch's CPU allocator",
        glibc_tunables="", torch_threads=torch.get_num_threads(), openmp_threads="n/a (GPU)",
        torch_version=torch.__version__, cuda_version=torch.version.cuda,
        spikingjelly_version=_spikingjelly_version(),
        machine=platform.machine(), cpu_count=os.cpu_count(), load_average=None,
        repeat=repeat, skipped=skipped, dtype="float32",
        timing=(f"median over {repeat} batches of calls between two synchronizations, each "
                f"batch >= {TARGET_BATCH_S * 1e3:g} ms (at most {MAX_CALLS} calls); "
                f"single_call_s: one call between two synchronizations"),
        neuron=dict(charge="mul", decay=bench.DECAY, threshold=bench.THRESHOLD, reset="hard",
                    v_reset=bench.V_RESET, surrogate="rect", sg_param=bench.WIDTH),
        spikingjelly_neuron=SJ_NEURON,
        compile=dict(mode="default", dynamic=False),
        floor_bytes=bench.FLOOR_BYTES)
    bar = bench.Progress(len(Ts) * len(Ns) * (1 + len(modes) * len(factories)), progress)
    rows, copy_bw = [], {}
    start = time.perf_counter()
    previous = None
    if threading_is_main():
        previous = signal.signal(signal.SIGTERM, _on_sigterm)
    try:
        for T in Ts:
            for N in Ns:
                bandwidth = copy_bandwidth_cuda(T, N, repeat, device)
                copy_bw[f"{T},{N}"] = bandwidth / 1e9
                bar.step(f"copy T={T} N=2^{math.log2(N):g}")
                x, grad = _inputs(T, N, device)
                for mode in modes:
                    floor = bench.FLOOR_BYTES[mode] * T * N / bandwidth
                    for name, factory in factories.items():
                        try:
                            times, calls, single, warmup = time_batches(
                                bench._runner(factory(T), x, grad, mode), repeat, sync)
                        except Exception as error:   # noqa: BLE001 - keep going
                            skipped[f"{name} {mode} T={T} N={N}"] = \
                                f"{type(error).__name__}: {str(error)[:300]}"
                            bar.step(f"{name} failed")
                            continue
                        seconds = statistics.median(times)
                        rows.append(CudaRow(mode, T, N, name, seconds, floor,
                                            bench.FLOOR_BYTES[mode] * T * N / seconds / 1e9,
                                            seconds / floor, times, calls, single, warmup))
                        bar.step(f"{name} {mode} T={T} N=2^{math.log2(N):g}")
                del x, grad
                if device == "cuda":
                    torch.cuda.empty_cache()
    except BenchInterrupted as why:
        meta["interrupted"] = (f"stopped by {why} after {time.perf_counter() - start:.0f} s; "
                               f"the cases measured so far are shown")
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)
    bar.close()
    meta["elapsed_s"] = time.perf_counter() - start
    report = bench.Report(rows, copy_bw, meta)
    meta["goals"] = evaluate_goals_cuda(report)
    return report


def threading_is_main() -> bool:
    import threading
    return threading.current_thread() is threading.main_thread()


# ---------------------------------------------------------------------------------------
# The table and the goals
# ---------------------------------------------------------------------------------------

def _fastest(rows: dict, names):
    present = [rows[n] for n in names if n in rows]
    return min(present, key=lambda r: r.time_s) if present else None


def format_table_cuda(report: bench.Report) -> str:
    meta = report.meta
    lines = [f"device: {meta.get('gpu')} (CUDA {meta.get('cuda_version')}, torch "
             f"{meta.get('torch_version')}, SpikingJelly {meta.get('spikingjelly_version')})",
             f"timing: {meta.get('timing')}"]
    grouped = {}   # one line per (method, reason), not one per case
    for case, why in meta.get("skipped", {}).items():
        grouped.setdefault((case.split(" ")[0], why), []).append(case)
    for (method, why), cases in grouped.items():
        where = f"{len(cases)} cases, " if len(cases) > 1 else ""
        what = cases[0] if len(cases) == 1 else method
        lines.append(f"skipped: {what} ({where}{why[:200]})")
    if meta.get("interrupted"):
        lines.append(f"INTERRUPTED: {meta['interrupted']}")
    header = (f"{'mode':<17}{'T':>3}{'N':>6}  {'method':<20}{'time ms':>9}{'1-call ms':>10}"
              f"{'GB/s':>8}{'x floor':>8}{'copy GB/s':>10}{'vs loop':>8}{'vs compile':>11}"
              f"{'vs SJ':>7}")
    lines += [header, "-" * len(header)]
    by_case = {}
    for row in report.rows:
        by_case.setdefault((row.mode, row.T, row.N), {})[row.method] = row
    for (mode, T, N), rows in by_case.items():
        loop, compiled = rows.get("loop"), rows.get("compile")
        sj = _fastest(rows, SJ_GPU_METHODS)
        for method, row in rows.items():
            def versus(other):
                return (f"{other.time_s / row.time_s:.2f}x"
                        if other is not None and other is not row else "")
            single = getattr(row, "single_call_s", 0.0)
            lines.append(f"{mode:<17}{T:>3}{bench._n_label(N):>6}  {method:<20}"
                         f"{row.time_s * 1e3:>9.3f}{single * 1e3:>10.3f}{row.gb_per_s:>8.0f}"
                         f"{row.x_floor:>8.2f}{report.copy_gb_per_s.get(f'{T},{N}', 0.0):>10.0f}"
                         f"{versus(loop):>8}{versus(compiled):>11}"
                         f"{versus(sj) if method not in SJ_BACKENDS else '':>7}")
    lines.append("time: per call in batches (module docstring); 1-call: one call between two "
                 "synchronizations; GB/s: the floor's bytes (8 forward, 20 forward+backward per "
                 "element and step) per second; x floor: time / (floor bytes / copy bandwidth); "
                 "vs: how many times faster than the loop / torch.compile / the fastest "
                 "SpikingJelly GPU backend")
    return "\n".join(lines)


def evaluate_goals_cuda(report: bench.Report) -> list:
    """The GPU performance goals (docs/cuda.md) as dicts {goal, met, value}; a goal whose rows are missing is
    not met (value None)."""
    rows = {(r.mode, r.N, r.method): r for r in report.rows if r.T == GOAL_T}
    goals = []

    def add(goal, met, value, detail):
        goals.append(dict(goal=goal, met=bool(met), value=value, detail=detail))

    for N in GOAL_SPEED_N:
        for mode in (bench.FORWARD, bench.FORWARD_BACKWARD):
            ours = rows.get((mode, N, "spikegrad"))
            label = f"N = {bench._n_label(N)}: spikegrad {mode} faster than"
            compiled = rows.get((mode, N, "compile"))
            if ours and compiled:
                speedup = compiled.time_s / ours.time_s
                add(f"{label} torch.compile", speedup > 1, speedup,
                    f"{speedup:.2f}x ({ours.time_s * 1e3:.3f} vs {compiled.time_s * 1e3:.3f} ms)")
            else:
                add(f"{label} torch.compile", False, None, "not measured")
            sj = _fastest({m: rows[(mode, N, m)] for m in SJ_GPU_METHODS
                           if (mode, N, m) in rows}, SJ_GPU_METHODS)
            if ours and sj:
                speedup = sj.time_s / ours.time_s
                add(f"{label} SpikingJelly", speedup > 1, speedup,
                    f"{speedup:.2f}x than {sj.method} ({ours.time_s * 1e3:.3f} vs "
                    f"{sj.time_s * 1e3:.3f} ms)")
            else:
                add(f"{label} SpikingJelly", False, None, "not measured")
    for mode, method, limit in FLOOR_LIMITS:
        row = rows.get((mode, GOAL_N, method))
        goal = (f"N = {bench._n_label(GOAL_N)}: {method} {mode} within {limit:g}x of the "
                f"{bench.FLOOR_BYTES[mode]}-byte floor")
        if row:
            add(goal, row.x_floor <= limit, row.x_floor,
                f"{row.x_floor:.2f}x ({100 / row.x_floor:.0f} % of the copy bandwidth)")
        else:
            add(goal, False, None, "not measured")
    return goals


def goals_cuda(report: bench.Report) -> list:
    """One [met] / [NOT met] line per GPU goal (T = 8, float32)."""
    goals = evaluate_goals_cuda(report)
    met = sum(g["met"] for g in goals)
    lines = [f"GPU goals (T = {GOAL_T}, float32, {report.meta.get('gpu')}): {met} of "
             f"{len(goals)} met"]
    for g in goals:
        lines.append(f"  [{'met' if g['met'] else 'NOT met'}] {g['goal']}: {g['detail']}")
    return lines


# ---------------------------------------------------------------------------------------
# --profile: where the time of one forward + backward goes
# ---------------------------------------------------------------------------------------

def _device_time(event, self_time: bool = True) -> float:
    names = (("self_device_time_total", "self_cuda_time_total") if self_time
             else ("device_time_total", "cuda_time_total"))
    for name in names:
        value = getattr(event, name, None)
        if value is not None:
            return float(value)
    return 0.0


def _short(name: str, width: int = 88) -> str:
    return name if len(name) <= width else name[:width - 3] + "..."


def profile_cuda(*, Ns=PROFILE_N, T: int = 8, calls: int = PROFILE_CALLS, device: str = "cuda",
                 top: int = 12) -> str:
    """torch.profiler over `calls` forward + backward calls of spikegrad per N: per call, the
    self CUDA time of each kernel, the top host operations by self CPU time, the wall time of
    the calls (with and without the profiler). Any failure is printed, never raised."""
    lines = []
    try:
        torch = bench._torch()
        from torch.profiler import ProfilerActivity, profile
        sync = _synchronizer(device)
        activities = [ProfilerActivity.CPU]
        if device == "cuda":
            activities.append(ProfilerActivity.CUDA)
            lines.append(f"device: {torch.cuda.get_device_name()} (torch {torch.__version__})")
    except Exception as error:   # noqa: BLE001
        return f"profile: {type(error).__name__}: {error}"
    for N in Ns:
        try:
            x, grad = _inputs(T, N, device)
            run = bench._runner(bench.make_spikegrad(), x, grad, bench.FORWARD_BACKWARD)
            for _ in range(3):
                run()
            sync()
            start = time.perf_counter()
            for _ in range(calls):
                run()
            sync()
            wall = (time.perf_counter() - start) / calls
            with profile(activities=activities) as prof:
                for _ in range(calls):
                    run()
                sync()
            profiled_wall = None
            averages = list(prof.key_averages())
            cuda_type = getattr(getattr(torch.autograd, "DeviceType", None), "CUDA", None)
            kernels = [e for e in averages
                       if cuda_type is not None and getattr(e, "device_type", None) == cuda_type]
            if not kernels:   # older/newer event layouts: device time and no CPU time
                kernels = [e for e in averages
                           if _device_time(e) > 0 and not e.self_cpu_time_total]
            host = [e for e in averages if all(e is not k for k in kernels)]
            kernel_us = sum(_device_time(e) for e in kernels) / calls
            host_us = sum(e.self_cpu_time_total for e in host) / calls
            try:
                trace_events = prof.events()
                if trace_events:
                    first = min(e.time_range.start for e in trace_events)
                    last = max(e.time_range.end for e in trace_events)
                    profiled_wall = (last - first) / calls
            except Exception:   # noqa: BLE001
                profiled_wall = None
            lines.append(
                f"N = {bench._n_label(N)}, T = {T}, spikegrad forward+backward, {calls} calls: "
                f"wall {wall * 1e3:.3f} ms/call (batched, no profiler); GPU kernels "
                f"{kernel_us / 1e3:.3f} ms/call ({100 * kernel_us / 1e6 / wall:.0f} % of the "
                f"wall); host self CPU {host_us / 1e3:.3f} ms/call"
                + (f"; profiled span {profiled_wall / 1e3:.3f} ms/call" if profiled_wall else ""))
            lines.append(f"  {'ms/call':>9} {'calls/call':>10}  GPU kernel (self CUDA time)")
            for event in sorted(kernels, key=_device_time, reverse=True)[:top]:
                lines.append(f"  {_device_time(event) / calls / 1e3:>9.4f} "
                             f"{event.count / calls:>10.1f}  {_short(event.key)}")
            if not kernels:
                lines.append("  (no CUDA kernels recorded)")
            lines.append(f"  {'ms/call':>9} {'calls/call':>10}  host operation (self CPU time)")
            for event in sorted(host, key=lambda e: e.self_cpu_time_total, reverse=True)[:top]:
                lines.append(f"  {event.self_cpu_time_total / calls / 1e3:>9.4f} "
                             f"{event.count / calls:>10.1f}  {_short(event.key)}")
            del x, grad, run
        except Exception as error:   # noqa: BLE001 - print and go on
            lines.append(f"N = {bench._n_label(N)}: profile failed: {type(error).__name__}: "
                         f"{str(error)[:500]}")
    return "\n".join(lines)


# ---------------------------------------------------------------------------------------
# The command
# ---------------------------------------------------------------------------------------

def cmd_bench_cuda(args) -> int:
    torch = bench._torch()
    if getattr(args, "profile", False):
        if not torch.cuda.is_available():
            print("spikegrad bench: --profile: no CUDA GPU is available to this process",
                  file=sys.stderr)
            return 2
        Ns = tuple(args.N) if args.N else PROFILE_N
        T = args.T[0] if args.T else 8
        print(profile_cuda(Ns=Ns, T=T))
        return 0
    Ts = tuple(args.T) if args.T else GPU_T
    Ns = tuple(args.N) if args.N else GPU_N
    repeat = args.repeat if args.repeat is not None else (3 if args.quick else 10)
    methods = tuple(args.methods) if args.methods else GPU_METHODS
    try:
        report = run_bench_cuda(Ts=Ts, Ns=Ns, modes=tuple(args.modes), methods=methods,
                                repeat=repeat, progress=not args.no_progress)
    except ValueError as error:
        print(f"spikegrad bench: {error}", file=sys.stderr)
        return 2
    print(format_table_cuda(report))
    print("\n".join(goals_cuda(report)))
    if args.json:
        import json
        with open(args.json, "w") as handle:
            json.dump(bench.to_json(report), handle, indent=1)
        print(f"wrote {args.json}")
    return 0
