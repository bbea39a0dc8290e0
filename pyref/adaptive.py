"""DS-ATGO (seed 000): the adaptive threshold (SPEC 2, "AT") and the TGO width schedule
(SPEC 5), forward in NumPy. The backward is spikegrad.ref.backward: theta[t] and the widths
are detached statistics, so once they are known the neuron is an ordinary neuron with
per-step vectors.

    result = forward(x, decay=0.2, f_c=1.0, threshold_mode="true", tgo=True, ...)
    result.threshold, result.sg_param     # theta[t] and k_t used, [T]
    result.mean, result.std               # the statistics of h[t], float64 [T]
    grads = spikegrad.ref.backward(result, grad_output)

At every step t, between charge and fire, the layer's statistic of h[t] over all N neurons
(the whole batch) sets the threshold of that step:

    theta[t] = f_c * (mean(h[t]) + std(h[t]))           paper Eq. 5 (second line), "true"
    theta    = f_c * sqrt(1 + lam^2) * V_th             paper Eq. 5 (first line), "estimated"
    k_t      = k0 * (1 + tanh(d_t - V_th))              paper Eq. 7 (both branches in one)
                d_t = std(h[t]) (released code, "std") or theta[t] (paper, "threshold")

Exactness. mean and std are float64 sums over the N neurons, made in the fixed order of the
C++ kernels (`ordered_sum`: blocks of 512 neurons, 8 interleaved lanes per block, lanes
combined pairwise, blocks added in order) so that the C++ forward is bit-identical to this
one. np.sum is pairwise and is not used where bits matter. theta and k_t are computed in
float64 from the float64 statistics and rounded once to the working dtype.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from .neuron import NeuronOptions, NeuronResult, _working_dtype, initial_membrane, run_loop

__all__ = ["AdaptiveResult", "forward", "block_partial_sums", "combine_partial_sums",
           "ordered_sum", "layer_mean", "layer_std", "adaptive_threshold",
           "estimated_threshold", "tgo_width", "check_adaptive_step", "update_running_threshold",
           "THRESHOLD_MODES", "TGO_DRIVERS", "BLOCK", "LANES"]

THRESHOLD_MODES = ("true", "estimated")
TGO_DRIVERS = ("std", "threshold")
BLOCK = 512  # kNeuronBlock of cpp/include/spikegrad/neuron_cpu.hpp
LANES = 8    # the interleaved accumulators of detail::block_sum


# --------------------------------------------------------------------------------------
# The fixed-order float64 sum (the C++ kernels' detail::block_sum, then blocks in order)
# --------------------------------------------------------------------------------------

def block_partial_sums(terms):
    """Per block of BLOCK consecutive float64 terms, their sum in the C++ order: lane l
    (0..7) adds terms l, l+8, l+16, ... one after another starting from 0.0, then the lanes
    are combined pairwise ((0+1) + (2+3)) + ((4+5) + (6+7)). Returns float64 [num_blocks].

    The last block is padded with zeros, which leaves every lane unchanged; np.cumsum is a
    sequential scan, so each lane is the left-to-right sum the C++ loop makes."""
    terms = np.asarray(terms, dtype=np.float64).ravel()
    num_blocks = -(-terms.size // BLOCK)
    padded = np.zeros(num_blocks * BLOCK)
    padded[:terms.size] = terms
    rows = padded.reshape(num_blocks, BLOCK // LANES, LANES)
    start = np.zeros((num_blocks, 1, LANES))          # each lane starts from +0.0
    lane = np.cumsum(np.concatenate([start, rows], axis=1), axis=1)[:, -1, :]
    return (((lane[:, 0] + lane[:, 1]) + (lane[:, 2] + lane[:, 3]))
            + ((lane[:, 4] + lane[:, 5]) + (lane[:, 6] + lane[:, 7])))


def combine_partial_sums(partials):
    """The blocks' partial sums added in block order, from 0.0 (a Python float is a
    float64). A data-parallel caller concatenates the ranks' partials in rank order."""
    total = 0.0
    for partial in np.asarray(partials, dtype=np.float64).ravel():
        total += float(partial)
    return total


def ordered_sum(terms):
    """sum(terms) in float64, in the fixed order of the C++ kernels."""
    return combine_partial_sums(block_partial_sums(terms))


# --------------------------------------------------------------------------------------
# SPEC 2 (AT) and SPEC 5 (TGO): one function per equation, on float64 scalars
# --------------------------------------------------------------------------------------

def layer_mean(h):
    """mean(h[t]) over all N neurons of the layer at one step, float64."""
    h = np.asarray(h, dtype=np.float64).ravel()
    return ordered_sum(h) / h.size


def layer_std(h, mean):
    """std(h[t]) with Bessel's correction (divide by N - 1), two-pass around `mean`."""
    h = np.asarray(h, dtype=np.float64).ravel()
    if h.size < 2:
        raise ValueError(f"the adaptive threshold needs N >= 2 neurons (the std divides by "
                         f"N - 1), got N = {h.size}")
    deviation = h - mean
    return math.sqrt(ordered_sum(deviation * deviation) / (h.size - 1))


def adaptive_threshold(mean, std, f_c):
    """Paper Eq. 5, second line ("true"): theta[t] = f_c * (mean(h[t]) + std(h[t]))."""
    return f_c * (mean + std)


def estimated_threshold(lam, f_c, v_th):
    """Paper Eq. 5, first line ("estimated"): theta = f_c * sqrt(1 + lam^2) * V_th."""
    lam = float(lam)
    return f_c * math.sqrt(1 + lam * lam) * v_th


