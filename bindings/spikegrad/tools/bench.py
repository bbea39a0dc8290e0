"""`spikegrad bench`: how fast the fused kernels are, against the memory-bandwidth floor and
against the PyTorch loops the seed papers use, measured side by side in one run.

    spikegrad bench                 # T in {4, 8, 16} x N in {2^16, 2^20, 2^22}, a few minutes
    spikegrad bench --quick         # T = 8, N in {2^16, 2^20}: under a minute
    spikegrad bench --json r.json --plot r.png
    spikegrad bench --variants      # spikegrad alone, every single-level variant, T = 8, N = 2^22

The floor. A neuron layer is memory-bound: per element and timestep, in float32, the forward
must read x and write the output (8 bytes); a fused forward + backward must also read x again,
read the upstream gradient and write grad_x (12 bytes more, 20 in all), recomputing the
membrane instead of saving it. The floor of a case is those bytes divided by the bandwidth of
a plain copy of a [T, N] float32 array (`dst.copy_(src)`, 8 bytes per element) measured in
the same run, at the same size, so that caches help the floor exactly as much as they help
the methods. Every time is the median of --repeat runs after one warm-up run.

Methods (all LIF `mul`, lam = 0.2, threshold 1, hard reset to 0, rect surrogate of width 1):
  spikegrad          spikegrad.neuron (the fused C++ kernel, through the torch op)
  loop               the per-timestep PyTorch loop of the seed papers, with the rect
                     surrogate as a torch.autograd.Function
  compile            torch.compile of that loop
  spikingjelly       SpikingJelly's LIFNode (multi-step, torch backend, tau = 1 / lam, its own
                     decay_input charge and sigmoid surrogate), if it is installed
  spikegrad-ATGO     the spikegrad.nn.ATGO layer in training mode (adaptive threshold)
  spikegrad-CF       the spikegrad.nn.CF layer (multi-level, TSG, K = 2); its membrane is made
                     only on request (CF(keep_membrane=True), or reading layer.membrane)

Page faults: a fresh output tensor costs page faults unless glibc keeps freed memory mapped;
the table is printed with the allocator setting in force. To exclude page faults, run with
GLIBC_TUNABLES=glibc.malloc.mmap_max=0:glibc.malloc.trim_threshold=68719476736.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import statistics
import sys
import time
from dataclasses import asdict, dataclass, field
from typing import Callable, Optional

FORWARD = "forward"
FORWARD_BACKWARD = "forward+backward"
FLOOR_BYTES = {FORWARD: 8, FORWARD_BACKWARD: 20}   # float32 bytes per element and timestep
NO_PAGE_FAULTS = "glibc.malloc.mmap_max=0:glibc.malloc.trim_threshold=68719476736"
FULL_T = (4, 8, 16)
FULL_N = (2 ** 16, 2 ** 20, 2 ** 22)
QUICK_T = (8,)
QUICK_N = (2 ** 16, 2 ** 20)
METHODS = ("spikegrad", "loop", "compile", "spikingjelly", "spikegrad-ATGO", "spikegrad-CF")

# The LIF benchmarked (docs/spec.md §1-5): h = lam v + x, s = H(h - theta), v = h (1 - s) + v_reset s
DECAY, THRESHOLD, V_RESET, WIDTH = 0.2, 1.0, 0.0, 1.0


@dataclass
class Row:
    mode: str            # "forward" (under torch.no_grad) or "forward+backward"
    T: int
    N: int
    method: str
    time_s: float        # median of the repetitions
    floor_s: float       # FLOOR_BYTES[mode] * T * N / copy bandwidth at this size
    gb_per_s: float      # FLOOR_BYTES[mode] * T * N / time_s / 1e9: the floor's bytes per second
    x_floor: float       # time_s / floor_s
    times_s: list = field(default_factory=list)   # every repetition


@dataclass
class Report:
    rows: list
    copy_gb_per_s: dict          # "T,N" -> copy bandwidth of a [T, N] float32 array, GB/s
    meta: dict


# ---------------------------------------------------------------------------------------
# The PyTorch loop of the seed papers (and SpikingJelly's LIFNode when it is installed)
# ---------------------------------------------------------------------------------------

def _torch():
    import torch
    return torch


def make_rect_spike():
    """H(z) forward, the rect surrogate f'(z) = 1(|z| < w/2) / w backward (docs/spec.md §5)."""
    torch = _torch()

    class RectSpike(torch.autograd.Function):
        @staticmethod
        def forward(ctx, z):
            ctx.save_for_backward(z)
            return (z >= 0).to(z.dtype)

        @staticmethod
        def backward(ctx, grad):
            (z,) = ctx.saved_tensors
            return grad * (z.abs() < WIDTH / 2).to(grad.dtype) / WIDTH

    return RectSpike


