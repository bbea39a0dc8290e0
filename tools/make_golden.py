"""Golden vectors for the C++ tests, made by the NumPy reference (spikegrad.ref).

    pip install --no-build-isolation . && python tools/make_golden.py

writes cpp/tests/golden/neuron.golden, read by cpp/tests/test_golden.cpp (which needs no
Python) and checked against the current reference by tests/test_golden.py, so a change of
pyref/ that the file does not follow fails the Python suite. The cases are fixed (a seeded
generator, no hypothesis): every option value, both dtypes, and the edge cases T = 1,
N = 1, inputs exactly at the threshold, huge and tiny thresholds, a negative threshold,
negative inputs, per-step thresholds and surrogate parameters, non-finite inputs.

File format (text, one record per line, numbers as C99 hexadecimal floats so that every
value round-trips exactly; float32 values are written as the doubles they convert to):

    case neuron <index> <float32|float64> charge=.. reset=.. scale=.. surrogate=..
         smooth=0|1 detach_reset=0|1 T=<T> N=<N>          (one line)
    in <name> <n> <n values>        decay, v_reset, threshold [T], sg_param [T], v_init [N],
                                    x [T*N], grad_output / grad_membrane [T*N],
                                    grad_v_last [N] (absent: None, zero)
    exact <name> <n> <n values>     must be reproduced bit for bit (-0 == 0, NaN == NaN)
    close <name> <n> <n values> <n bounds>
                                    |actual - expected| <= bound, the bound of
                                    spikegrad.testing.compare.tolerance with the magnitudes
                                    of spikegrad.ref.error_scale; non-finite values exactly
    end

Outputs: output, membrane, v_last [N] (exact, or close in smooth mode); grad_x, grad_v_init,
grad_decay [1], grad_threshold [T], grad_sg_param [T] (close). Arrays are time-major [T, N].
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from spikegrad import ref
from spikegrad.testing.compare import smooth_forward_magnitude, tolerance

GOLDEN = Path(__file__).resolve().parents[1] / "cpp" / "tests" / "golden" / "neuron.golden"
SEED = 20261123
UPSTREAM = ("grad_output", "grad_membrane", "grad_v_last")


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
    draws = {"grad_output": (T, N), "grad_membrane": (T, N), "grad_v_last": (N,)}
    grads = {name: (rng.normal(size=shape).astype(dtype) if name in upstream else None)
             for name, shape in draws.items()}
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
    """The reference's answers: {name: (values, magnitude)}; magnitude None means exact,
    else the bound is spikegrad.testing.compare.tolerance(values, magnitude=magnitude)."""
    T = case.x.shape[0]
    result = ref.forward(case.x, decay=case.decay, threshold=case.threshold,
                         v_reset=case.v_reset, sg_param=case.sg_param, v_init=case.v_init,
                         **case.options)
    answers = {}
    magnitude = smooth_forward_magnitude(result.membrane, result.threshold, result.v_reset)
    for name in ("output", "membrane", "v_last"):
        answers[name] = (getattr(result, name), magnitude if case.options["smooth"] else None)
    upstream = [case.upstream[name] for name in UPSTREAM]
    with np.errstate(all="ignore"):
        grads = ref.backward(result, *upstream)
        scale = ref.error_scale(result, *upstream)
    for name in ("x", "v_init", "decay", "threshold", "sg_param"):
        answers["grad_" + name] = (np.atleast_1d(np.asarray(getattr(grads, name))),
                                   np.atleast_1d(np.asarray(getattr(scale, name))))
    return answers


def bound(case, values, magnitude):
    """The bound of every entry of `values` (spikegrad.testing.compare.tolerance)."""
    values = np.asarray(values, dtype=np.float64)
    T = case.x.shape[0]
    return np.broadcast_to(tolerance(values, dtype=case.dtype, T=T, magnitude=magnitude),
                           values.shape)


def _numbers(values):
    return " ".join(float(v).hex() for v in np.asarray(values, dtype=np.float64).ravel())


def render(all_cases):
    lines = ["# spikegrad golden vectors, made from spikegrad.ref; do not edit. Regenerate with",
             "#     pip install --no-build-isolation . && python tools/make_golden.py",
             "# (the format is the docstring of tools/make_golden.py)."]
    for index, case in enumerate(all_cases):
        T, N = case.x.shape
        o = case.options
        lines.append(
            f"case neuron {index} {np.dtype(case.dtype).name} charge={o['charge']} "
            f"reset={o['reset']} scale={o['scale']} surrogate={o['surrogate']} "
            f"smooth={int(o['smooth'])} detach_reset={int(o['detach_reset'])} T={T} N={N}")
        inputs = {"decay": [case.decay], "v_reset": [case.v_reset],
                  "threshold": case.threshold, "sg_param": case.sg_param,
                  "v_init": case.v_init, "x": case.x}
        inputs.update({k: v for k, v in case.upstream.items() if v is not None})
        for name, values in inputs.items():
            lines.append(f"in {name} {np.size(values)} {_numbers(values)}")
        for name, (values, magnitude) in expected(case).items():
            if magnitude is None:
                lines.append(f"exact {name} {np.size(values)} {_numbers(values)}")
            else:
                lines.append(f"close {name} {np.size(values)} {_numbers(values)} "
                             f"{_numbers(bound(case, values, magnitude))}")
        lines.append("end")
    return "\n".join(lines) + "\n"


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output", type=Path, default=GOLDEN,
                        help="where to write (default: cpp/tests/golden/neuron.golden)")
    args = parser.parse_args(argv)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    text = render(cases())
    args.output.write_text(text)
    print(f"wrote {args.output} ({len(text)} bytes)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
