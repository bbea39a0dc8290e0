"""The PNB loss written directly from the CF paper's Eqs. 18-22, element by element in
Python floats: the oracle of the PNB tests (tests/kernels/test_multilevel.py,
tests/ops/test_multilevel_ops.py)."""

import math

import numpy as np


def transcription(hs, theta_p=1.0, theta_n=1.0, K=2, eps=1e-8, pooled=True):
    """Eqs. 18-22 of the CF paper, element by element in Python floats (float64)."""
    def region_means(values):
        mu_p, mu_n = [], []
        for k in range(1, K + 1):
            num = den = 0.0
            for u in values:
                if (k - 1) * theta_p < u <= k * theta_p:                 # Eq. 18
                    w = math.exp(-abs(k * theta_p - u))
                    num, den = num + u * w, den + w
            mu_p.append(num / (den + eps))                               # Eq. 20
            num = den = 0.0
            for u in values:
                if -k * theta_n <= u < -(k - 1) * theta_n:               # Eq. 19
                    w = math.exp(-abs(-k * theta_n - u))
                    num, den = num + u * w, den + w
            mu_n.append(num / (den + eps))                               # Eq. 21
        return mu_p, mu_n

    def loss(values):
        mu_p, mu_n = region_means(values)
        return sum(abs(math.log(abs(p) / (abs(n) + eps) + eps))
                   for p, n in zip(mu_p, mu_n)) / K                       # Eq. 22

    layers = [np.asarray(h, dtype=np.float64).ravel().tolist() for h in hs]
    if pooled:
        return loss([u for layer in layers for u in layer])
    return sum(loss(layer) for layer in layers) / len(layers)