def make_loop():
    """The per-timestep loop the seed papers write: charge, fire, hard reset, stack."""
    torch = _torch()
    spike = make_rect_spike().apply

    def lif_loop(x):
        v = torch.full_like(x[0], V_RESET)
        outputs = []
        for t in range(x.shape[0]):
            h = DECAY * v + x[t]                       # docs/spec.md §1, charge "mul"
            s = spike(h - THRESHOLD)                   # docs/spec.md §3, absolute scale
            outputs.append(s)
            v = h * (1 - s) + V_RESET * s              # docs/spec.md §4, hard reset
        return torch.stack(outputs)

    return lif_loop


def make_spikegrad():
    import spikegrad

    def fused(x):
        return spikegrad.neuron(x, charge="mul", decay=DECAY, threshold=THRESHOLD,
                                reset="hard", v_reset=V_RESET, surrogate="rect",
                                sg_param=WIDTH).output
    return fused


def make_spikingjelly():
    """SpikingJelly's multi-step LIFNode with the same neuron, or None if not installed."""
    try:
        from spikingjelly.activation_based import neuron, surrogate
    except ImportError:
        return None
    # SpikingJelly's LIF charges h = v + (x - v) / tau (decay_input with lam = 1 / tau)
    node = neuron.LIFNode(tau=1 / DECAY, v_threshold=THRESHOLD, v_reset=V_RESET,
                          surrogate_function=surrogate.Sigmoid(), step_mode="m")

    def lif(x):
        node.reset()
        return node(x)
    return lif


def make_atgo(T):
    from .. import nn
    layer = nn.ATGO(decay=DECAY, v_th=THRESHOLD, width=WIDTH)
    layer.train()
    return layer


def make_cf(T):
    from .. import nn
    return nn.CF(T=T)


# ---------------------------------------------------------------------------------------
# Timing
# ---------------------------------------------------------------------------------------

MIN_TOTAL_S = 0.25   # cheap cases repeat until they have run this long (at most MAX_REPEAT)
MAX_REPEAT = 50


def median_time(fn: Callable[[], object], repeat: int) -> list:
    """One warm-up call, then at least `repeat` timed calls, more for cheap cases (until
    MIN_TOTAL_S of timed calls or MAX_REPEAT) so that their median is not one scheduling
    hiccup on a shared machine; returns the times in seconds."""
    fn()
    times = []
    while len(times) < repeat or (sum(times) < MIN_TOTAL_S and len(times) < MAX_REPEAT):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return times


def copy_bandwidth(T: int, N: int, repeat: int) -> float:
    """Bytes per second of dst.copy_(src) for [T, N] float32 (read 4 B + write 4 B)."""
    torch = _torch()
    src = torch.randn(T, N)
    dst = torch.empty_like(src)
    seconds = statistics.median(median_time(lambda: dst.copy_(src), max(repeat, 3)))
    return 8 * T * N / seconds


def _inputs(T: int, N: int, seed: int = 0):
    torch = _torch()
    generator = torch.Generator().manual_seed(seed)
    # mean 0.5, unit spread: about a third of the neurons fire at each step
    x = torch.randn(T, N, generator=generator) + 0.5
    grad = torch.randn(T, N, generator=generator)
    return x, grad


def _runner(fn, x, grad, mode):
    torch = _torch()
    if mode == FORWARD:
        def run():
            with torch.no_grad():
                fn(x)
        return run
    leaf = x.clone().requires_grad_(True)

    def run():
        leaf.grad = None
        fn(leaf).backward(grad)
    return run


def _raise_recompile_limit(torch, needed: int):
    """Every (T, N, grad mode) is a new graph of the same Python function (dynamic=False);
    past torch._dynamo's recompile limit (8) torch.compile silently runs the loop eagerly,
    which would time the loop twice."""
    config = torch._dynamo.config
    for name in ("recompile_limit", "cache_size_limit"):
        if hasattr(config, name) and getattr(config, name) < needed:
            setattr(config, name, needed)


