"""Golden vectors for the C++ tests, made by the NumPy reference (spikegrad.ref).

    pip install --no-build-isolation . && python tools/make_golden.py

writes one file per kernel of <spikegrad/spikegrad.hpp> into cpp/tests/golden/:

    neuron.golden      neuron_forward_cpu / neuron_backward_cpu      spikegrad.ref.forward, backward
    adaptive.golden    adaptive_forward_cpu, then neuron_backward_cpu with the recorded
                       thresholds and widths                         spikegrad.ref.adaptive.forward
    multilevel.golden  multilevel_forward_cpu / multilevel_backward_cpu  spikegrad.ref.multilevel
    pnb.golden         pnb_partial_sums_cpu                          spikegrad.ref.pnb.partial_sums

read by cpp/tests/test_golden.cpp (which needs no Python) and checked against the current
reference by tests/ref/test_golden.py, so a change of pyref/ that the files do not follow fails
the Python suite. The cases are fixed (seeded generators, no hypothesis): every option
value, both dtypes, and the edge cases T = 1, N = 1, inputs exactly at the threshold (or on
a level, or on a region bound), huge and tiny scales, negative inputs, per-step parameters,
non-finite inputs (not for the adaptive threshold: see adaptive_cases), and N crossing a
block boundary (512 neurons for the adaptive and multi-level kernels, 4096 elements for PNB).

File format (text, one record per line, numbers as C99 hexadecimal floats so that every
value round-trips exactly, trailing zero digits dropped; float32 values are written as the
doubles they convert to):

    case <kernel> <index> <float32|float64> <key>=<value> ...   (one line; the options and
                                    the shape, T=<T> N=<N>, or count=<n> for pnb)
    in <name> <n> <n values>        an input of the C++ call (scalars have n = 1; an absent
                                    upstream gradient is None in the reference, nullptr in C++)
    exact <name> <n> <n values>     must be reproduced bit for bit (-0 == 0, NaN == NaN)
    close <name> <n> <n values> <n bounds>
                                    |actual - expected| <= bound, the bound of
                                    spikegrad.testing.compare.tolerance with the magnitudes
                                    of the reference's error_scale; non-finite values exactly
    end

The records of each kernel (arrays [T, N] time-major, parameter gradients float64):

    neuron      in: decay, v_reset, threshold [T], sg_param [T], v_init [N], x, grad_output,
                grad_membrane [T, N], grad_v_last [N]
                exact (close in smooth mode): output, membrane, v_last
                close: grad_x, grad_v_init, grad_decay [1], grad_threshold [T], grad_sg_param [T]
    adaptive    header: charge reset detach_reset threshold_mode tgo tgo_driver
                in: decay, v_reset, f_c, v_th, width (float64), v_init, x, upstream gradients
                exact: output, membrane, v_last, threshold [T], sg_param [T] (k_t: its tanh
                is spikegrad's own portable_tanh), mean [T], std [T] (float64)
                close: grad_x, grad_v_init, grad_decay (the neuron backward with the
                thresholds and widths the kernel recorded; theta and k_t are detached
                statistics, so they have no gradient)
    multilevel  header: surrogate smooth detach_reset k_p k_n
                in: decay, theta_p, theta_n, a [T], v_init, x, upstream gradients
                exact: output, membrane, v_last (also in smooth mode: no transcendental)
                close: grad_x, grad_v_init, grad_decay, grad_a [T] (tsg only: the span
                surrogate's height has no gradient)
    pnb         header: K count;  in: theta_p, theta_n, h [count]
                close: sums [K * 2 * 2] float64, sums[k-1][sign][S_w, S_hw]
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from spikegrad import ref
from spikegrad.testing.compare import smooth_forward_magnitude, tolerance

GOLDEN_DIR = Path(__file__).resolve().parents[1] / "cpp" / "tests" / "golden"
GOLDEN = GOLDEN_DIR / "neuron.golden"
SEED = 20261123
UPSTREAM = ("grad_output", "grad_membrane", "grad_v_last")


@dataclass
class Answer:
    """One expected output: exact when `magnitude` is None, else close within
    compare.tolerance(values, dtype=dtype, T=T, magnitude=magnitude)."""

    values: np.ndarray
    magnitude: object = None
    dtype: type = np.float64
    T: int = 0

    @property
    def bound(self):
        values = np.asarray(self.values, dtype=np.float64)
        return np.broadcast_to(tolerance(values, dtype=self.dtype, T=self.T,
                                         magnitude=self.magnitude), values.shape)


def _quantized(rng, dtype, shape, step, loc=0.0, scale=1.0):
    """Normal draws rounded to multiples of `step` (a power of 2): short in the file, so
    that the cases with N past a block boundary stay small."""
    return (np.round(rng.normal(loc, scale, size=shape) / step) * step).astype(dtype)


def _upstream(rng, dtype, T, N, names=UPSTREAM, step=None):
    """The upstream gradients dL/do [T, N], dL/dh [T, N], dL/dv_last [N] (None if not
    drawn); standard normal, rounded to multiples of `step` if given."""
    draws = {"grad_output": (T, N), "grad_membrane": (T, N), "grad_v_last": (N,)}
    if step is not None:
        return {name: (_quantized(rng, dtype, shape, step) if name in names else None)
                for name, shape in draws.items()}
    return {name: (rng.normal(size=shape).astype(dtype) if name in names else None)
            for name, shape in draws.items()}


# =========================================================================================
# neuron: neuron_forward_cpu / neuron_backward_cpu against spikegrad.ref.forward / backward
# =========================================================================================

@dataclass
class Case:
    """One neuron case: the options, the inputs as the C++ API takes them (per-step vectors,
    an explicit v_init, values already rounded to the dtype) and the upstream gradients."""

    dtype: type
    options: dict
    x: np.ndarray                      # [T, N]
    decay: float
    v_reset: float
    threshold: np.ndarray              # [T]
    sg_param: np.ndarray               # [T]
    v_init: np.ndarray                 # [N]
    upstream: dict = field(default_factory=dict)   # name -> array or None


def _options(charge="mul", reset="hard", scale="absolute", surrogate="rect", smooth=False,
             detach_reset=False):
    return dict(charge=charge, reset=reset, scale=scale, surrogate=surrogate,
                smooth=smooth, detach_reset=detach_reset)


def _make(rng, dtype, options, T, N, *, decay=0.2, v_reset=0.0, threshold=None,
          sg_param=None, v_init=None, x=None, at_threshold=0.25, upstream=UPSTREAM):
    """A case with random inputs; a fraction `at_threshold` of x[0] sits exactly on the
    threshold of step 0 (z = 0 when v_init = 0 and the charge passes x through)."""
    positive = options["scale"] != "absolute"
    if threshold is None:
        threshold = rng.uniform(0.25, 4.0, size=T) if positive else rng.normal(1.0, 1.0, size=T)
    if sg_param is None:
        sg_param = rng.uniform(0.3, 3.0, size=T)
    if v_init is None:
        v_init = np.zeros(N)
    threshold = np.broadcast_to(np.asarray(threshold, dtype=np.float64), (T,)).astype(dtype)
    sg_param = np.broadcast_to(np.asarray(sg_param, dtype=np.float64), (T,)).astype(dtype)
    v_init = np.broadcast_to(np.asarray(v_init, dtype=np.float64), (N,)).astype(dtype)
    if x is None:
        x = rng.normal(0.5, 1.5, size=(T, N)) * np.abs(threshold.astype(np.float64))[:, None]
        x[0, rng.random(N) < at_threshold] = threshold[0]
    x = np.asarray(x, dtype=np.float64).reshape(T, N).astype(dtype)
    grads = _upstream(rng, dtype, T, N, upstream)
    return Case(dtype, options, x, float(dtype(decay)), float(dtype(v_reset)), threshold,
                sg_param, v_init, grads)


def cases():
    """The fixed list of cases: edge cases first, then a sweep over the option values."""
    rng = np.random.default_rng(SEED)
    f32, f64 = np.float32, np.float64
    out = [
        # T = 1, N = 1, the input exactly at the threshold (z = 0: H jumps)
        _make(rng, f32, _options(), 1, 1, threshold=1.0, sg_param=1.0, x=[[1.0]]),
        _make(rng, f64, _options(scale="relative", surrogate="triangle"), 1, 1,
              threshold=1.0, sg_param=1.0, x=[[1.0]]),
        _make(rng, f32, _options(scale="threshold_robust", reset="soft"), 1, 1,
              threshold=0.5, sg_param=1.0, x=[[0.5]], upstream=("grad_output",)),
        # huge and tiny thresholds, inputs on them
        _make(rng, f32, _options(reset="soft"), 3, 4, threshold=1e30, sg_param=1e30,
              x=np.full((3, 4), 1e30) * [[1, -1, 0.5, 2]]),
        _make(rng, f64, _options(scale="relative", surrogate="atan"), 3, 4,
              threshold=1e-30, sg_param=1.0, x=np.full((3, 4), 1e-30) * [[1, -1, 0.5, 2]]),
        _make(rng, f32, _options(scale="threshold_robust", reset="soft", surrogate="sigmoid"),
              2, 3, threshold=1e-3, sg_param=4.0),
        # a negative threshold (absolute scale only), negative inputs, hard reset to v_reset
        _make(rng, f64, _options(charge="decay_input", reset="hard"), 4, 3, threshold=-0.5,
              v_reset=-0.25, v_init=[0.1, -0.7, 0.3]),
        _make(rng, f32, _options(charge="no_decay_input", reset="soft", surrogate="triangle"),
              5, 2, x=-np.abs(rng.normal(size=(5, 2)))),
        # N = 1 over many steps, per-step thresholds and surrogate parameters
        _make(rng, f64, _options(charge="if", reset="none", surrogate="sigmoid"), 9, 1),
        _make(rng, f32, _options(charge="mul", reset="hard", surrogate="atan",
                                 detach_reset=True), 7, 1, decay=0.9),
        # smooth mode (a differentiable forward) with moderate scales
        _make(rng, f64, _options(charge="decay_input", reset="soft", surrogate="sigmoid",
                                 smooth=True), 4, 5, decay=0.5),
        _make(rng, f32, _options(scale="relative", surrogate="rect", smooth=True), 3, 5),
        # non-finite inputs: the NaN/inf must land in the same places
        _make(rng, f64, _options(reset="soft"), 2, 3,
              x=[[np.inf, -np.inf, np.nan], [1.0, 0.5, -2.0]], threshold=1.0),
    ]
    # the sweep: every value of every option appears, in both dtypes
    sweep = [(c, r, s, g) for c in ref.formulas.CHARGES for r in ref.formulas.RESETS
             for s in ref.formulas.SCALES for g in ref.formulas.SURROGATES]
    picks = rng.permutation(len(sweep))[:24]
    for k, index in enumerate(sorted(picks)):
        charge, reset, scale, surrogate = sweep[index]
        options = _options(charge, reset, scale, surrogate, smooth=(k % 6 == 5),
                           detach_reset=(k % 3 == 1))
        dtype = f32 if k % 2 == 0 else f64
        T, N = int(rng.integers(1, 6)), int(rng.integers(1, 7))
        upstream = tuple(name for name in UPSTREAM if rng.random() < 0.7) or ("grad_output",)
        out.append(_make(rng, dtype, options, T, N, decay=rng.uniform(0.0, 1.0),
                         v_reset=rng.choice([0.0, 0.0, -0.5]),
                         v_init=rng.normal(size=N) * 0.5, upstream=upstream))
    return out


def expected(case):
    """The reference's answers for one neuron case: {name: Answer}."""
    T = case.x.shape[0]
    result = ref.forward(case.x, decay=case.decay, threshold=case.threshold,
                         v_reset=case.v_reset, sg_param=case.sg_param, v_init=case.v_init,
                         **case.options)
    answers = {}
    magnitude = smooth_forward_magnitude(result.membrane, result.threshold, result.v_reset)
    for name in ("output", "membrane", "v_last"):
        answers[name] = Answer(getattr(result, name),
                               magnitude if case.options["smooth"] else None, case.dtype, T)
    upstream = [case.upstream[name] for name in UPSTREAM]
    with np.errstate(all="ignore"):
        grads = ref.backward(result, *upstream)
        scale = ref.error_scale(result, *upstream)
    for name in ("x", "v_init", "decay", "threshold", "sg_param"):
        answers["grad_" + name] = Answer(np.atleast_1d(np.asarray(getattr(grads, name))),
                                         np.atleast_1d(np.asarray(getattr(scale, name))),
                                         case.dtype, T)
    return answers


