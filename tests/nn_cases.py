"""Helpers of the spikegrad.nn layer tests (test_nn_*.py): inputs drawn like the neuron
tests' (T = 1, B = 1, negative inputs, huge and tiny thresholds, inputs exactly at the
threshold), and the comparison of a layer's window against the reference."""

from __future__ import annotations

import numpy as np
import torch
from hypothesis import strategies as st

from spikegrad import ref
from spikegrad.testing.compare import assert_bitwise_equal, assert_close

THRESHOLDS = st.one_of(st.sampled_from([1.0, 0.5, 2.0, 1e-3, 1e3]), st.floats(0.05, 4.0))


@st.composite
def layer_input(draw, threshold, max_T=8, max_B=4, max_F=40, dtype=None):
    """x [T, B, F] at the scale of `threshold`, a fraction of it exactly at the threshold,
    with the dtype drawn (float32 / float64) unless given; and a seed for upstream grads."""
    T = draw(st.one_of(st.just(1), st.integers(1, max_T)))
    B = draw(st.one_of(st.just(1), st.integers(1, max_B)))
    F = draw(st.one_of(st.just(1), st.integers(1, max_F)))
    dt = dtype or draw(st.sampled_from([np.float32, np.float64]))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    magnitude = abs(threshold)
    spread = draw(st.sampled_from([0.5, 1.0, 3.0]))
    x = rng.normal(0.6 * magnitude, spread * magnitude + 1e-3, (T, B, F)).astype(dt)
    edge = rng.random(x.shape) < draw(st.sampled_from([0.0, 0.1, 0.5]))
    x[edge] = dt(threshold)
    return x, int(rng.integers(0, 2**32 - 1))


def upstream(x, seed):
    return np.random.default_rng(seed).normal(size=x.shape).astype(x.dtype)


def check_window(out, x_tensor, expected, grad_out, what):
    """The layer's output against the reference result `expected` (on x as [T, N] or
    [T, B, ...]): bit-identical; then dL/dx of (out * grad_out).sum() within the bound of
    spikegrad.testing.compare, scaled by ref.error_scale."""
    T = x_tensor.shape[0]
    dtype = x_tensor.detach().numpy().dtype
    assert_bitwise_equal(out.detach().numpy().reshape(T, -1),
                         expected.output.reshape(T, -1), f"{what}: output")
    g = grad_out.reshape(expected.x.shape)
    (grad_x,) = torch.autograd.grad((out * torch.from_numpy(grad_out)).sum(), x_tensor)
    e = ref.backward(expected, g)
    scale = ref.error_scale(expected, g)
    assert_close(grad_x.numpy().reshape(T, -1), e.x.reshape(T, -1), f"{what}: grad x",
                 dtype=dtype, T=T, magnitude=scale.x.reshape(T, -1))
    return e


def value_in(value, dtype):
    """A layer's float or 0-d tensor parameter as the float the kernel sees (x's dtype)."""
    if isinstance(value, torch.Tensor):
        return float(value.detach().to(torch.float64 if dtype == np.float64
                                        else torch.float32))
    return float(np.asarray(value, dtype=dtype))