def _describe_allocator() -> str:
    tunables = os.environ.get("GLIBC_TUNABLES", "")
    if "glibc.malloc.mmap_max=0" in tunables:
        return (f"GLIBC_TUNABLES={tunables}: freed memory stays mapped, page faults on fresh "
                f"tensors are excluded")
    shown = f"GLIBC_TUNABLES={tunables}" if tunables else "GLIBC_TUNABLES unset"
    return (f"{shown}: the default allocator, every method pays page faults on its fresh "
            f"output tensors (set GLIBC_TUNABLES={NO_PAGE_FAULTS} to exclude them)")


class Progress:
    """A plain-text progress bar on stderr (tqdm is not a dependency)."""

    def __init__(self, total: int, enabled: bool = True, width: int = 30):
        self.total, self.done, self.enabled, self.width = max(total, 1), 0, enabled, width
        self.start = time.perf_counter()

    def step(self, label: str):
        self.done += 1
        if not self.enabled:
            return
        filled = self.width * self.done // self.total
        elapsed = time.perf_counter() - self.start
        sys.stderr.write(f"\r[{'#' * filled}{'.' * (self.width - filled)}] "
                         f"{self.done}/{self.total} {elapsed:5.0f} s  {label:<48}")
        sys.stderr.flush()

    def close(self):
        if self.enabled:
            sys.stderr.write("\n")
            sys.stderr.flush()


def _method_factories(methods, compile_mode):
    """name -> factory(T) returning fn(x) -> output, for the methods that can run here."""
    torch = _torch()
    factories, skipped = {}, {}
    for name in methods:
        if name == "spikegrad":
            fused = make_spikegrad()
            factories[name] = lambda T, fused=fused: fused
        elif name == "loop":
            loop = make_loop()
            factories[name] = lambda T, loop=loop: loop
        elif name == "compile":
            # one compiled function per T (the loop unrolls over T), dynamic=False: one graph
            # per shape, the fastest code torch.compile makes for each case
            loop = make_loop()
            compiled = {}

            def factory(T, loop=loop, compiled=compiled):
                if T not in compiled:
                    compiled[T] = torch.compile(loop, dynamic=False, mode=compile_mode)
                return compiled[T]
            factories[name] = factory
        elif name == "spikingjelly":
            if make_spikingjelly() is None:
                skipped[name] = "not installed"
            else:
                factories[name] = lambda T: make_spikingjelly()
        elif name == "spikegrad-ATGO":
            factories[name] = make_atgo
        elif name == "spikegrad-CF":
            factories[name] = make_cf
        else:
            raise ValueError(f"methods: unknown method {name!r}; choose from {METHODS}")
    return factories, skipped


def _run_meta(repeat: int, **details) -> dict:
    """What a run's JSON records about the machine and the settings (plus `details`)."""
    torch = _torch()
    from .. import _core
    return dict(
        allocator=_describe_allocator(),
        glibc_tunables=os.environ.get("GLIBC_TUNABLES", ""),
        torch_threads=torch.get_num_threads(),
        openmp_threads=_core.openmp_max_threads(),
        torch_version=torch.__version__,
        machine=platform.machine(), cpu_count=os.cpu_count(),
        load_average=list(os.getloadavg()) if hasattr(os, "getloadavg") else None,
        repeat=repeat, dtype="float32", floor_bytes=FLOOR_BYTES, **details)


def _finish_meta(meta: dict, start: float):
    meta["elapsed_s"] = time.perf_counter() - start
    if hasattr(os, "getloadavg"):
        meta["load_average_after"] = list(os.getloadavg())


def check_run_arguments(Ts, Ns, repeat, modes) -> None:
    """The bench's sizes, repeat count and modes (CPU and GPU bench), or ValueError."""
    for name, values in (("T", Ts), ("N", Ns)):
        if not values or any(isinstance(v, bool) or not isinstance(v, int) or v < 1
                             for v in values):
            raise ValueError(f"{name} must be a non-empty list of positive ints, got {values!r}")
    if isinstance(repeat, bool) or not isinstance(repeat, int) or repeat < 1:
        raise ValueError(f"repeat must be an int >= 1, got {repeat!r}")
    for mode in modes:
        if mode not in FLOOR_BYTES:
            raise ValueError(f"modes: unknown mode {mode!r}; choose from {tuple(FLOOR_BYTES)}")


