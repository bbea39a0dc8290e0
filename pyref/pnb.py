"""The positive-negative balanced (PNB) loss of docs/spec.md section 6 (the CF paper's Eqs. 18-22).

    sums = partial_sums(h, theta_p=1.0, theta_n=1.0, k=2)        # [K, 2, 2] float64
    value = loss(membranes, theta_p=1.0, theta_n=1.0, k=2, pooled=True)
    grads = loss_backward(membranes, ...)                         # dL/dh per layer

Regions (Eqs. 18-19), with magnitudes theta_P, theta_N > 0 and k = 1..K:

    R+_k = ((k-1) theta_P, k theta_P]          R-_k = [-k theta_N, -(k-1) theta_N)

(h = 0 and values beyond K theta belong to none; the bounds k theta are computed in the
dtype of h, like the CF neuron's levels). In each region, weights w = exp(-|level - h|)
with level = k theta_P or -k theta_N, and the partial sums S_w = sum w, S_hw = sum h w.
Then (Eqs. 20-22), with eps = 1e-8:

    mu+_k = S_hw+ / (S_w+ + eps)      mu-_k = S_hw- / (S_w- + eps)
    L = (1/K) sum_k |log(|mu+_k| / (|mu-_k| + eps) + eps)|

`pooled=True` (the default) adds the partial sums of all layers (in layer order) before
Eqs. 20-22; `pooled=False` computes L per layer and averages. Region membership carries no
gradient and sign(0) = 0 (the derivative of |.| at 0).

Partial sums are accumulated in float64 in one fixed order, which the C++ kernel
(`cpp/include/spikegrad/pnb_cpu.hpp`) uses too: the elements of h in C order are cut into
blocks of PNB_BLOCK; within a block, 8 interleaved lanes (element i into lane i mod 8) are
summed sequentially and the lanes combined as ((0+1)+(2+3))+((4+5)+(6+7)); the blocks are
added in order. Only exp may differ between backends (by its ulps).
"""

from __future__ import annotations

import numpy as np

from . import formulas as F

__all__ = ["PNB_BLOCK", "EPS", "regions", "contributions", "fixed_order_sum", "partial_sums",
           "loss_from_sums", "loss", "loss_backward"]

PNB_BLOCK = 4096
EPS = 1e-8
POSITIVE, NEGATIVE = 0, 1
SUM_W, SUM_HW = 0, 1


def check(theta_p, theta_n, k, eps):
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)):
        raise TypeError(f"k must be an int, got {type(k).__name__}")
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    for name, value in (("theta_p", theta_p), ("theta_n", theta_n)):
        if not np.isfinite(value) or value <= 0:
            raise ValueError(f"{name} must be a finite magnitude > 0, got {float(value)}")
    if not np.isfinite(eps) or eps < 0:
        raise ValueError(f"eps must be finite and >= 0, got {eps}")


def regions(h, theta_p, theta_n, k):
    """For level k and each sign: (in_region mask, the level's signed value in float64).
    Eq. 18: (k-1) theta_P < h <= k theta_P; Eq. 19: -k theta_N <= h < -(k-1) theta_N."""
    theta_p = h.dtype.type(theta_p)
    theta_n = h.dtype.type(theta_n)
    top_p, bottom_p = F.level(k, theta_p), F.level(k - 1, theta_p)
    top_n, bottom_n = -F.level(k, theta_n), -F.level(k - 1, theta_n)
    in_p = (bottom_p < h) & (h <= top_p)                                    # Eq. 18
    in_n = (top_n <= h) & (h < bottom_n)                                    # Eq. 19
    return (in_p, np.float64(top_p)), (in_n, np.float64(top_n))


def contributions(h, theta_p, theta_n, k):
    """Per element of h and each sign of level k: (w, h w) in float64, zero outside the
    region; w = exp(-|level - h|) (Eqs. 20-21)."""
    h64 = h.astype(np.float64)
    out = []
    for mask, lvl in regions(h, theta_p, theta_n, k):
        w = np.where(mask, np.exp(-np.abs(lvl - h64)), 0.0)
        out.append((w, np.where(mask, h64 * w, 0.0)))
    return out


