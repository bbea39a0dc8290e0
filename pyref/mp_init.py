"""MP-Init (the MP-Init/TrSG paper, Sec. 4.3): start every window from the layer's running mean
of the membrane, docs/spec.md §7.

    count, total = active_membrane_sum(output, v_last)    # one training window
    mu_batch = batch_mean(count, total)
    running_mean = update_running_mean(running_mean, mu_batch, momentum=0.1)
    result = trlif_forward(x, ...)                          # the whole TrLIF layer, one window

The statistic is over *active* neurons only (Sec. 3: silent neurons "neither contribute to
information propagation nor exhibit statistical properties similar to those of active
neurons"): a neuron is active if its output was nonzero at some step of the window.

Reduction order (fixed, so that every run, thread count and number of data-parallel
processes gives the same bits): the membrane is taken in float64; each sample's (row's)
active membranes are summed with NumPy's pairwise sum along the row; the per-sample partial
sums, from every sample of every process, are then added with `math.fsum`, which is
correctly rounded and therefore independent of their order. Counts are integers (exact).
"""

from __future__ import annotations

import math

import numpy as np

from . import neuron

__all__ = ["DEFAULT_MOMENTUM", "active_mask", "per_sample_sums", "active_membrane_sum",
           "batch_mean", "update_running_mean", "trlif_forward"]

DEFAULT_MOMENTUM = 0.1   # the released code's m (docs/spec.md §7)


def active_mask(output):
    """docs/spec.md §7: a neuron is active if it emitted a nonzero output at any step. output [T, B, ...]
    -> bool [B, ...]."""
    return (np.asarray(output) != 0).any(axis=0)


def per_sample_sums(output, v_last):
    """Per sample b: (number of active neurons, sum of v[T-1] over them in float64).
    output [T, B, ...], v_last [B, ...] -> two float64 arrays [B]."""
    active = active_mask(output)
    B = active.shape[0]
    active = active.reshape(B, -1)
    v = np.asarray(v_last, dtype=np.float64).reshape(B, -1)
    counts = active.sum(axis=1).astype(np.float64)
    sums = np.where(active, v, 0.0).sum(axis=1)        # pairwise, along each row
    return counts, sums


def active_membrane_sum(output, v_last):
    """(count, total) over the whole batch; the per-sample sums are combined with fsum."""
    counts, sums = per_sample_sums(output, v_last)
    return math.fsum(counts), math.fsum(sums)


def batch_mean(count, total):
    """docs/spec.md §7: mu_batch = sum(active * v[T-1]) / max(sum(active), 1)."""
    return total / max(count, 1.0)


def update_running_mean(running_mean, mu_batch, momentum=DEFAULT_MOMENTUM):
    """docs/spec.md §7: mu <- (1 - m) mu + m mu_batch, in float64 (the released code's coefficients;
    the paper's Algorithm 1 writes them the other way round)."""
    return (1 - momentum) * float(running_mean) + momentum * float(mu_batch)


def trlif_forward(x, *, decay, threshold, running_mean=0.0, training=True,
                  momentum=DEFAULT_MOMENTUM, decay_input=True, scale="threshold_robust",
                  surrogate="rect", sg_param=1.0, mp_init=True, detach_reset=False):
    """One window of the TrLIF layer (the MP-Init/TrSG paper): MP-Init + the threshold-robust neuron.

    x [T, B, ...] (the batch axis matters: it fixes the reduction order); `decay` is
    lam = 1/tau and `threshold` theta, both already in x's dtype (the values the layer
    computed from its parameters w and k). Returns
    (NeuronResult, new running mean): the running mean moves only in training with
    mp_init (docs/spec.md §7), and the membrane starts from it (rounded to x's dtype) only with
    mp_init; otherwise from 0."""
    x = np.asarray(x)
    dtype = x.dtype.type
    v_init = dtype(running_mean) if mp_init else None
    result = neuron.forward(x, charge="decay_input" if decay_input else "no_decay_input",
                            decay=decay, threshold=threshold, reset="soft", v_reset=0.0,
                            detach_reset=detach_reset, scale=scale, surrogate=surrogate,
                            sg_param=sg_param, v_init=v_init)
    new_mean = float(running_mean)
    if mp_init and training:
        count, total = active_membrane_sum(result.output, result.v_last)
        new_mean = update_running_mean(running_mean, batch_mean(count, total), momentum)
    return result, new_mean