def neuron_header(case):
    o = case.options
    return dict(charge=o["charge"], reset=o["reset"], scale=o["scale"],
                surrogate=o["surrogate"], smooth=int(o["smooth"]),
                detach_reset=int(o["detach_reset"]), T=case.x.shape[0], N=case.x.shape[1])


def neuron_inputs(case):
    inputs = {"decay": [case.decay], "v_reset": [case.v_reset], "threshold": case.threshold,
              "sg_param": case.sg_param, "v_init": case.v_init, "x": case.x}
    inputs.update({k: v for k, v in case.upstream.items() if v is not None})
    return inputs


def _shape(header):
    return int(header["T"]), int(header["N"])


def _read_upstream(inputs, dtype, T, N):
    shapes = {"grad_output": (T, N), "grad_membrane": (T, N), "grad_v_last": (N,)}
    return {name: (inputs[name].astype(dtype).reshape(shape) if name in inputs else None)
            for name, shape in shapes.items()}


def neuron_from_record(header, inputs):
    dtype = np.dtype(header["dtype"]).type
    T, N = _shape(header)
    options = _options(header["charge"], header["reset"], header["scale"],
                       header["surrogate"], header["smooth"] == "1",
                       header["detach_reset"] == "1")
    return Case(dtype, options, inputs["x"].astype(dtype).reshape(T, N),
                float(inputs["decay"][0]), float(inputs["v_reset"][0]),
                inputs["threshold"].astype(dtype), inputs["sg_param"].astype(dtype),
                inputs["v_init"].astype(dtype), _read_upstream(inputs, dtype, T, N))


