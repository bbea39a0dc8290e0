"""`spikegrad bench --device cuda`: the bench table on a GPU (docs/cuda.md, docs/performance.md).

The same methods and floor as `spikegrad bench` (bench.py), on CUDA tensors: each timed call
is bracketed by torch.cuda.synchronize(), the bandwidth reference is a device-to-device copy of
a [T, N] float32 array (read 4 B + write 4 B per element), and the floor is the method's bytes
(8 forward, 20 forward+backward per element and step) at that copy bandwidth. The issue's GPU
goals, at T = 8, N = 2^24, float32: the fused forward+backward at >= 80 % of the copy
bandwidth (<= 1.25x the floor) and faster than torch.compile of the PyTorch loop.
"""

from __future__ import annotations

import math
import os
import platform
import statistics
import time

from . import bench

GPU_T = (8,)
GPU_N = (2 ** 20, 2 ** 24)
GPU_METHODS = ("spikegrad", "loop", "compile", "spikegrad-ATGO", "spikegrad-CF")
GOAL_T, GOAL_N = 8, 2 ** 24


def median_time_cuda(fn, repeat: int) -> list:
    """bench.median_time with the GPU drained before and after every call."""
    torch = bench._torch()

    def timed():
        torch.cuda.synchronize()
        start = time.perf_counter()
        fn()
        torch.cuda.synchronize()
        return time.perf_counter() - start

    timed()   # warm-up (compilation, the caching allocator)
    times = []
    while len(times) < repeat or (sum(times) < bench.MIN_TOTAL_S and len(times) < bench.MAX_REPEAT):
        times.append(timed())
    return times


def copy_bandwidth_cuda(T: int, N: int, repeat: int) -> float:
    """Bytes per second of dst.copy_(src) for [T, N] float32 on the GPU."""
    torch = bench._torch()
    src = torch.randn(T, N, device="cuda")
    dst = torch.empty_like(src)
    seconds = statistics.median(median_time_cuda(lambda: dst.copy_(src), max(repeat, 3)))
    return 8 * T * N / seconds


def _factories(methods, compile_mode=None):
    torch = bench._torch()
    factories, skipped = {}, {}
    for name in methods:
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
        elif name == "spikegrad-ATGO":
            factories[name] = lambda T: bench.make_atgo(T).to("cuda")
        elif name == "spikegrad-CF":
            factories[name] = lambda T: bench.make_cf(T).to("cuda")
        else:
            skipped[name] = "not timed on CUDA"
    return factories, skipped


def run_bench_cuda(*, Ts=GPU_T, Ns=GPU_N, modes=(bench.FORWARD, bench.FORWARD_BACKWARD),
                   methods=GPU_METHODS, repeat: int = 5, progress: bool = True) -> bench.Report:
    torch = bench._torch()
    if not torch.cuda.is_available():
        raise ValueError("--device cuda: no CUDA GPU is available to this process")
    from ._cuda_ops import cuda_module
    try:
        cuda_module()
    except NotImplementedError as error:
        raise ValueError(str(error)) from error
    factories, skipped = _factories(methods)
    if "compile" in factories:
        bench._raise_recompile_limit(torch, 2 * len(Ts) * len(Ns) * len(modes))
    meta = dict(
        device="cuda", gpu=torch.cuda.get_device_name(), allocator="torch's CUDA caching allocator",
        glibc_tunables="", torch_threads=torch.get_num_threads(), openmp_threads="n/a (GPU)",
        torch_version=torch.__version__, cuda_version=torch.version.cuda,
        machine=platform.machine(), cpu_count=os.cpu_count(), load_average=None,
        repeat=repeat, skipped=skipped, dtype="float32",
        neuron=dict(charge="mul", decay=bench.DECAY, threshold=bench.THRESHOLD, reset="hard",
                    v_reset=bench.V_RESET, surrogate="rect", sg_param=bench.WIDTH),
        floor_bytes=bench.FLOOR_BYTES)
    bar = bench.Progress(len(Ts) * len(Ns) * (1 + len(modes) * len(factories)), progress)
    rows, copy_bw = [], {}
    start = time.perf_counter()
    for T in Ts:
        for N in Ns:
            bandwidth = copy_bandwidth_cuda(T, N, repeat)
            copy_bw[f"{T},{N}"] = bandwidth / 1e9
            bar.step(f"copy T={T} N=2^{math.log2(N):g}")
            x, grad = (t.to("cuda") for t in bench._inputs(T, N))
            for mode in modes:
                floor = bench.FLOOR_BYTES[mode] * T * N / bandwidth
                for name, factory in factories.items():
                    try:
                        times = median_time_cuda(bench._runner(factory(T), x, grad, mode), repeat)
                    except Exception as error:   # e.g. torch.compile without triton: keep going
                        skipped[f"{name} {mode} T={T} N={N}"] = f"{type(error).__name__}: {error}"
                        bar.step(f"{name} failed")
                        continue
                    seconds = statistics.median(times)
                    rows.append(bench.Row(mode, T, N, name, seconds, floor,
                                          bench.FLOOR_BYTES[mode] * T * N / seconds / 1e9,
                                          seconds / floor, times))
                    bar.step(f"{name} {mode} T={T} N=2^{math.log2(N):g}")
            del x, grad
            torch.cuda.empty_cache()
    bar.close()
    meta["elapsed_s"] = time.perf_counter() - start
    return bench.Report(rows, copy_bw, meta)


def goals_cuda(report: bench.Report) -> list:
    rows = {(r.mode, r.method): r for r in report.rows if r.T == GOAL_T and r.N == GOAL_N}
    if not rows:
        return ["GPU goals: not evaluated (they are stated at T = 8, N = 2^24)"]
    lines = [f"GPU goals at T = 8, N = 2^24 ({report.meta.get('gpu')}):"]
    fb = rows.get((bench.FORWARD_BACKWARD, "spikegrad"))
    if fb:
        ok = fb.x_floor <= 1.25
        lines.append(f"  [{'met' if ok else 'NOT met'}] spikegrad forward+backward at >= 80 % of "
                     f"the copy bandwidth (<= 1.25x the floor): {fb.x_floor:.2f}x "
                     f"({100 / fb.x_floor:.0f} %)")
        compiled = rows.get((bench.FORWARD_BACKWARD, "compile"))
        if compiled:
            speedup = compiled.time_s / fb.time_s
            lines.append(f"  [{'met' if speedup > 1 else 'NOT met'}] faster than torch.compile "
                         f"of the loop: {speedup:.2f}x")
    return lines


def cmd_bench_cuda(args) -> int:
    import sys
    Ts = tuple(args.T) if args.T else GPU_T
    Ns = tuple(args.N) if args.N else GPU_N
    repeat = args.repeat if args.repeat is not None else (3 if args.quick else 10)
    methods = tuple(m for m in args.methods if m in GPU_METHODS)
    try:
        report = run_bench_cuda(Ts=Ts, Ns=Ns, modes=tuple(args.modes), methods=methods,
                                repeat=repeat, progress=not args.no_progress)
    except ValueError as error:
        print(f"spikegrad bench: {error}", file=sys.stderr)
        return 2
    print(f"device: {report.meta['gpu']} (CUDA {report.meta['cuda_version']}, torch "
          f"{report.meta['torch_version']})")
    print(bench.format_table(report))
    print("\n".join(goals_cuda(report)))
    if args.json:
        import json
        with open(args.json, "w") as handle:
            json.dump(bench.to_json(report), handle, indent=1)
        print(f"wrote {args.json}")
    return 0
