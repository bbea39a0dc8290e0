"""MPD-AGL: the surrogate width that follows the membrane potential distribution.

    p = surrogate_widths(T, lam, gamma_bar, v_th)      # Eq. 7, the width kappa of each step
    result = forward(x, decay=0.2, v_th=0.5, gamma_bar=1.0)

The neuron is the iterative LIF of Wu et al. (the MPD-AGL paper's Eqs. 1-3: `mul` charge, hard reset
to 0, absolute scale) with the rectangular surrogate of Eq. 4, whose width kappa changes
with the step (docs/spec.md §5, "MPD-AGL"):

    kappa[0]      = 2 * gbar * V_th                              (Eq. 7, t = 1)
    kappa[t >= 1] = 2 * sqrt(1 + lam^2) * gbar * V_th            (Eq. 7, t > 1; Theorem 2)

gbar is the mean of the preceding tdBN layer's affine weights (Theorem 1), lam the leak
(detached: the width carries no gradient to it). The paper prints the square root around
gbar * V_th as well; the released code and Theorem 2 put only 1 + lam^2 under it, and so
do we (docs/spec.md §5).
"""

from __future__ import annotations

import math

import numpy as np

from . import neuron

__all__ = ["DEFAULT_V_TH", "surrogate_widths", "forward"]

DEFAULT_V_TH = 0.5   # the MPD-AGL paper's Sec. 4.2: "V_th = 0.5 in our work"


def surrogate_widths(T, lam, gamma_bar, v_th=DEFAULT_V_TH):
    """Eq. 7: the rectangular surrogate's width kappa[t] for t = 0..T-1, float64 [T].

    Evaluated left to right in float64: (2 * gbar) * V_th, and
    ((2 * sqrt(1 + lam * lam)) * gbar) * V_th."""
    if not gamma_bar > 0:
        raise ValueError(f"gamma_bar must be > 0, got {gamma_bar}")
    lam, gbar, v_th = float(lam), float(gamma_bar), float(v_th)
    widths = np.empty(T, dtype=np.float64)
    widths[0] = 2 * gbar * v_th                                  # Eq. 7, t = 1
    widths[1:] = 2 * math.sqrt(1 + lam * lam) * gbar * v_th      # Eq. 7, t > 1
    return widths


def forward(x, *, decay=0.2, v_th=DEFAULT_V_TH, gamma_bar=1.0, v_init=None):
    """The MPD-AGL neuron layer on x [T, ...]: Eqs. 2-3 with the width schedule of Eq. 7.

    `decay` is lam in the working dtype of x (the value the layer used). Returns the
    reference's NeuronResult (`sg_param` holds the widths, rounded to x's dtype)."""
    x = np.asarray(x)
    widths = surrogate_widths(x.shape[0], decay, gamma_bar, v_th)
    return neuron.forward(x, charge="mul", decay=decay, threshold=v_th, reset="hard",
                          v_reset=0.0, detach_reset=False, scale="absolute",
                          surrogate="rect", sg_param=widths, v_init=v_init)