# =========================================================================================
# adaptive: adaptive_forward_cpu against spikegrad.ref.adaptive.forward; its backward is
# neuron_backward_cpu with the thresholds and widths the forward recorded
# =========================================================================================

@dataclass
class AdaptiveCase:
    dtype: type
    x: np.ndarray                      # [T, N], N >= 2 (the std divides by N - 1)
    v_init: np.ndarray                 # [N]
    decay: float                       # already a value of the dtype
    v_reset: float
    charge: str = "mul"
    reset: str = "hard"
    detach_reset: bool = False
    threshold_mode: str = "true"
    f_c: float = 1.0                   # float64 parameters of AdaptiveParams
    v_th: float = 1.0
    tgo: bool = True
    tgo_driver: str = "std"
    width: float = 1.0
    upstream: dict = field(default_factory=dict)

    def forward(self):
        return ref.adaptive.forward(
            self.x, decay=self.decay, v_th=self.v_th, f_c=self.f_c,
            threshold_mode=self.threshold_mode, tgo=self.tgo, tgo_driver=self.tgo_driver,
            width=self.width, v_init=self.v_init, charge=self.charge, reset=self.reset,
            v_reset=self.v_reset, detach_reset=self.detach_reset)


def _adaptive(rng, dtype, T, N, *, x=None, v_init=None, decay=0.2, v_reset=0.0,
              upstream=UPSTREAM, step=None, **options):
    if x is None:
        x = rng.normal(0.5, 1.0, size=(T, N))
    if v_init is None:
        v_init = np.zeros(N)
    x = np.asarray(x, dtype=np.float64).reshape(T, N).astype(dtype)
    v_init = np.broadcast_to(np.asarray(v_init, dtype=np.float64), (N,)).astype(dtype)
    return AdaptiveCase(dtype, x, v_init, float(dtype(decay)), float(dtype(v_reset)),
                        upstream=_upstream(rng, dtype, T, N, upstream, step), **options)


