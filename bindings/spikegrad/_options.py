"""Option names and their checks, in one place for every Python entry point.

Options are strings at the Python surface (enums in C++, template parameters in kernels);
numbers (decay, thresholds, widths) stay run-time values.
"""

from __future__ import annotations

import math

from .ref.formulas import CHARGES, DEFAULT_SG_PARAM, RESETS, SCALES, SURROGATES

__all__ = ["CHARGES", "RESETS", "SCALES", "SURROGATES", "DEFAULT_SG_PARAM",
           "check_options", "check_number"]


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