def run_bench(*, Ts=FULL_T, Ns=FULL_N, modes=(FORWARD, FORWARD_BACKWARD), methods=METHODS,
              repeat: int = 5, progress: bool = True, compile_mode: Optional[str] = None
              ) -> Report:
    """Time every method at every (mode, T, N); returns the rows and the copy bandwidths."""
    torch = _torch()
    check_run_arguments(Ts, Ns, repeat, modes)
    factories, skipped = _method_factories(methods, compile_mode)
    if "compile" in factories:
        _raise_recompile_limit(torch, 2 * len(Ts) * len(Ns) * len(modes))
    meta = _run_meta(repeat, skipped=skipped,
                     neuron=dict(charge="mul", decay=DECAY, threshold=THRESHOLD, reset="hard",
                                 v_reset=V_RESET, surrogate="rect", sg_param=WIDTH))
    bar = Progress(len(Ts) * len(Ns) * (1 + len(modes) * len(factories)), progress)
    rows, copy_bw = [], {}
    start = time.perf_counter()
    for T in Ts:
        for N in Ns:
            bandwidth = copy_bandwidth(T, N, repeat)
            copy_bw[f"{T},{N}"] = bandwidth / 1e9
            bar.step(f"copy T={T} N=2^{math.log2(N):g}")
            x, grad = _inputs(T, N)
            for mode in modes:
                floor = FLOOR_BYTES[mode] * T * N / bandwidth
                for name, factory in factories.items():
                    times = median_time(_runner(factory(T), x, grad, mode), repeat)
                    seconds = statistics.median(times)
                    rows.append(Row(mode, T, N, name, seconds, floor,
                                    FLOOR_BYTES[mode] * T * N / seconds / 1e9,
                                    seconds / floor, times))
                    bar.step(f"{name} {mode} T={T} N=2^{math.log2(N):g}")
            del x, grad
    bar.close()
    _finish_meta(meta, start)
    return Report(rows, copy_bw, meta)


# ---------------------------------------------------------------------------------------
# --variants: spikegrad alone over every single-level variant
# ---------------------------------------------------------------------------------------

def neuron_variants(smooth=(False, True)):
    """Every (charge, reset, scale, surrogate, smooth) of spikegrad.neuron, as option dicts."""
    from .._options import CHARGES, RESETS, SCALES, SURROGATES
    return [dict(charge=c, reset=r, scale=sc, surrogate=g, smooth=sm)
            for sm in smooth for c in CHARGES for r in RESETS for sc in SCALES
            for g in SURROGATES]


def variant_label(options: dict) -> str:
    label = f"{options['charge']}/{options['reset']}/{options['scale']}/{options['surrogate']}"
    return label + ("/smooth" if options["smooth"] else "")


def make_variant(options: dict):
    import spikegrad

    def fused(x):
        return spikegrad.neuron(x, decay=DECAY, threshold=THRESHOLD, v_reset=V_RESET,
                                sg_param=WIDTH, **options).output
    return fused