def adaptive_cases():
    """Edge cases first, then a sweep over charge, reset, detach_reset and the DS-ATGO
    options. Widths stay well above 0: k_t = k0 (1 + tanh(d - V_th)) near 0 is a
    cancellation whose relative error is unbounded, and the backward divides by it."""
    rng = np.random.default_rng(SEED + 1)
    f32, f64 = np.float32, np.float64
    out = [
        # T = 1 and the smallest N (2); the paper's released-code defaults
        _adaptive(rng, f32, 1, 2),
        _adaptive(rng, f64, 1, 2, x=[[1.0, -1.0]], tgo_driver="threshold"),
        # equal inputs: std = 0, theta = mean = h exactly, every neuron fires (z = 0)
        _adaptive(rng, f32, 2, 5, x=np.full((2, 5), 0.25)),
        _adaptive(rng, f64, 1, 3, x=np.full((1, 3), -0.75), reset="soft"),
        # the estimated threshold f_c sqrt(1 + lam^2) V_th = V_th at lam = 0, x exactly on it
        _adaptive(rng, f64, 3, 4, decay=0.0, threshold_mode="estimated", v_th=0.5,
                  x=[[0.5, 0.25, 0.5, 1.0], [0.5, 0.5, -0.5, 0.0], [0.5, 0.75, 0.5, 0.5]]),
        _adaptive(rng, f32, 3, 6, threshold_mode="estimated", f_c=1.5, v_th=0.8,
                  tgo_driver="threshold"),
        # negative inputs (a negative threshold), the paper's driver
        _adaptive(rng, f32, 3, 4, x=-np.abs(rng.normal(1.0, 1.0, (3, 4))),
                  tgo_driver="threshold"),
        # huge and tiny scales (theta follows the data; the widths saturate at 0 or 2 k0)
        _adaptive(rng, f32, 2, 5, x=rng.normal(0.5, 1.0, (2, 5)) * 1e30, tgo=False,
                  width=0.5),
        _adaptive(rng, f64, 2, 5, x=rng.normal(0.5, 1.0, (2, 5)) * 1e-30, v_th=0.25),
        _adaptive(rng, f64, 3, 3, x=rng.normal(0.5, 1.0, (3, 3)) * 1e150, v_th=0.0),
        # v_init and a hard reset to v_reset, no TGO
        _adaptive(rng, f64, 4, 3, v_init=[0.5, -0.25, 1.5], v_reset=-0.5, tgo=False,
                  width=2.0, decay=0.9),
        # N past the block boundary (512 neurons): the statistics add two blocks' sums
        # (values on a grid of 1/16, so that the case stays small in the file)
        _adaptive(rng, f32, 1, 513, x=_quantized(rng, f32, (1, 513), 1 / 16, 0.5),
                  v_init=_quantized(rng, f32, 513, 1 / 16), decay=0.5,
                  upstream=("grad_output", "grad_v_last"), step=1 / 8),
        # No non-finite inputs: a NaN or inf in h[t] makes theta[t] NaN, which the
        # reference's backward propagates (IEEE) but neuron_backward_cpu refuses
        # ("threshold contains NaN"): an open question, not a golden vector.
    ]
    sweep = [(c, r) for c in ref.formulas.CHARGES for r in ref.formulas.RESETS]
    for k, (charge, reset) in enumerate(sweep):
        dtype = f32 if k % 2 == 0 else f64
        T, N = int(rng.integers(1, 6)), int(rng.integers(2, 8))
        upstream = tuple(name for name in UPSTREAM if rng.random() < 0.7) or ("grad_output",)
        out.append(_adaptive(
            rng, dtype, T, N, decay=rng.uniform(0.0, 1.0), v_reset=rng.choice([0.0, -0.5]),
            v_init=rng.normal(size=N) * 0.5, upstream=upstream, charge=charge, reset=reset,
            detach_reset=(k % 3 == 1),
            threshold_mode=("estimated" if k % 4 == 3 else "true"), tgo=(k % 5 != 4),
            tgo_driver=("threshold" if k % 2 == 1 else "std"),
            f_c=float(rng.choice([1.0, 0.5, 1.25])), v_th=float(rng.uniform(0.2, 1.5)),
            width=float(rng.uniform(0.5, 2.0))))
    return out


