"""`spikegrad verify` rows for DS-ATGO's adaptive-threshold kernel (docs/spec.md §2 "AT", docs/spec.md §5
"TGO"): spikegrad.kernels.adaptive_forward against spikegrad.ref.adaptive.forward, the
forward (output, membrane, v_last, thresholds, statistics) bit for bit, the TGO widths and
the backward within the bound of spikegrad.testing.compare. NumPy only."""

from __future__ import annotations

import itertools

import numpy as np

from .. import kernels, ref
from ..ref import adaptive
from ..testing import compare

MODES = list(itertools.product(adaptive.THRESHOLD_MODES, adaptive.TGO_DRIVERS))
FORWARD = ("output", "membrane", "v_last", "threshold", "mean", "std")
GRADIENTS = ("x", "v_init", "decay")


def verify_mode(rng, *, threshold_mode, tgo_driver, cases=2):
    """Returns (max forward |diff|, max width and backward error / bound) over
    float32/float64 x tgo on/off x cases; N crosses the kernels' 512-neuron blocks."""
    exact_error, ratio = 0.0, 0.0
    for dtype, tgo, case in itertools.product((np.float32, np.float64), (True, False),
                                              range(cases)):
        T, N = [(1, 2), (6, 1100), (3, 512), (8, 77)][case % 4]
        x = rng.normal(0.5, 1.0, (T, N)).astype(dtype)
        kw = dict(decay=float(rng.choice([0.2, 0.5, rng.uniform()])), tgo=tgo,
                  threshold_mode=threshold_mode, tgo_driver=tgo_driver,
                  f_c=float(rng.choice([1.0, 1.3])), width=float(rng.choice([1.0, 0.5])),
                  v_init=rng.normal(0, 0.5, N).astype(dtype) if rng.random() < 0.5 else None)
        expected = adaptive.forward(x, **kw)
        actual = kernels.adaptive_forward(x, **kw)
        for name in FORWARD:
            e, a = getattr(expected, name), getattr(actual, name)
            if not np.array_equal(a, e, equal_nan=True):
                exact_error = max(exact_error, compare.max_error(a, e) or float("inf"))
        ratio = max(ratio, compare.error_ratio(actual.sg_param, expected.sg_param,
                                               dtype=dtype, T=0))
        grads = [rng.normal(size=(T, N)).astype(dtype), None, rng.normal(size=N).astype(dtype)]
        g_ref = ref.backward(expected, *grads)
        g_ker = kernels.backward(actual, *grads)
        scale = ref.error_scale(expected, *grads)
        for name in GRADIENTS:
            ratio = max(ratio, compare.error_ratio(getattr(g_ker, name), getattr(g_ref, name),
                                                   dtype=dtype, T=T,
                                                   magnitude=getattr(scale, name)))
    return exact_error, ratio


def verify_adaptive(rng, *, cases, failures_only) -> int:
    """Print one row per (threshold_mode, tgo_driver); return the number of failures."""
    header = (f"{'DS-ATGO threshold_mode':<24}{'tgo_driver':<12}{'forward |diff|':>15}"
              f"{'width/backward err/bound':>26}  verdict")
    print()
    print("DS-ATGO adaptive threshold (spikegrad.kernels.adaptive_forward against "
          "spikegrad.ref.adaptive), x tgo on/off x float32/float64")
    print(header)
    print("-" * len(header))
    failures = 0
    for threshold_mode, tgo_driver in MODES:
        exact_error, ratio = verify_mode(rng, threshold_mode=threshold_mode,
                                         tgo_driver=tgo_driver, cases=cases)
        ok = exact_error == 0 and ratio <= 1
        failures += not ok
        if not (failures_only and ok):
            print(f"{threshold_mode:<24}{tgo_driver:<12}{exact_error:>15.3g}{ratio:>26.3g}  "
                  f"{'PASS' if ok else 'FAIL'}")
    print("-" * len(header))
    print(f"DS-ATGO: {len(MODES) - failures} passed, {failures} failed")
    return failures