def run_variants(*, T: int = 8, N: int = 2 ** 22, modes=(FORWARD, FORWARD_BACKWARD),
                 repeat: int = 5, progress: bool = True, smooth=(False, True)) -> Report:
    """spikegrad.neuron in every variant at one (T, N), each against the floor: the rows'
    method is the variant's label (charge/reset/scale/surrogate[/smooth])."""
    for name, value in (("T", T), ("N", N), ("repeat", repeat)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{name} must be an int >= 1, got {value!r}")
    variants = neuron_variants(smooth)
    meta = _run_meta(repeat, skipped={}, variants=True,
                     neuron=dict(decay=DECAY, threshold=THRESHOLD, v_reset=V_RESET,
                                 sg_param=WIDTH))
    bar = Progress(1 + len(modes) * len(variants), progress)
    start = time.perf_counter()
    bandwidth = copy_bandwidth(T, N, repeat)
    bar.step(f"copy T={T} N=2^{math.log2(N):g}")
    x, grad = _inputs(T, N)
    rows = []
    for options in variants:
        label = variant_label(options)
        for mode in modes:
            floor = FLOOR_BYTES[mode] * T * N / bandwidth
            times = median_time(_runner(make_variant(options), x, grad, mode), repeat)
            seconds = statistics.median(times)
            rows.append(Row(mode, T, N, label, seconds, floor,
                            FLOOR_BYTES[mode] * T * N / seconds / 1e9, seconds / floor, times))
            bar.step(f"{label} {mode}")
    bar.close()
    _finish_meta(meta, start)
    return Report(rows, {f"{T},{N}": bandwidth / 1e9}, meta)


def format_variants(report: Report) -> str:
    """One line per variant (forward and forward+backward side by side), then the goals over
    the variants outside smooth mode."""
    lines = [f"allocator: {report.meta['allocator']}",
             f"threads: spikegrad (OpenMP) {report.meta['openmp_threads']}; float32; median of "
             f"{report.meta['repeat']} runs; load average before "
             f"{_load(report.meta.get('load_average'))}, after "
             f"{_load(report.meta.get('load_average_after'))}; copy "
             + ", ".join(f"{bw:.1f} GB/s" for bw in report.copy_gb_per_s.values())]
    by_variant = {}
    for row in report.rows:
        by_variant.setdefault(row.method, {})[row.mode] = row
    width = max(len(name) for name in by_variant) if by_variant else 7
    header = f"{'variant':<{width}}"
    modes = [m for m in (FORWARD, FORWARD_BACKWARD) if any(m in r for r in by_variant.values())]
    for mode in modes:
        header += f"{mode + ' ms':>22}{'x floor':>9}"
    lines += [header, "-" * len(header)]
    for name, rows in by_variant.items():
        line = f"{name:<{width}}"
        for mode in modes:
            row = rows.get(mode)
            line += (f"{row.time_s * 1e3:>22.2f}{row.x_floor:>9.2f}" if row
                     else f"{'':>22}{'':>9}")
        lines.append(line)
    lines += variant_goals(report)
    return "\n".join(lines)


def variant_goals(report: Report) -> list:
    """The single-level goals (1.3x forward+backward, 1.2x forward) over every variant
    outside smooth mode; smooth mode's worst case is shown without a verdict."""
    lines = ["goals over the variants (smooth mode, a verification mode whose sigmoid and atan "
             "are scalar library calls, is shown without a verdict):"]
    for mode, limit in ((FORWARD_BACKWARD, 1.3), (FORWARD, 1.2)):
        for smooth in (False, True):
            rows = [r for r in report.rows
                    if r.mode == mode and r.method.endswith("/smooth") == smooth]
            if not rows:
                continue
            worst = max(rows, key=lambda r: r.x_floor)
            within = sum(r.x_floor <= limit for r in rows)
            what = (f"{mode} within {limit}x of the floor: {within} of {len(rows)} variants; "
                    f"worst {worst.x_floor:.2f}x ({worst.method})")
            if smooth:
                lines.append(f"  [smooth] {what}")
            else:
                lines.append(f"  [{'met' if within == len(rows) else 'NOT met'}] {what}")
    return lines


# ---------------------------------------------------------------------------------------
# Output: the table, the goals, JSON, the plot
# ---------------------------------------------------------------------------------------

def _n_label(N: int) -> str:
    exponent = math.log2(N)
    return f"2^{exponent:g}" if exponent == int(exponent) else str(N)


def format_table(report: Report) -> str:
    lines = [f"allocator: {report.meta['allocator']}",
             f"threads: torch {report.meta['torch_threads']}, spikegrad (OpenMP) "
             f"{report.meta['openmp_threads']}; float32; median of {report.meta['repeat']} "
             f"runs; load average before {_load(report.meta.get('load_average'))}, after "
             f"{_load(report.meta.get('load_average_after'))}"]
    for name, why in report.meta["skipped"].items():
        lines.append(f"skipped: {name} ({why})")
    header = (f"{'mode':<17}{'T':>3}{'N':>6}  {'method':<15}{'time ms':>10}{'GB/s':>8}"
              f"{'x floor':>9}{'copy GB/s':>11}{'vs loop':>9}{'vs compile':>11}")
    lines += [header, "-" * len(header)]
    by_case = {}
    for row in report.rows:
        by_case.setdefault((row.mode, row.T, row.N), {})[row.method] = row
    for (mode, T, N), rows in by_case.items():
        for method, row in rows.items():
            loop, compiled = rows.get("loop"), rows.get("compile")
            vs_loop = f"{loop.time_s / row.time_s:.1f}x" if loop and method != "loop" else ""
            vs_compile = (f"{compiled.time_s / row.time_s:.1f}x"
                          if compiled and method != "compile" else "")
            lines.append(f"{mode:<17}{T:>3}{_n_label(N):>6}  {method:<15}"
                         f"{row.time_s * 1e3:>10.2f}{row.gb_per_s:>8.1f}{row.x_floor:>9.2f}"
                         f"{report.copy_gb_per_s[f'{T},{N}']:>11.1f}{vs_loop:>9}"
                         f"{vs_compile:>11}")
    lines.append("GB/s: the floor's bytes (8 forward, 20 forward+backward, per element and "
                 "step) per second; x floor: time / (floor bytes / copy bandwidth); vs: how "
                 "many times faster than the loop / torch.compile of it")
    lines += goals(report)
    return "\n".join(lines)


def _load(values) -> str:
    return "n/a" if not values else ", ".join(f"{v:.1f}" for v in values)


def goals(report: Report, T: int = 8, N: int = 2 ** 22) -> list:
    """The performance goals at T = 8, N = 2^22 (docs/performance.md), where that case was measured."""
    rows = {(r.mode, r.method): r for r in report.rows if r.T == T and r.N == N}
    if not rows:
        return [f"goals: not evaluated (they are stated at T = {T}, N = 2^22)"]
    lines = [f"goals at T = {T}, N = 2^22:"]

    def check(label, ok):
        lines.append(f"  [{'met' if ok else 'NOT met'}] {label}")

    fb, fwd = rows.get((FORWARD_BACKWARD, "spikegrad")), rows.get((FORWARD, "spikegrad"))
    if fb:
        check(f"spikegrad forward+backward within 1.3x of the floor: {fb.x_floor:.2f}x",
              fb.x_floor <= 1.3)
    for layer in ("spikegrad-ATGO", "spikegrad-CF"):
        row = rows.get((FORWARD_BACKWARD, layer))
        if row:
            check(f"{layer} forward+backward within 2x of the floor: {row.x_floor:.2f}x",
                  row.x_floor <= 2)
    if fwd:
        check(f"spikegrad inference forward within 1.2x of its floor: {fwd.x_floor:.2f}x",
              fwd.x_floor <= 1.2)
    for other, factor in (("compile", 2), ("loop", 10)):
        row = rows.get((FORWARD_BACKWARD, other))
        if fb and row:
            speedup = row.time_s / fb.time_s
            check(f"forward+backward at least {factor}x faster than {other}: {speedup:.1f}x",
                  speedup >= factor)
    return lines


def to_json(report: Report) -> dict:
    return dict(meta=report.meta, copy_gb_per_s=report.copy_gb_per_s,
                rows=[asdict(row) for row in report.rows])


def check_plot_available():
    try:
        import matplotlib  # noqa: F401
    except ImportError as error:
        raise RuntimeError("--plot needs matplotlib, which is not installed "
                           "(pip install matplotlib)") from error


def plot(report: Report, path: str):
    """time against N per method, one panel per (mode, T), log-log."""
    check_plot_available()
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    modes = sorted({r.mode for r in report.rows}, key=list(FLOOR_BYTES).index)
    Ts = sorted({r.T for r in report.rows})
    figure, axes = plt.subplots(len(modes), len(Ts), squeeze=False,
                                figsize=(4.5 * len(Ts), 3.8 * len(modes)))
    for i, mode in enumerate(modes):
        for j, T in enumerate(Ts):
            ax = axes[i][j]
            rows = [r for r in report.rows if r.mode == mode and r.T == T]
            for method in dict.fromkeys(r.method for r in rows):
                points = sorted((r.N, r.time_s * 1e3) for r in rows if r.method == method)
                ax.plot(*zip(*points), marker="o", label=method)
            floor = sorted({(r.N, r.floor_s * 1e3) for r in rows})
            ax.plot(*zip(*floor), linestyle="--", color="black", label="floor")
            ax.set_xscale("log", base=2)
            ax.set_yscale("log")
            ax.set_title(f"{mode}, T = {T}")
            ax.set_xlabel("N (neurons)")
            ax.set_ylabel("time (ms)")
            ax.grid(True, which="both", alpha=0.3)
    axes[0][0].legend(fontsize="small")
    figure.suptitle(f"spikegrad bench (float32; {report.meta['glibc_tunables'] or 'default allocator'})",
                    fontsize="small")
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)