def adaptive_expected(case):
    """{name: Answer}: the forward bit for bit, k_t included (its tanh is portable_tanh, the
    same bits in the reference and the kernels); the backward within error_scale's bound."""
    T = case.x.shape[0]
    result = case.forward()
    answers = {name: Answer(getattr(result, name), None, case.dtype, T)
               for name in ("output", "membrane", "v_last", "threshold", "sg_param", "mean",
                            "std")}
    upstream = [case.upstream[name] for name in UPSTREAM]
    with np.errstate(all="ignore"):
        grads = ref.backward(result, *upstream)
        scale = ref.error_scale(result, *upstream)
    for name in ("x", "v_init", "decay"):
        answers["grad_" + name] = Answer(np.atleast_1d(np.asarray(getattr(grads, name))),
                                         np.atleast_1d(np.asarray(getattr(scale, name))),
                                         case.dtype, T)
    return answers


def adaptive_header(case):
    return dict(charge=case.charge, reset=case.reset, detach_reset=int(case.detach_reset),
                threshold_mode=case.threshold_mode, tgo=int(case.tgo),
                tgo_driver=case.tgo_driver, T=case.x.shape[0], N=case.x.shape[1])


def adaptive_inputs(case):
    inputs = {"decay": [case.decay], "v_reset": [case.v_reset], "f_c": [case.f_c],
              "v_th": [case.v_th], "width": [case.width], "v_init": case.v_init, "x": case.x}
    inputs.update({k: v for k, v in case.upstream.items() if v is not None})
    return inputs


def adaptive_from_record(header, inputs):
    dtype = np.dtype(header["dtype"]).type
    T, N = _shape(header)
    return AdaptiveCase(
        dtype, inputs["x"].astype(dtype).reshape(T, N), inputs["v_init"].astype(dtype),
        float(inputs["decay"][0]), float(inputs["v_reset"][0]), header["charge"],
        header["reset"], header["detach_reset"] == "1", header["threshold_mode"],
        float(inputs["f_c"][0]), float(inputs["v_th"][0]), header["tgo"] == "1",
        header["tgo_driver"], float(inputs["width"][0]), _read_upstream(inputs, dtype, T, N))


# =========================================================================================
# multilevel: multilevel_forward_cpu / multilevel_backward_cpu against spikegrad.ref.multilevel
# =========================================================================================

@dataclass
class MultilevelCase:
    dtype: type
    x: np.ndarray                      # [T, N]
    v_init: np.ndarray                 # [N]
    decay: float                       # values of the dtype
    theta_p: float
    theta_n: float
    a: np.ndarray                      # [T], as the C++ API takes it
    k_p: int = 2
    k_n: int = 2
    surrogate: str = "tsg"
    smooth: bool = False
    detach_reset: bool = False
    upstream: dict = field(default_factory=dict)

    def forward(self):
        return ref.multilevel.forward(
            self.x, decay=self.decay, theta_p=self.theta_p, theta_n=self.theta_n,
            k_p=self.k_p, k_n=self.k_n, surrogate=self.surrogate, a=self.a,
            detach_reset=self.detach_reset, v_init=self.v_init, smooth=self.smooth)


def _multilevel(rng, dtype, T, N, *, theta_p=1.0, theta_n=1.0, k_p=2, k_n=2, a=None,
                x=None, v_init=None, decay=0.25, at_level=0.25, upstream=UPSTREAM,
                step=None, **options):
    """A case with inputs at the levels' scale; a fraction `at_level` of x exactly on a
    level +-k theta (where the strict comparisons of Eqs. 12-13 matter)."""
    theta_p_dt, theta_n_dt = dtype(theta_p), dtype(theta_n)
    if a is None:
        a = rng.uniform(0.5, 1.0, T) * (1.5 / max(theta_p, theta_n))
    if x is None:
        scale = max(theta_p, theta_n) * max(k_p, k_n)
        x = rng.normal(0.0, scale * 0.7, (T, N)).astype(dtype)
        ks = rng.integers(1, max(k_p, k_n) + 1, (T, N)).astype(dtype)
        levels = np.where(rng.random((T, N)) < 0.5, -(ks * theta_n_dt), ks * theta_p_dt)
        on = rng.random((T, N)) < at_level
        x[on] = levels[on]
    if v_init is None:
        v_init = np.zeros(N)
    x = np.asarray(x, dtype=np.float64).reshape(T, N).astype(dtype)
    v_init = np.broadcast_to(np.asarray(v_init, dtype=np.float64), (N,)).astype(dtype)
    a = np.broadcast_to(np.asarray(a, dtype=np.float64), (T,)).astype(dtype)
    return MultilevelCase(dtype, x, v_init, float(dtype(decay)), float(theta_p_dt),
                          float(theta_n_dt), a, k_p, k_n,
                          upstream=_upstream(rng, dtype, T, N, upstream, step), **options)


