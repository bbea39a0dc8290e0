"""Option names and their checks, in one place for every Python entry point.

Options are strings at the Python surface (enums in C++, template parameters in kernels);
numbers (decay, thresholds, widths) stay run-time values. The lists are the package's own:
the reference (spikegrad.ref) keeps its lists too, and tests/ops/test_options.py checks that
both agree and that the compiled parser accepts every name.
"""

from __future__ import annotations

import math

import numpy as np

__all__ = ["CHARGES", "RESETS", "SCALES", "SURROGATES", "WIDTH_SHAPES", "SHARPNESS_SHAPES",
           "DEFAULT_SG_PARAM", "LEVEL_SURROGATES", "THRESHOLD_MODES", "TGO_DRIVERS",
           "check_options", "check_number", "check_adaptive_options",
           "check_level_parameters", "check_pnb_parameters", "per_step", "initial_membrane"]

# docs/spec.md §1, §3, §4, §5
CHARGES = ("mul", "decay_input", "no_decay_input", "if")
RESETS = ("hard", "soft", "none")
SCALES = ("absolute", "relative", "threshold_robust")
SURROGATES = ("rect", "triangle", "sigmoid", "atan")
# Width-type parameters widen the window as they grow; sharpness-type ones narrow it.
WIDTH_SHAPES = ("rect", "triangle")
SHARPNESS_SHAPES = ("sigmoid", "atan")
DEFAULT_SG_PARAM = {"rect": 1.0, "triangle": 1.0, "sigmoid": 4.0, "atan": 2.0}
# docs/spec.md §6: the level surrogates of the circulate-firing neuron
LEVEL_SURROGATES = ("span", "tsg")
# docs/spec.md §2 "AT" and §5 "TGO"
THRESHOLD_MODES = ("true", "estimated")
TGO_DRIVERS = ("std", "threshold")


def _check_choice(name, value, allowed):
    if not isinstance(value, str) or value not in allowed:
        raise ValueError(f"{name} must be one of {', '.join(map(repr, allowed))}; got {value!r}")


def _check_bool(name, value):
    if not isinstance(value, bool):
        raise TypeError(f"{name} must be a bool, got {type(value).__name__}")


def check_options(*, charge, reset, scale, surrogate, detach_reset=False, smooth=False,
                  return_membrane=False):
    """Raise ValueError / TypeError naming the first bad option."""
    _check_choice("charge", charge, CHARGES)
    _check_choice("reset", reset, RESETS)
    _check_choice("scale", scale, SCALES)
    _check_choice("surrogate", surrogate, SURROGATES)
    _check_bool("detach_reset", detach_reset)
    _check_bool("smooth", smooth)
    _check_bool("return_membrane", return_membrane)


def check_number(name, value, *, scale=None, positive=False):
    """A Python number parameter: no NaN; > 0 where the formula needs it."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{name} must be a float, got {type(value).__name__}")
    value = float(value)
    if math.isnan(value):
        raise ValueError(f"{name} is NaN")
    if positive and value <= 0:
        raise ValueError(f"{name} must be > 0, got {value}")
    if scale is not None and scale != "absolute" and value <= 0:
        raise ValueError(f"{name} must be > 0 for scale={scale!r}, got {value}")
    return value


def check_adaptive_options(threshold_mode, tgo_driver, f_c, v_th, width):
    """DS-ATGO's options (docs/spec.md §2, §5); the reference raises the same errors."""
    if threshold_mode not in THRESHOLD_MODES:
        raise ValueError(f"threshold_mode must be one of {THRESHOLD_MODES}, "
                         f"got {threshold_mode!r}")
    if tgo_driver not in TGO_DRIVERS:
        raise ValueError(f"tgo_driver must be one of {TGO_DRIVERS}, got {tgo_driver!r}")
    for name, value in (("f_c", f_c), ("v_th", v_th)):
        if not math.isfinite(value):
            raise ValueError(f"{name} must be finite, got {value}")
    if not (width > 0 and math.isfinite(width)):
        raise ValueError(f"width must be a finite number > 0, got {width}")


def check_level_parameters(theta_p, theta_n, k_p, k_n):
    """The CF neuron's level counts and magnitudes (ValueError / TypeError naming the argument)."""
    for name, value in (("k_p", k_p), ("k_n", k_n)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
            raise TypeError(f"{name} must be an int, got {type(value).__name__}")
        if value < 1:
            raise ValueError(f"{name} must be >= 1, got {value}")
    for name, value in (("theta_p", theta_p), ("theta_n", theta_n)):
        if not np.isfinite(value) or value <= 0:
            raise ValueError(f"{name} must be a finite magnitude > 0, got {float(value)}")


def check_pnb_parameters(theta_p, theta_n, k, eps):
    """The PNB loss's level parameters (docs/spec.md §6)."""
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)):
        raise TypeError(f"k must be an int, got {type(k).__name__}")
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    for name, value in (("theta_p", theta_p), ("theta_n", theta_n)):
        if not np.isfinite(value) or value <= 0:
            raise ValueError(f"{name} must be a finite magnitude > 0, got {float(value)}")
    if not np.isfinite(eps) or eps < 0:
        raise ValueError(f"eps must be finite and >= 0, got {eps}")


def per_step(value, T, dtype, name):
    """A scalar or a length-T vector, as a length-T vector of the working dtype; and whether
    it was a scalar."""
    array = np.asarray(value, dtype=np.float64)
    if array.ndim == 0:
        return np.full(T, array, dtype=dtype), True
    if array.shape != (T,):
        raise ValueError(f"{name} must be a scalar or a length-T vector (T = {T}), "
                         f"got shape {array.shape}")
    return array.astype(dtype), False


def initial_membrane(v_init, neuron_shape, dtype):
    """v[-1] (docs/spec.md §0): zeros for None, else a scalar broadcast or an array shaped like
    x[0]. Returns (v, the shape v_init was given in, or None)."""
    if v_init is None:
        return np.zeros(neuron_shape, dtype=dtype), None
    v_init = np.asarray(v_init, dtype=np.float64)
    if v_init.ndim != 0 and v_init.shape != tuple(neuron_shape):
        raise ValueError(f"v_init must be a scalar or shaped like x[0] {tuple(neuron_shape)}, "
                         f"got {v_init.shape}")
    return np.broadcast_to(v_init.astype(dtype), neuron_shape).copy(), v_init.shape