# ---------------------------------------------------------------------------------------
# The command
# ---------------------------------------------------------------------------------------

def add_arguments(parser: argparse.ArgumentParser):
    parser.add_argument("--quick", action="store_true",
                        help="T = 8, N in {2^16, 2^20}, 3 runs each: under a minute")
    parser.add_argument("--T", type=int, nargs="+", metavar="T",
                        help="timesteps (default 4 8 16)")
    parser.add_argument("--N", type=int, nargs="+", metavar="N",
                        help="neurons (default 65536 1048576 4194304)")
    from .bench_cuda import ALL_GPU_METHODS
    parser.add_argument("--methods", nargs="+",
                        choices=tuple(dict.fromkeys(METHODS + ALL_GPU_METHODS)),
                        help="methods to time (default: all of the device's; spikingjelly only "
                             "if installed; spikingjelly-triton/-cuda/-torch with --device cuda)")
    parser.add_argument("--modes", nargs="+", choices=tuple(FLOOR_BYTES),
                        default=list(FLOOR_BYTES), help="forward and/or forward+backward")
    parser.add_argument("--repeat", type=int, help="timed runs per case (default 5, quick 3)")
    parser.add_argument("--threads", type=int,
                        help="torch.set_num_threads for the PyTorch methods (default: leave "
                             "torch's setting; spikegrad's own kernels use OpenMP's, "
                             "OMP_NUM_THREADS)")
    parser.add_argument("--json", metavar="PATH", help="also write the results as JSON")
    parser.add_argument("--plot", metavar="PATH",
                        help="also draw time against N per method as a PNG (needs matplotlib)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.add_argument("--variants", action="store_true",
                        help="time spikegrad alone in every single-level variant (charge x "
                             "reset x scale x surrogate, smooth off and on) at one T and N "
                             "(the first of --T / --N; default T = 8, N = 2^22), a few minutes")
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cpu",
                        help="cpu (default) or cuda: the table on a GPU (bench_cuda.py)")
    parser.add_argument("--profile", action="store_true",
                        help="with --device cuda: torch.profiler of spikegrad's forward+backward "
                             "(kernels vs host time per call) at N = 2^16, 2^24 (or --N)")