def multilevel_cases():
    """Edge cases first, then every (surrogate, smooth, detach_reset, dtype). Smooth cases
    use moderate levels (theta in [0.5, 2], a theta <= 1.5), as the Python tests do."""
    rng = np.random.default_rng(SEED + 2)
    f32, f64 = np.float32, np.float64
    out = [
        # T = 1, N = 1, exactly on the first level: h > theta is strict, no spike
        _multilevel(rng, f32, 1, 1, x=[[1.0]], a=1.0),
        _multilevel(rng, f64, 1, 1, x=[[-1.0]], a=1.0, surrogate="span"),
        # every level and just past it, both signs, K_P != K_N, one step
        _multilevel(rng, f64, 1, 10, k_p=3, k_n=1, theta_p=0.5, theta_n=2.0,
                    x=[[0.5, 1.0, 1.5, 2.0, -2.0, -4.0, 0.0, -0.0, 1.75, -2.5]]),
        _multilevel(rng, f32, 1, 8, k_p=1, k_n=4, theta_p=0.3, theta_n=0.3,
                    x=[[0.3, 0.6, -0.3, -0.6, -0.9, -1.2, -1.5, 0.29]], surrogate="span"),
        # huge and tiny levels, inputs on and around them
        _multilevel(rng, f32, 1, 5, theta_p=1e3, theta_n=1e-3, a=1e-3,
                    x=[[2e3, -2e-3, 1e3, -1e-3, 3e3]]),
        _multilevel(rng, f64, 3, 4, theta_p=1e-3, theta_n=1e3, surrogate="span", a=3.0),
        # negative inputs over many steps on one neuron, per-step a, v_init, decay 1
        _multilevel(rng, f64, 9, 1, x=-np.abs(rng.normal(1.5, 1.0, (9, 1))), decay=1.0,
                    v_init=[0.4]),
        _multilevel(rng, f32, 6, 2, decay=0.0, v_init=[-0.7, 2.5], detach_reset=True),
        # N past the block boundary (512 neurons), on a grid of 1/8 (small in the file)
        _multilevel(rng, f64, 1, 513, x=_quantized(rng, f64, (1, 513), 1 / 8, 0.0, 2.0),
                    a=0.5, decay=0.5, upstream=("grad_output", "grad_v_last"), step=1 / 8),
        # non-finite inputs: NaN crosses no level, inf crosses all of them
        _multilevel(rng, f64, 2, 3, x=[[np.inf, -np.inf, np.nan], [1.5, -0.5, 2.0]]),
        _multilevel(rng, f32, 2, 3, x=[[np.inf, -np.inf, np.nan], [1.5, -0.5, 2.0]],
                    surrogate="span", smooth=True, a=0.5),
    ]
    k = 0
    for surrogate in ref.formulas.LEVEL_SURROGATES:
        for smooth in (False, True):
            for detach_reset in (False, True):
                for dtype in (f32, f64):
                    thetas = (0.5, 1.0, 2.0) if smooth else (0.3, 0.5, 1.0, 2.0)
                    theta_p = float(rng.choice(thetas))
                    theta_n = theta_p if rng.random() < 0.5 else float(rng.choice(thetas))
                    T, N = int(rng.integers(1, 6)), int(rng.integers(1, 7))
                    upstream = (tuple(name for name in UPSTREAM if rng.random() < 0.7)
                                or ("grad_output",))
                    out.append(_multilevel(
                        rng, dtype, T, N, theta_p=theta_p, theta_n=theta_n,
                        k_p=int(rng.integers(1, 5)), k_n=int(rng.integers(1, 5)),
                        decay=rng.uniform(0.0, 1.0), v_init=rng.normal(size=N) * 0.5,
                        upstream=upstream, surrogate=surrogate, smooth=smooth,
                        detach_reset=detach_reset))
                    k += 1
    return out