def tgo_width(k0, driver, v_th):
    """Paper Eq. 7 (SPEC 5): k_t = k0 * (1 - tanh(V_th - d_t)) for d_t <= V_th, else
    k0 * (1 + tanh(d_t - V_th)); tanh is odd, so both are k0 * (1 + tanh(d_t - V_th))."""
    return k0 * (1 + math.tanh(driver - v_th))


def check_adaptive_step(theta, k, mean, std, v_th, t):
    """The values of one step must be usable, else the forward raises where the cause is
    known. A non-finite theta or k_t means NaN or Inf among the layer's membranes: the layer
    statistic is undefined, and H(NaN) = 0 would silently silence the whole layer. k_t = 0
    when tanh(d_t - V_th) rounds to -1 (d_t - V_th < -19 in float64): the rect surrogate of
    width 0 is undefined (its limit is a Dirac delta, not 0)."""
    statistics = f"(mean(h) = {mean:.9g}, std(h) = {std:.9g}, v_th = {v_th:.9g})"
    if not (math.isfinite(theta) and math.isfinite(k)):
        raise ValueError(f"the adaptive threshold or TGO width is not finite at t = {t} "
                         f"{statistics}: the layer's membranes contain NaN or Inf (from x or "
                         f"v_init), or are so large that the float64 statistic overflows: "
                         f"DS-ATGO's threshold is undefined")
    if k <= 0:
        raise ValueError(f"the TGO width k_t = width * (1 + tanh(d_t - v_th)) rounds to 0 at "
                         f"t = {t} {statistics}: d_t is too far below v_th; use a smaller v_th "
                         f"or tgo=False")


def update_running_threshold(running, theta, momentum):
    """SPEC 2: r[t] <- (1 - m) r[t] + m theta[t], in the dtype of `running`, for the T
    steps of theta (a window shorter than r updates its first steps)."""
    running = np.array(running, copy=True)
    dtype = running.dtype.type
    T = np.shape(theta)[0]
    r, theta = running[:T], np.asarray(theta, dtype=running.dtype)
    running[:T] = dtype(1 - momentum) * r + dtype(momentum) * theta
    return running


# --------------------------------------------------------------------------------------
# The forward
# --------------------------------------------------------------------------------------

@dataclass
class AdaptiveResult(NeuronResult):
    """A NeuronResult (threshold and sg_param are the per-step values used) plus the
    statistics of h[t] that made them."""

    mean: np.ndarray = None   # mean(h[t]), float64 [T]
    std: np.ndarray = None    # std(h[t]), Bessel's correction, float64 [T]


def check_adaptive_options(threshold_mode, tgo_driver, f_c, v_th, width):
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


def forward(x, *, decay=0.2, v_th=1.0, f_c=1.0, threshold_mode="true", tgo=True,
            tgo_driver="std", width=1.0, v_init=None, charge="mul", reset="hard",
            v_reset=0.0, detach_reset=False) -> AdaptiveResult:
    """DS-ATGO's training forward over the T steps of x ([T, ...]): SPEC 2 (AT) and 5 (TGO).

    The threshold of every step comes from h[t] (or the estimated form), the rect
    surrogate's width from the TGO schedule (`tgo=True`) or is `width` (k0) throughout.
    The scale is absolute and the spike is H(h - theta) (SPEC 9's DS-ATGO preset); charge
    and reset default to the preset's mul / hard to 0.
    """
    options = NeuronOptions(charge, reset, bool(detach_reset), "absolute", "rect", False)
    check_adaptive_options(threshold_mode, tgo_driver, f_c, v_th, width)
    dtype = _working_dtype(x)
    x = np.asarray(x, dtype=dtype)
    if x.ndim < 1 or x.shape[0] == 0:
        raise ValueError(f"x must have a time axis with T >= 1, got shape {x.shape}")
    T = x.shape[0]
    lam = dtype(decay)
    if np.isnan(lam):
        raise ValueError("decay is NaN")
    v_reset = dtype(v_reset)
    v, v_init_shape = initial_membrane(v_init, x.shape[1:], dtype)

    theta = np.empty(T, dtype=dtype)
    p = np.empty(T, dtype=dtype)
    mean = np.empty(T)
    std = np.empty(T)

    def adapt(t, h):
        """Between charge and fire: the statistics of h[t] set theta[t] and k_t."""
        mean[t] = layer_mean(h)
        std[t] = layer_std(h, mean[t])
        if threshold_mode == "true":
            theta64 = adaptive_threshold(mean[t], std[t], f_c)              # Eq. 5
        else:
            theta64 = estimated_threshold(lam, f_c, v_th)                   # Eq. 5
        theta[t] = dtype(theta64)
        if tgo:
            driver = std[t] if tgo_driver == "std" else theta64
            p[t] = dtype(tgo_width(width, driver, v_th))                     # Eq. 7
        else:
            p[t] = dtype(width)
        check_adaptive_step(float(theta[t]), float(p[t]), mean[t], std[t], v_th, t)

    arrays = run_loop(options, x, v, lam, v_reset, theta, p, after_charge=adapt)
    return AdaptiveResult(
        **arrays, x=x, options=options, decay=lam, threshold=theta, sg_param=p,
        v_reset=v_reset, threshold_is_scalar=False, sg_param_is_scalar=False,
        v_init_shape=v_init_shape, mean=mean, std=std)
