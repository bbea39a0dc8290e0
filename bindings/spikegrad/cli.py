"""The `spikegrad` command line.

    spikegrad verify      check every compiled kernel variant (the single-level neuron, then
                          DS-ATGO's adaptive threshold) and the spikegrad.nn layers (with
                          PyTorch) against the NumPy reference
    spikegrad verify --against package.module:function --options '{"charge": "mul"}'
                          check your own neuron (spikegrad.testing.assert_neuron_matches)
    spikegrad demo [--quick] [--out DIR] [--methods ...] [--seed N]
                          train the seed methods side by side on scikit-learn's digits
                          (needs 'spikegrad[torch,demo]'); see spikegrad.demo
    spikegrad bench       time the kernels against the memory-bandwidth floor, the PyTorch
                          loop and torch.compile of it (--quick, --json PATH, --plot PATH)
"""

from __future__ import annotations

import argparse
import itertools
import sys
import time

import numpy as np

from . import _verify_adaptive, kernels, ref
from ._options import CHARGES, DEFAULT_SG_PARAM, RESETS, SCALES, SURROGATES
from .ref.formulas import WIDTH_SHAPES
from .testing import compare

GRADIENTS = ("x", "v_init", "decay", "threshold", "sg_param")


def _sg_factors(rng, surrogate, smooth, T):
    """Per-step factors on the default surrogate parameter; smooth mode keeps surrogates at
    their default or wider (the conditioning of spikegrad.testing.compare)."""
    if not smooth:
        return rng.uniform(0.5, 2.0, T)
    return rng.uniform(1.0, 2.0, T) if surrogate in WIDTH_SHAPES else rng.uniform(0.5, 1.0, T)


def _random_case(rng, *, dtype, T, N, scale, surrogate, edge, smooth):
    """Random inputs for one run; `edge` puts a third of x exactly on the threshold.
    Smooth mode draws moderate thresholds (see spikegrad.testing.compare)."""
    scales = [1.0, 0.5, 2.0] if smooth else [1.0, 0.5, 2.0, 1e-3, 1e3]
    threshold = rng.choice(scales) * rng.uniform(0.5, 1.5, T)
    if scale == "absolute" and rng.random() < 0.25:
        threshold = -threshold / 4
    theta = threshold.astype(dtype)
    magnitude = float(np.abs(theta).mean())
    x = rng.normal(0.6 * magnitude, magnitude, (T, N)).astype(dtype)
    if edge:
        mask = rng.random((T, N)) < 1 / 3
        x[mask] = np.broadcast_to(theta[:, None], (T, N))[mask]
    return dict(
        x=x, decay=float(rng.choice([0.2, 0.25, 0.5, 1.0, rng.uniform()])),
        threshold=threshold,
        sg_param=DEFAULT_SG_PARAM[surrogate] * _sg_factors(rng, surrogate, smooth, T),
        v_init=rng.normal(0, 0.5 * magnitude, N).astype(dtype) if rng.random() < 0.5 else None,
        v_reset=float(rng.choice([0.0, -0.5])))


def verify_variant(rng, *, charge, reset, scale, surrogate, cases=2):
    """Compare kernels and reference for one variant over smooth x detach x dtype x cases.
    Returns (max forward |diff| outside smooth mode, max smooth forward error / bound,
    max backward error / bound)."""
    exact_error = 0.0
    smooth_ratio = 0.0
    backward_ratio = 0.0
    for smooth, detach, dtype, case in itertools.product(
            (False, True), (False, True), (np.float32, np.float64), range(cases)):
        T, N = [(1, 1), (8, 257), (3, 64), (16, 33)][case % 4]
        inputs = _random_case(rng, dtype=dtype, T=T, N=N, scale=scale, surrogate=surrogate,
                              edge=case % 2 == 0, smooth=smooth)
        options = dict(charge=charge, reset=reset, scale=scale, surrogate=surrogate,
                       smooth=smooth, detach_reset=detach, **inputs)
        expected = ref.forward(**options)
        actual = kernels.forward(**options)
        magnitude = compare.smooth_forward_magnitude(expected.membrane, expected.threshold,
                                                     expected.v_reset)
        for name in ("output", "membrane", "v_last"):
            e, a = getattr(expected, name), getattr(actual, name)
            if smooth:
                smooth_ratio = max(smooth_ratio, compare.error_ratio(a, e, dtype=dtype, T=T,
                                                                     magnitude=magnitude))
            elif not np.array_equal(a, e, equal_nan=True):
                exact_error = max(exact_error, compare.max_error(a, e) or float("inf"))
        grads = [rng.normal(size=(T, N)).astype(dtype), rng.normal(size=(T, N)).astype(dtype),
                 rng.normal(size=N).astype(dtype)]
        g_ref = ref.backward(expected, *grads)
        g_ker = kernels.backward(actual, *grads)
        rounding_scale = ref.error_scale(expected, *grads)
        for name in GRADIENTS:
            e, a = getattr(g_ref, name), getattr(g_ker, name)
            backward_ratio = max(backward_ratio, compare.error_ratio(
                a, e, dtype=dtype, T=T, magnitude=getattr(rounding_scale, name)))
    return exact_error, smooth_ratio, backward_ratio