def fixed_order_sum(c):
    """sum(c) in float64 in the kernel's order (module docstring). c: 1-D float64."""
    n = c.size
    if n == 0:
        return 0.0
    blocks = -(-n // PNB_BLOCK)
    padded = np.zeros(blocks * PNB_BLOCK)
    padded[:n] = c
    lanes = padded.reshape(blocks, PNB_BLOCK // 8, 8)
    acc = np.cumsum(lanes, axis=1)[:, -1, :]          # sequential per lane: cumsum's order
    per_block = (((acc[:, 0] + acc[:, 1]) + (acc[:, 2] + acc[:, 3]))
                 + ((acc[:, 4] + acc[:, 5]) + (acc[:, 6] + acc[:, 7])))
    return float(np.cumsum(per_block)[-1])            # blocks in order


def partial_sums(h, theta_p=1.0, theta_n=1.0, k=2):
    """[K, 2, 2] float64: sums[k-1, sign, (S_w, S_hw)], sign 0 = R+_k, 1 = R-_k."""
    h = np.asarray(h)
    if h.dtype not in (np.float32, np.float64):
        h = h.astype(np.float64)
    check(theta_p, theta_n, k, 0.0)
    flat = h.reshape(-1)
    sums = np.zeros((k, 2, 2))
    for level_k in range(1, k + 1):
        for sign, (w, hw) in enumerate(contributions(flat, theta_p, theta_n, level_k)):
            sums[level_k - 1, sign, SUM_W] = fixed_order_sum(w)
            sums[level_k - 1, sign, SUM_HW] = fixed_order_sum(hw)
    return sums


def loss_from_sums(sums, eps=EPS):
    """Eqs. 20-22 from one [K, 2, 2] set of partial sums, in float64."""
    mu_p = sums[:, POSITIVE, SUM_HW] / (sums[:, POSITIVE, SUM_W] + eps)    # Eq. 20
    mu_n = sums[:, NEGATIVE, SUM_HW] / (sums[:, NEGATIVE, SUM_W] + eps)    # Eq. 21
    return float(np.mean(np.abs(np.log(np.abs(mu_p) / (np.abs(mu_n) + eps) + eps))))  # 22


def _layers(membranes):
    if isinstance(membranes, (list, tuple)):
        if len(membranes) == 0:
            raise ValueError("membranes must not be an empty list")
        return [np.asarray(m) for m in membranes]
    return [np.asarray(membranes)]


def loss(membranes, *, theta_p=1.0, theta_n=1.0, k=2, eps=EPS, pooled=True):
    """L_pnb over one array or a list of arrays (one per CF layer)."""
    check(theta_p, theta_n, k, eps)
    sums = [partial_sums(m, theta_p, theta_n, k) for m in _layers(membranes)]
    if pooled:
        total = sums[0].copy()
        for s in sums[1:]:
            total = total + s
        return loss_from_sums(total, eps)
    return float(np.mean([loss_from_sums(s, eps) for s in sums]))


def _loss_grad_sums(sums, eps):
    """dL/d(sums) for one [K, 2, 2] set (the chain rule through Eqs. 20-22)."""
    K = sums.shape[0]
    sw_p, shw_p = sums[:, POSITIVE, SUM_W], sums[:, POSITIVE, SUM_HW]
    sw_n, shw_n = sums[:, NEGATIVE, SUM_W], sums[:, NEGATIVE, SUM_HW]
    mu_p, mu_n = shw_p / (sw_p + eps), shw_n / (sw_n + eps)
    ratio = np.abs(mu_p) / (np.abs(mu_n) + eps)
    inner = np.log(ratio + eps)
    g_inner = np.sign(inner) / K / (ratio + eps)                 # d|log(r + eps)|/dr / K
    g_mu_p = g_inner * np.sign(mu_p) / (np.abs(mu_n) + eps)
    g_mu_n = g_inner * -np.abs(mu_p) / (np.abs(mu_n) + eps) ** 2 * np.sign(mu_n)
    g = np.zeros_like(sums)
    g[:, POSITIVE, SUM_HW] = g_mu_p / (sw_p + eps)
    g[:, POSITIVE, SUM_W] = -g_mu_p * shw_p / (sw_p + eps) ** 2
    g[:, NEGATIVE, SUM_HW] = g_mu_n / (sw_n + eps)
    g[:, NEGATIVE, SUM_W] = -g_mu_n * shw_n / (sw_n + eps) ** 2
    return g


def sums_backward(h, grad_sums, theta_p, theta_n, k):
    """dL/dh from dL/d(sums) of one layer: for h in a region of level value c,
    dw/dh = w sign(c - h), d(h w)/dh = w + h dw/dh. Float64, shaped like h."""
    h64 = np.asarray(h, dtype=np.float64)
    grad = np.zeros_like(h64)
    for level_k in range(1, k + 1):
        for sign, (mask, lvl) in enumerate(regions(np.asarray(h), theta_p, theta_n, level_k)):
            w = np.where(mask, np.exp(-np.abs(lvl - h64)), 0.0)
            dw = w * np.sign(lvl - h64)
            g_w, g_hw = grad_sums[level_k - 1, sign]
            grad = grad + np.where(mask, g_w * dw + g_hw * (w + h64 * dw), 0.0)
    return grad


def loss_backward(membranes, *, theta_p=1.0, theta_n=1.0, k=2, eps=EPS, pooled=True):
    """dL_pnb/dh for each layer (a list, float64, shaped like each membrane)."""
    check(theta_p, theta_n, k, eps)
    layers = _layers(membranes)
    sums = [partial_sums(m, theta_p, theta_n, k) for m in layers]
    if pooled:
        total = sums[0].copy()
        for s in sums[1:]:
            total = total + s
        g = _loss_grad_sums(total, eps)
        grad_sums = [g] * len(layers)
    else:
        grad_sums = [_loss_grad_sums(s, eps) / len(layers) for s in sums]
    return [sums_backward(m, g, theta_p, theta_n, k) for m, g in zip(layers, grad_sums)]