def cmd_bench(args) -> int:
    if args.plot:
        try:
            check_plot_available()
        except RuntimeError as error:
            print(f"spikegrad bench: {error}", file=sys.stderr)
            return 2
    try:
        _torch()
    except ModuleNotFoundError:
        print("spikegrad bench: needs PyTorch (pip install 'spikegrad[torch]')", file=sys.stderr)
        return 2
    if getattr(args, "device", "cpu") == "cuda":
        if getattr(args, "variants", False):
            print("spikegrad bench: --variants times the CPU kernels only", file=sys.stderr)
            return 2
        from .bench_cuda import cmd_bench_cuda
        return cmd_bench_cuda(args)
    if getattr(args, "profile", False):
        print("spikegrad bench: --profile needs --device cuda", file=sys.stderr)
        return 2
    if args.threads is not None:
        if args.threads < 1:
            print("spikegrad bench: --threads must be >= 1", file=sys.stderr)
            return 2
        _torch().set_num_threads(args.threads)
    repeat = args.repeat if args.repeat is not None else (3 if args.quick else 5)
    if args.variants:
        if args.plot:
            print("spikegrad bench: --plot draws time against N, and --variants times one N",
                  file=sys.stderr)
            return 2
        T = args.T[0] if args.T else 8
        N = args.N[0] if args.N else (2 ** 20 if args.quick else 2 ** 22)
        run, show = (lambda: run_variants(T=T, N=N, modes=tuple(args.modes), repeat=repeat,
                                          progress=not args.no_progress)), format_variants
    else:
        Ts = tuple(args.T) if args.T else (QUICK_T if args.quick else FULL_T)
        Ns = tuple(args.N) if args.N else (QUICK_N if args.quick else FULL_N)
        run, show = (lambda: run_bench(Ts=Ts, Ns=Ns, modes=tuple(args.modes),
                                       methods=tuple(args.methods or METHODS), repeat=repeat,
                                       progress=not args.no_progress)), format_table
    try:
        report = run()
    except ValueError as error:
        print(f"spikegrad bench: {error}", file=sys.stderr)
        return 2
    print(show(report))
    if args.json:
        with open(args.json, "w") as handle:
            json.dump(to_json(report), handle, indent=1)
        print(f"wrote {args.json}")
    if args.plot:
        plot(report, args.plot)
        print(f"wrote {args.plot}")
    return 0