def cmd_verify(args) -> int:
    rng = np.random.default_rng(args.seed)
    variants = list(itertools.product(CHARGES, RESETS, SCALES, SURROGATES))
    header = (f"{'charge':<15}{'reset':<6}{'scale':<17}{'surrogate':<10}"
              f"{'forward |diff|':>15}{'smooth err/bound':>18}{'backward err/bound':>20}  verdict")
    print(f"spikegrad verify: {len(variants)} variants x smooth x detach_reset x "
          f"float32/float64 x {args.cases} random cases, compiled kernels against spikegrad.ref")
    print("forward must be bit-identical outside smooth mode; errors elsewhere are shown as a "
          "fraction of the bound in spikegrad.testing.compare (<= 1 passes)")
    print(header)
    print("-" * len(header))
    failures = 0
    start = time.perf_counter()
    for charge, reset, scale, surrogate in variants:
        exact_error, smooth_ratio, backward_ratio = verify_variant(
            rng, charge=charge, reset=reset, scale=scale, surrogate=surrogate,
            cases=args.cases)
        ok = exact_error == 0 and smooth_ratio <= 1 and backward_ratio <= 1
        failures += not ok
        if not (args.failures_only and ok):
            print(f"{charge:<15}{reset:<6}{scale:<17}{surrogate:<10}{exact_error:>15.3g}"
                  f"{smooth_ratio:>18.3g}{backward_ratio:>20.3g}  {'PASS' if ok else 'FAIL'}")
    elapsed = time.perf_counter() - start
    print("-" * len(header))
    print(f"{len(variants) - failures} passed, {failures} failed ({elapsed:.1f} s)")
    failures += _verify_adaptive.verify_adaptive(rng, cases=args.cases,
                                                 failures_only=args.failures_only)
    from .verify_multilevel import cmd_verify_multilevel   # docs/spec.md §6, the CF neuron
    failures += cmd_verify_multilevel(rng, args.cases, args.failures_only)
    print()
    failures += _verify_layers_in_subprocess(args)
    return 1 if failures else 0


def _verify_layers_in_subprocess(args) -> int:
    """The spikegrad.nn layers need PyTorch; they are checked in a child process so that
    this one (the kernels' check) never imports it. Returns 0 or 1."""
    import importlib.util
    import subprocess

    if importlib.util.find_spec("torch") is None:
        print("spikegrad.nn layers: skipped (PyTorch is not installed)")
        return 0
    command = [sys.executable, "-m", "spikegrad._verify_layers", "--seed", str(args.seed),
               "--cases", str(args.cases)] + (["--failures-only"] if args.failures_only else [])
    child = subprocess.run(command, capture_output=True, text=True)
    print(child.stdout, end="")
    if child.returncode not in (0, 1):
        print(child.stderr, end="")
    return 1 if child.returncode else 0


def cmd_verify_against(args) -> int:
    """`verify --against`: the user's neuron through assert_neuron_matches."""
    from .testing.checker import load_callable, options_from_json

    try:
        fn = load_callable(args.against)
        options = options_from_json(args.options, args.grad, args.dtype)
    except (ImportError, AttributeError, ValueError, TypeError) as error:
        print(f"spikegrad verify: {error}", file=sys.stderr)
        return 2
    from .testing import assert_neuron_matches

    print(f"spikegrad verify: {args.against} against spikegrad.ref, "
          f"{args.max_examples} hypothesis examples, options {args.options}")
    start = time.perf_counter()
    try:
        assert_neuron_matches(fn, max_examples=args.max_examples, **options)
    except AssertionError as failure:
        print(f"FAIL ({time.perf_counter() - start:.1f} s)\n{failure}")
        return 1
    print(f"PASS: forward exact, gradients within the bound "
          f"({time.perf_counter() - start:.1f} s)")
    return 0


def _verify(args) -> int:
    return cmd_verify_against(args) if args.against else cmd_verify(args)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="spikegrad", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    verify = sub.add_parser("verify", help="check the compiled kernels against the reference")
    verify.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    verify.add_argument("--cases", type=int, default=2,
                        help="random cases per variant, dtype and mode (default 2)")
    verify.add_argument("--failures-only", action="store_true",
                        help="print only the variants that fail")
    verify.add_argument("--against", metavar="MODULE:FUNCTION",
                        help="check this neuron function fn(x, **options) instead of the "
                             "compiled kernels (needs torch and hypothesis)")
    verify.add_argument("--options", default="{}",
                        help="with --against: the spikegrad.neuron keywords it claims, as "
                             "JSON (default {})")
    verify.add_argument("--grad", default="",
                        help="with --against: comma-separated parameters (decay, threshold, "
                             "sg_param, v_init) to pass as tensors and check gradients of")
    verify.add_argument("--dtype", choices=("float32", "float64"), default="float64",
                        help="with --against: the dtype of x (default float64)")
    verify.add_argument("--max-examples", type=int, default=200,
                        help="with --against: hypothesis examples (default 200)")
    verify.set_defaults(func=_verify)
    demo = sub.add_parser("demo", help="train the seed methods side by side on digits")
    from . import demo as demo_module   # imports torch only when run
    demo_module.add_arguments(demo)
    demo.set_defaults(func=demo_module.main)
    bench = sub.add_parser("bench", help="time the kernels against the memory-bandwidth floor "
                                         "and the PyTorch loops (docs/performance.md)")
    from . import bench as bench_module
    bench_module.add_arguments(bench)
    bench.set_defaults(func=bench_module.cmd_bench)
    args = parser.parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
