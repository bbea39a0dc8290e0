"""The layers' statistics, computed by the package itself: the fixed-order float64 sum of
the adaptive threshold's data-parallel path, DS-ATGO's estimated threshold, and MP-Init's
running mean.

spikegrad.ref computes the same numbers independently (spikegrad.ref.adaptive,
spikegrad.ref.mp_init); tests/nn/test_statistics.py checks that both give the same bits.
Each formula keeps the reference's order of operations, which is what makes them equal.
"""

from __future__ import annotations

import math

import numpy as np

__all__ = ["BLOCK", "combine_partial_sums", "estimated_threshold", "per_sample_sums",
           "batch_mean", "update_running_mean"]

BLOCK = 512          # the C++ kernels' neuron block: one float64 partial sum per block
COMBINE_LANES = 256  # the lanes of the canonical combination of the partial sums
WARP = 32            # the lanes of one shuffle tree


# --------------------------------------------------------------------------------------
# docs/spec.md §2 "AT": the partial sums of every block added in the kernels' canonical order
# --------------------------------------------------------------------------------------

def _warp_trees(lanes):
    """The shuffle tree over the last axis (32 lanes, float64): for offset 16, 8, 4, 2, 1,
    lane l gets lane[l] + lane[l + offset]. Returns lane 0 of each row."""
    lanes = np.array(lanes, dtype=np.float64)
    offset = WARP // 2
    while offset > 0:
        lanes[..., :offset] = lanes[..., :offset] + lanes[..., offset:2 * offset]
        offset //= 2
    return lanes[..., 0]


def combine_partial_sums(partials):
    """The blocks' float64 partial sums added in the kernels' order: lane k of 256 adds
    partials k, k + 256, ... in order from 0.0; then per warp of 32 lanes the shuffle tree;
    then the 8 warps' totals through the same tree (lanes 8..31 zero). Returns a float.

    Zero padding to a multiple of 256 leaves every lane unchanged (a lane starts from +0.0);
    np.cumsum is a sequential scan, the left-to-right sum of the C++ loop."""
    partials = np.asarray(partials, dtype=np.float64).ravel()
    rows = max(1, -(-partials.size // COMBINE_LANES))
    padded = np.zeros(rows * COMBINE_LANES)
    padded[:partials.size] = partials
    start = np.zeros((1, COMBINE_LANES))
    lanes = np.cumsum(np.concatenate([start, padded.reshape(rows, COMBINE_LANES)]),
                      axis=0)[-1]
    warp_totals = np.zeros(WARP)
    warp_totals[:COMBINE_LANES // WARP] = _warp_trees(lanes.reshape(-1, WARP))
    return float(_warp_trees(warp_totals))


def estimated_threshold(lam, f_c, v_th):
    """docs/spec.md §2, DS-ATGO's "estimated" threshold: f_c * sqrt(1 + lam^2) * V_th."""
    lam = float(lam)
    return f_c * math.sqrt(1 + lam * lam) * v_th


# --------------------------------------------------------------------------------------
# docs/spec.md §7, MP-Init: the mean membrane of the active neurons at the last step
# --------------------------------------------------------------------------------------

def per_sample_sums(output, v_last):
    """Per sample b: (number of active neurons, sum of v[T-1] over them in float64), a neuron
    being active if its output was nonzero at some step. output [T, B, ...], v_last [B, ...]
    -> two float64 arrays [B]; each row is NumPy's pairwise sum, and the caller combines the
    rows (of every process) with math.fsum, which does not depend on their order."""
    active = (np.asarray(output) != 0).any(axis=0)
    B = active.shape[0]
    active = active.reshape(B, -1)
    v = np.asarray(v_last, dtype=np.float64).reshape(B, -1)
    counts = active.sum(axis=1).astype(np.float64)
    sums = np.where(active, v, 0.0).sum(axis=1)
    return counts, sums


def batch_mean(count, total):
    """mu_batch = sum(active * v[T-1]) / max(sum(active), 1)."""
    return total / max(count, 1.0)


def update_running_mean(running_mean, mu_batch, momentum):
    """mu <- (1 - m) mu + m mu_batch, in float64 (the released code's coefficients)."""
    return (1 - momentum) * float(running_mean) + momentum * float(mu_batch)
