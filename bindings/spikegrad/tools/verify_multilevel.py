"""`spikegrad verify`, the multi-level part (docs/spec.md §6): the CF neuron's kernels and the PNB
partial sums against spikegrad.ref. NumPy only; part of `spikegrad verify`
(spikegrad.tools.verify)."""

from __future__ import annotations

import itertools

import numpy as np

from .. import kernels, ref
from ..testing import compare

LEVELS = ((2, 2), (1, 3), (4, 1))


def _random_case(rng, *, dtype, T, N, k_p, k_n, surrogate, smooth, detach, edge):
    """Random inputs; `edge` puts a third of x exactly on a level (+-k theta). Smooth mode
    draws moderate scales (see spikegrad.testing.compare)."""
    thetas = [1.0, 0.5, 2.0] if smooth else [1.0, 0.5, 2.0, 1e-3, 1e3]
    theta_p, theta_n = float(rng.choice(thetas)), float(rng.choice(thetas))
    a_max = 1.5 / max(theta_p, theta_n) if smooth else 3.0
    a = a_max * rng.uniform(0.25, 1.0, T)
    scale = max(theta_p, theta_n) * max(k_p, k_n)
    x = rng.normal(0, scale, (T, N)).astype(dtype)
    if edge:
        ks = rng.integers(1, max(k_p, k_n) + 1, (T, N)).astype(dtype)
        levels = np.where(rng.random((T, N)) < 0.5, ks * dtype(theta_p), -(ks * dtype(theta_n)))
        mask = rng.random((T, N)) < 1 / 3
        x[mask] = levels[mask]
    v_init = rng.normal(0, 0.3 * scale, N).astype(dtype) if rng.random() < 0.5 else None
    return dict(x=x, decay=float(rng.choice([0.25, 0.5, 1.0, rng.uniform()])), theta_p=theta_p,
                theta_n=theta_n, k_p=k_p, k_n=k_n, surrogate=surrogate, a=a,
                detach_reset=detach, v_init=v_init, smooth=smooth)


def verify_levels(rng, *, surrogate, k_p, k_n, cases=2):
    """(max forward |diff| outside smooth mode, max forward |diff| in smooth mode,
    max backward error / bound) over smooth x detach_reset x dtype x cases. Both forwards
    must be bit-identical (0)."""
    exact_error = smooth_ratio = backward_ratio = 0.0
    for smooth, detach, dtype, case in itertools.product(
            (False, True), (False, True), (np.float32, np.float64), range(cases)):
        T, N = [(1, 1), (8, 700), (3, 64), (16, 33)][case % 4]
        inputs = _random_case(rng, dtype=dtype, T=T, N=N, k_p=k_p, k_n=k_n,
                              surrogate=surrogate, smooth=smooth, detach=detach,
                              edge=case % 2 == 0)
        expected = ref.multilevel.forward(**inputs)
        actual = kernels.multilevel_forward(**inputs)
        # the level primitives use no transcendental function: bit-identical when smooth too
        for name in ("output", "membrane", "v_last"):
            e, a = getattr(expected, name), getattr(actual, name)
            if not np.array_equal(a, e, equal_nan=True):
                error = compare.max_error(a, e) or float("inf")
                if smooth:
                    smooth_ratio = max(smooth_ratio, error)
                else:
                    exact_error = max(exact_error, error)
        grads = [rng.normal(size=(T, N)).astype(dtype), rng.normal(size=(T, N)).astype(dtype),
                 rng.normal(size=N).astype(dtype)]
        g_ref = ref.multilevel.backward(expected, *grads)
        g_ker = kernels.multilevel_backward(actual, *grads)
        rounding_scale = ref.multilevel.error_scale(expected, *grads)
        for name in ("x", "v_init", "decay", "a"):
            e, a = getattr(g_ref, name), getattr(g_ker, name)
            if e is None or a is None:
                if (e is None) != (a is None):
                    backward_ratio = float("inf")
                continue
            backward_ratio = max(backward_ratio, compare.error_ratio(
                a, e, dtype=dtype, T=T, magnitude=getattr(rounding_scale, name)))
    return exact_error, smooth_ratio, backward_ratio


def verify_pnb(rng, cases=2):
    """max error / bound of the PNB partial sums over dtypes, level counts and sizes."""
    ratio = 0.0
    for dtype, K, case in itertools.product((np.float32, np.float64), (1, 2, 4), range(cases)):
        n = [1, 5000, 64, 9000][case % 4]
        theta_p, theta_n = float(rng.choice([1.0, 0.5, 2.0])), float(rng.choice([1.0, 0.75]))
        h = rng.normal(0, K * max(theta_p, theta_n), n).astype(dtype)
        expected = ref.pnb.partial_sums(h, theta_p, theta_n, K)
        actual = kernels.pnb_partial_sums(h, theta_p, theta_n, K)
        magnitude = np.empty_like(expected)
        for k in range(1, K + 1):
            for sign, (w, hw) in enumerate(ref.pnb.contributions(h, theta_p, theta_n, k)):
                magnitude[k - 1, sign] = [w.sum(), np.abs(hw).sum()]
        ratio = max(ratio, compare.error_ratio(actual, expected, dtype=np.float64, T=1,
                                               magnitude=magnitude))
    return ratio


def cmd_verify_multilevel(rng, cases, failures_only) -> int:
    """Print the CF table; return the number of failing rows. Rows start with 'cf '."""
    print()
    print("circulate-firing neuron (docs/spec.md §6) and PNB partial sums, against spikegrad.ref")
    header = (f"{'cf surrogate':<15}{'k_p,k_n':<23}{'forward |diff|':>15}"
              f"{'smooth |diff|':>18}{'backward err/bound':>20}  verdict")
    print(header)
    print("-" * len(header))
    failures = 0
    rows = 0
    for surrogate, (k_p, k_n) in itertools.product(("span", "tsg"), LEVELS):
        exact, smooth, backward = verify_levels(rng, surrogate=surrogate, k_p=k_p, k_n=k_n,
                                                cases=cases)
        ok = exact == 0 and smooth == 0 and backward <= 1
        failures += not ok
        rows += 1
        if not (failures_only and ok):
            print(f"{'cf ' + surrogate:<15}{f'{k_p},{k_n}':<23}{exact:>15.3g}{smooth:>18.3g}"
                  f"{backward:>20.3g}  {'PASS' if ok else 'FAIL'}")
    pnb_ratio = verify_pnb(rng, cases)
    ok = pnb_ratio <= 1
    failures += not ok
    rows += 1
    if not (failures_only and ok):
        print(f"{'cf pnb sums':<15}{'K = 1, 2, 4':<23}{'':>15}{'':>18}{pnb_ratio:>20.3g}"
              f"  {'PASS' if ok else 'FAIL'}")
    print("-" * len(header))
    print(f"cf: {rows - failures} passed, {failures} failed")
    return failures