def multilevel_expected(case):
    """{name: Answer}: the forward bit for bit (also in smooth mode: the level primitives
    use only +, -, *, |.| and clamps), the backward within error_scale's bound."""
    T = case.x.shape[0]
    result = case.forward()
    answers = {name: Answer(getattr(result, name), None, case.dtype, T)
               for name in ("output", "membrane", "v_last")}
    upstream = [case.upstream[name] for name in UPSTREAM]
    with np.errstate(all="ignore"):
        grads = ref.multilevel.backward(result, *upstream)
        scale = ref.multilevel.error_scale(result, *upstream)
    for name in ("x", "v_init", "decay", "a"):
        if getattr(grads, name) is None:        # span: a is a constant height
            continue
        answers["grad_" + name] = Answer(np.atleast_1d(np.asarray(getattr(grads, name))),
                                         np.atleast_1d(np.asarray(getattr(scale, name))),
                                         case.dtype, T)
    return answers


def multilevel_header(case):
    return dict(surrogate=case.surrogate, smooth=int(case.smooth),
                detach_reset=int(case.detach_reset), k_p=case.k_p, k_n=case.k_n,
                T=case.x.shape[0], N=case.x.shape[1])


def multilevel_inputs(case):
    inputs = {"decay": [case.decay], "theta_p": [case.theta_p], "theta_n": [case.theta_n],
              "a": case.a, "v_init": case.v_init, "x": case.x}
    inputs.update({k: v for k, v in case.upstream.items() if v is not None})
    return inputs


def multilevel_from_record(header, inputs):
    dtype = np.dtype(header["dtype"]).type
    T, N = _shape(header)
    return MultilevelCase(
        dtype, inputs["x"].astype(dtype).reshape(T, N), inputs["v_init"].astype(dtype),
        float(inputs["decay"][0]), float(inputs["theta_p"][0]), float(inputs["theta_n"][0]),
        inputs["a"].astype(dtype), int(header["k_p"]), int(header["k_n"]),
        header["surrogate"], header["smooth"] == "1", header["detach_reset"] == "1",
        _read_upstream(inputs, dtype, T, N))


# =========================================================================================
# pnb: pnb_partial_sums_cpu against spikegrad.ref.pnb.partial_sums
# =========================================================================================

@dataclass
class PnbCase:
    dtype: type
    h: np.ndarray                      # [count], the membranes flattened
    theta_p: float                     # values of the dtype
    theta_n: float
    K: int


def _pnb(rng, dtype, count, K, theta_p=1.0, theta_n=1.0, *, h=None, on_bounds=0.3):
    """h at the regions' scale; a fraction `on_bounds` exactly on a bound +-k theta
    (k = 0..K+1: zero, the regions' edges, and one past the last region)."""
    theta_p_dt, theta_n_dt = dtype(theta_p), dtype(theta_n)
    if h is None:
        h = rng.normal(0.0, K * max(theta_p, theta_n), count).astype(dtype)
        ks = rng.integers(0, K + 2, count).astype(dtype)
        bounds = np.where(rng.random(count) < 0.5, ks * theta_p_dt, -(ks * theta_n_dt))
        on = rng.random(count) < on_bounds
        h[on] = bounds[on]
    h = np.asarray(h, dtype=np.float64).reshape(count).astype(dtype)
    return PnbCase(dtype, h, float(theta_p_dt), float(theta_n_dt), K)


def pnb_cases():
    rng = np.random.default_rng(SEED + 3)
    f32, f64 = np.float32, np.float64
    out = [
        # one element, on the first region's top bound (R+_1 is (0, theta], closed at theta)
        _pnb(rng, f32, 1, 1, h=[1.0]),
        _pnb(rng, f64, 1, 2, h=[-1.0]),
        # 0 and +-K theta and past them: 0 and |h| > K theta belong to no region
        _pnb(rng, f64, 9, 2, 0.5, 2.0, h=[0.0, -0.0, 0.5, 1.0, 1.0000001, -2.0, -4.0, -4.5, 0.25]),
        _pnb(rng, f32, 6, 3, 0.3, 0.3, h=[0.3, 0.6, 0.9, -0.3, -0.9, 1.2]),
        # nothing in any region: every sum is 0
        _pnb(rng, f64, 3, 1, h=[0.0, 5.0, -5.0]),
        # huge and tiny thresholds
        _pnb(rng, f32, 40, 2, 1e-3, 1e3),
        _pnb(rng, f64, 40, 4, 1e3, 1e-3),
        # negative membranes only
        _pnb(rng, f32, 30, 3, h=-np.abs(rng.normal(0.0, 2.0, 30))),
        # past the block boundary (4096 elements)
        _pnb(rng, f32, 4100, 2, h=_quantized(rng, f32, 4100, 1 / 8, 0.0, 1.5)),
        # non-finite membranes belong to no region (NaN compares false, +-inf is past K theta)
        _pnb(rng, f64, 6, 2, h=[np.inf, -np.inf, np.nan, 0.5, -1.5, 2.0]),
    ]
    for k, (theta_p, theta_n) in enumerate([(1.0, 1.0), (0.5, 2.0), (0.3, 0.3), (2.0, 0.5)]):
        for dtype in (f32, f64):
            out.append(_pnb(rng, dtype, int(rng.integers(2, 60)), k + 1, theta_p, theta_n))
    return out


