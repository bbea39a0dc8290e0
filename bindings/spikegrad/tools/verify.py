"""`spikegrad verify`: every compiled kernel variant against the NumPy reference (the
single-level neuron here, then DS-ATGO's adaptive threshold (verify_adaptive), the CF neuron
and the PNB sums (verify_multilevel), and the spikegrad.nn layers in a child process
(verify_layers)); or, with --against, the user's own neuron
(spikegrad.testing.assert_neuron_matches).
"""

from __future__ import annotations

import itertools
import sys
import time

import numpy as np

from .. import kernels, ref
from .._options import CHARGES, DEFAULT_SG_PARAM, RESETS, SCALES, SURROGATES, WIDTH_SHAPES
from ..testing import compare
from . import verify_adaptive, verify_layers, verify_multilevel

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
    failures += verify_adaptive.verify_adaptive(rng, cases=args.cases,
                                                failures_only=args.failures_only)
    # docs/spec.md §6, the CF neuron
    failures += verify_multilevel.cmd_verify_multilevel(rng, args.cases, args.failures_only)
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
    command = [sys.executable, "-m", verify_layers.__name__, "--seed", str(args.seed),
               "--cases", str(args.cases)] + (["--failures-only"] if args.failures_only else [])
    child = subprocess.run(command, capture_output=True, text=True)
    print(child.stdout, end="")
    if child.returncode not in (0, 1):
        print(child.stderr, end="")
    return 1 if child.returncode else 0


def cmd_verify_against(args) -> int:
    """`verify --against`: the user's neuron through assert_neuron_matches."""
    from ..testing.checker import load_callable, options_from_json

    try:
        fn = load_callable(args.against)
        options = options_from_json(args.options, args.grad, args.dtype)
    except (ImportError, AttributeError, ValueError, TypeError) as error:
        print(f"spikegrad verify: {error}", file=sys.stderr)
        return 2
    from ..testing import assert_neuron_matches

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


def cmd_verify_any(args) -> int:
    """`spikegrad verify`: the compiled kernels, or with --against the user's neuron."""
    return cmd_verify_against(args) if args.against else cmd_verify(args)


