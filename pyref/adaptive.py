"""DS-ATGO: the adaptive threshold (docs/spec.md §2, "AT") and the TGO width schedule
(docs/spec.md §5), forward in NumPy. The backward is spikegrad.ref.backward: theta[t] and the widths
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
C++ and CUDA kernels (`ordered_sum`: blocks of 512 neurons, 8 interleaved lanes per block,
lanes combined pairwise; then the block sums in the canonical order of
`combine_partial_sums`: 256 strided lanes, a warp shuffle tree, a tree over the 8 warps) so
that the C++ and CUDA forwards are bit-identical to this one. np.sum is pairwise and is not
used where bits matter. theta and k_t are computed in float64 from the float64 statistics
and rounded once to the working dtype; the tanh of k_t is `portable_tanh`, spikegrad's own
fixed algorithm (fdlibm's), which the C++ and CUDA code run from the same source
(cpp/include/spikegrad/portable.hpp), so k_t is bit-identical too.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from .neuron import NeuronOptions, NeuronResult, _working_dtype, initial_membrane, run_loop

__all__ = ["AdaptiveResult", "forward", "block_partial_sums", "combine_partial_sums",
           "ordered_sum", "layer_mean", "layer_std", "adaptive_threshold",
           "estimated_threshold", "tgo_width", "check_adaptive_step", "update_running_threshold",
           "portable_tanh", "portable_expm1", "THRESHOLD_MODES", "TGO_DRIVERS", "BLOCK", "LANES",
           "COMBINE_LANES", "WARP"]

THRESHOLD_MODES = ("true", "estimated")
TGO_DRIVERS = ("std", "threshold")
BLOCK = 512  # kNeuronBlock of cpp/include/spikegrad/neuron_cpu.hpp
LANES = 8    # the interleaved accumulators of detail::block_sum
COMBINE_LANES = 256  # kOrderedSumLanes of cpp/include/spikegrad/portable.hpp (= kBlockThreads)
WARP = 32            # kOrderedSumWarp: the lanes of one shuffle tree


# --------------------------------------------------------------------------------------
# The fixed-order float64 sum (the C++ kernels' detail::block_sum, then ordered_sum)
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


def _warp_trees(lanes):
    """The shuffle tree over the last axis of `lanes` (32 lanes, float64), for every row at
    once: for offset 16, 8, 4, 2, 1, lane l gets lane[l] + lane[l + offset] (only lanes
    l < offset feed lane 0, so only they are computed). Returns lane 0 of each row."""
    lanes = np.array(lanes, dtype=np.float64)
    offset = WARP // 2
    while offset > 0:
        lanes[..., :offset] = lanes[..., :offset] + lanes[..., offset:2 * offset]
        offset //= 2
    return lanes[..., 0]


def combine_partial_sums(partials):
    """The partial sums (the blocks') added in the canonical order (ordered_sum of
    cpp/include/spikegrad/portable.hpp, the CUDA second stage's order): lane k of 256 adds
    partials k, k + 256, k + 512, ... in order starting from 0.0; then per warp of 32 lanes
    the shuffle tree (offsets 16, 8, 4, 2, 1; lane 0 keeps the total); then the 8 warps'
    totals through the same tree (lanes 8..31 zero). Returns a Python float (a float64).
    A data-parallel caller concatenates the ranks' partials in rank order.

    The partials are padded with zeros to a multiple of 256, which leaves every lane
    unchanged (a lane starts from +0.0, so it is never -0.0); np.cumsum is a sequential scan,
    so each lane is the left-to-right sum the C++ loop makes."""
    partials = np.asarray(partials, dtype=np.float64).ravel()
    rows = max(1, -(-partials.size // COMBINE_LANES))
    padded = np.zeros(rows * COMBINE_LANES)
    padded[:partials.size] = partials
    start = np.zeros((1, COMBINE_LANES))                # each lane starts from +0.0
    lanes = np.cumsum(np.concatenate([start, padded.reshape(rows, COMBINE_LANES)]),
                      axis=0)[-1]
    warp_totals = np.zeros(WARP)                        # zeros past the last warp
    warp_totals[:COMBINE_LANES // WARP] = _warp_trees(lanes.reshape(-1, WARP))
    return float(_warp_trees(warp_totals))


def ordered_sum(terms):
    """sum(terms) in float64, in the fixed order of the C++ kernels."""
    return combine_partial_sums(block_partial_sums(terms))


# --------------------------------------------------------------------------------------
# docs/spec.md §2 (AT) and docs/spec.md §5 (TGO): one function per equation, on float64 scalars
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
    """Paper Eq. 7 (docs/spec.md §5): k_t = k0 * (1 - tanh(V_th - d_t)) for d_t <= V_th, else
    k0 * (1 + tanh(d_t - V_th)); tanh is odd, so both are k0 * (1 + tanh(d_t - V_th)).
    tanh is portable_tanh, the same bits as the C++ and CUDA kernels."""
    return float(k0) * (1.0 + portable_tanh(float(driver) - float(v_th)))


# --------------------------------------------------------------------------------------
# tanh by a fixed algorithm: the twin of detail::portable_tanh and detail::portable_expm1
# (cpp/include/spikegrad/portable.hpp), with the same operations in the same order. Python
# floats are IEEE doubles, and CPython evaluates each operation on its own (no FMA).
# fdlibm's s_tanh.c on s_expm1.c (FreeBSD msun; glibc's generic double tanh), the high-word
# tests written as comparisons of |x| with the doubles whose high words they test.
# --------------------------------------------------------------------------------------

_H = float.fromhex
_O_THRESHOLD = _H("0x1.62e42fefa39efp+9")
_LN2_HI, _LN2_LO = _H("0x1.62e42feep-1"), _H("0x1.a39ef35793c76p-33")
_INVLN2 = _H("0x1.71547652b82fep+0")
_HUGE = 1.0e+300
_Q1, _Q2, _Q3, _Q4, _Q5 = (_H("-0x1.11111111110f4p-5"), _H("0x1.a01a019fe5585p-10"),
                           _H("-0x1.4ce199eaadbb7p-14"), _H("0x1.0cfca86e65239p-18"),
                           _H("-0x1.afdb76e09c32dp-23"))
_MAX = _H("0x1.fffffffffffffp+1023")
_56_LN2, _709, _HALF_LN2, _3HALF_LN2 = (_H("0x1.3687ap+5"), _H("0x1.62e42p+9"),
                                        _H("0x1.62e43p-2"), _H("0x1.0a2b2p+0"))
_2_TO_M54, _2_TO_M55, _2_TO_1023 = _H("0x1p-54"), _H("0x1p-55"), _H("0x1p1023")


def _power_of_two(k):
    """2^k exactly (detail::power_of_two builds the bits; ldexp of 1.0 is exact)."""
    return math.ldexp(1.0, k)


def portable_expm1(x):
    """exp(x) - 1 (fdlibm's expm1), the twin of detail::portable_expm1."""
    x = float(x)
    if x != x:
        return x + x                                    # NaN
    negative = x < 0
    ax = -x if negative else x
    if ax >= _56_LN2:                        # |x| >= 56 ln2
        if ax >= _709:                    # |x| >= 709.78
            if ax > _MAX:
                return -1.0 if negative else x          # exp(+-inf) - 1 = inf, -1
            if x > _O_THRESHOLD:
                return _HUGE * _HUGE                    # overflow: inf
        if negative:
            return -1.0                                 # x < -56 ln2: -1 (rounded)
    c = 0.0
    if ax >= _HALF_LN2:                        # |x| > 0.5 ln2
        if ax < _3HALF_LN2:                     # and |x| < 1.5 ln2
            if not negative:
                hi, lo, k = x - _LN2_HI, _LN2_LO, 1
            else:
                hi, lo, k = x + _LN2_HI, -_LN2_LO, -1
        else:
            k = int(_INVLN2 * x + (-0.5 if negative else 0.5))   # truncated toward 0
            t = float(k)
            hi = x - t * _LN2_HI
            lo = t * _LN2_LO
        x = hi - lo
        c = (hi - x) - lo
    elif ax < _2_TO_M54:                            # |x| < 2^-54: x itself
        return x
    else:
        k = 0
    hfx = 0.5 * x
    hxs = x * hfx
    r1 = 1.0 + hxs * (_Q1 + hxs * (_Q2 + hxs * (_Q3 + hxs * (_Q4 + hxs * _Q5))))
    t = 3.0 - r1 * hfx
    e = hxs * ((r1 - t) / (6.0 - x * t))
    if k == 0:
        return x - (x * e - hxs)
    e = (x * (e - c) - c)
    e -= hxs
    if k == -1:
        return 0.5 * (x - e) - 0.5
    if k == 1:
        if x < -0.25:
            return -2.0 * (e - (x + 0.5))
        return 1.0 + 2.0 * (x - e)
    if k <= -2 or k > 56:
        y = 1.0 - (e - x)
        if k == 1024:
            y = y * 2.0 * _2_TO_1023
        else:
            y = y * _power_of_two(k)
        return y - 1.0
    if k < 20:
        y = (1.0 - _power_of_two(-k)) - (e - x)
        y = y * _power_of_two(k)
    else:
        y = x - (e + _power_of_two(-k))
        y += 1.0
        y = y * _power_of_two(k)
    return y


def portable_tanh(x):
    """tanh(x) (fdlibm's tanh), the twin of detail::portable_tanh: within 2 ulp of the
    correctly rounded tanh; NaN stays NaN, +-0 stays +-0."""
    x = float(x)
    if x != x:
        return x + x                                    # NaN
    ax = -x if x < 0 else x
    if ax < 22.0:
        if ax < _2_TO_M55:
            return x * (1.0 + x)                        # tanh(tiny) = tiny; +-0 stay
        if ax >= 1.0:
            t = portable_expm1(2.0 * ax)
            z = 1.0 - 2.0 / (t + 2.0)
        else:
            t = portable_expm1(-2.0 * ax)
            z = -t / (t + 2.0)
    else:
        z = 1.0                                         # |x| >= 22: +-1
    return -z if x < 0 else z


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
    """docs/spec.md §2: r[t] <- (1 - m) r[t] + m theta[t], in the dtype of `running`, for the T
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
    """DS-ATGO's training forward over the T steps of x ([T, ...]): docs/spec.md §2 (AT) and 5 (TGO).

    The threshold of every step comes from h[t] (or the estimated form), the rect
    surrogate's width from the TGO schedule (`tgo=True`) or is `width` (k0) throughout.
    The scale is absolute and the spike is H(h - theta) (docs/spec.md §9's DS-ATGO preset); charge
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