def pnb_expected(case):
    """{"sums": Answer}: only exp differs between backends (by its ulps); every term of S_w
    is positive, so the magnitude of S_w is itself and that of S_hw is sum |h| w."""
    with np.errstate(invalid="ignore"):          # inf * 0 outside the regions is discarded
        sums = ref.pnb.partial_sums(case.h, case.theta_p, case.theta_n, case.K)
        magnitude = np.empty_like(sums)
        for k in range(1, case.K + 1):
            for sign, (w, hw) in enumerate(ref.pnb.contributions(case.h, case.theta_p,
                                                                 case.theta_n, k)):
                magnitude[k - 1, sign] = [w.sum(), np.abs(hw).sum()]
    return {"sums": Answer(sums.ravel(), magnitude.ravel(), np.float64, 1)}


def pnb_header(case):
    return dict(K=case.K, count=case.h.size)


def pnb_inputs(case):
    return {"theta_p": [case.theta_p], "theta_n": [case.theta_n], "h": case.h}


def pnb_from_record(header, inputs):
    dtype = np.dtype(header["dtype"]).type
    return PnbCase(dtype, inputs["h"].astype(dtype), float(inputs["theta_p"][0]),
                   float(inputs["theta_n"][0]), int(header["K"]))


# =========================================================================================
# The files
# =========================================================================================

@dataclass(frozen=True)
class Kernel:
    """How one kernel's cases are made, written and read back."""

    name: str
    cases: Callable          # () -> [case]
    expected: Callable       # case -> {name: Answer}
    header: Callable         # case -> {key: value}, the options and shape
    inputs: Callable         # case -> {name: array}
    from_record: Callable    # (header {key: str}, inputs {name: float64 array}) -> case

    @property
    def path(self):
        return GOLDEN_DIR / f"{self.name}.golden"


KERNELS = {
    "neuron": Kernel("neuron", cases, expected, neuron_header, neuron_inputs,
                     neuron_from_record),
    "adaptive": Kernel("adaptive", adaptive_cases, adaptive_expected, adaptive_header,
                       adaptive_inputs, adaptive_from_record),
    "multilevel": Kernel("multilevel", multilevel_cases, multilevel_expected,
                         multilevel_header, multilevel_inputs, multilevel_from_record),
    "pnb": Kernel("pnb", pnb_cases, pnb_expected, pnb_header, pnb_inputs, pnb_from_record),
}


def _hex(value):
    """A C99 hexadecimal float that round-trips exactly, without trailing zero digits
    (0x1.8p+1, not 0x1.8000000000000p+1); inf and nan as strtod reads them."""
    text = float(value).hex()
    if "p" not in text:
        return text
    mantissa, exponent = text.split("p")
    if "." in mantissa:
        mantissa = mantissa.rstrip("0").rstrip(".")
    return f"{mantissa}p{exponent}"


def _numbers(values):
    return " ".join(_hex(v) for v in np.asarray(values, dtype=np.float64).ravel())


def render(kernel, all_cases):
    lines = ["# spikegrad golden vectors, made from spikegrad.ref; do not edit. Regenerate with",
             "#     pip install --no-build-isolation . && python tools/make_golden.py",
             "# (the format is the docstring of tools/make_golden.py)."]
    for index, case in enumerate(all_cases):
        pairs = " ".join(f"{key}={value}" for key, value in kernel.header(case).items())
        lines.append(f"case {kernel.name} {index} {np.dtype(case.dtype).name} {pairs}")
        for name, values in kernel.inputs(case).items():
            lines.append(f"in {name} {np.size(values)} {_numbers(values)}")
        for name, answer in kernel.expected(case).items():
            values = np.asarray(answer.values)
            if answer.magnitude is None:
                lines.append(f"exact {name} {values.size} {_numbers(values)}")
            else:
                lines.append(f"close {name} {values.size} {_numbers(values)} "
                             f"{_numbers(answer.bound)}")
        lines.append("end")
    return "\n".join(lines) + "\n"


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output-dir", type=Path, default=GOLDEN_DIR,
                        help="where to write the .golden files (default: cpp/tests/golden/)")
    parser.add_argument("kernels", nargs="*", metavar="KERNEL",
                        help=f"the kernels to regenerate, of {', '.join(KERNELS)} (default: all)")
    args = parser.parse_args(argv)
    unknown = [name for name in args.kernels if name not in KERNELS]
    if unknown:
        parser.error(f"unknown kernel {unknown[0]!r}; choose from {', '.join(KERNELS)}")
    args.output_dir.mkdir(parents=True, exist_ok=True)
    for name in args.kernels or KERNELS:
        kernel = KERNELS[name]
        text = render(kernel, kernel.cases())
        path = args.output_dir / kernel.path.name
        path.write_text(text)
        print(f"wrote {path} ({len(text)} bytes)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
