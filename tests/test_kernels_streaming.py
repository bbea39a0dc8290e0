"""The forward's streaming-store path (outputs of 16 MiB and more, neuron_cpu.hpp
kStreamingStoreBytes): bit for bit the reference, with rows that start off a 16-byte boundary
(N odd), with and without the membrane, for 1 and 2 threads. NumPy only.

The small cases of tests/test_kernels.py never reach this path: these arrays are just above
the size where it starts."""

import numpy as np
import pytest

from spikegrad import kernels, ref
from spikegrad.testing.compare import assert_bitwise_equal

STREAMING_BYTES = 1 << 24


@pytest.mark.parametrize("dtype, T, N, options", [
    # N odd: every row after the first starts off a 16-byte boundary (scalar prologue)
    (np.float32, 2, (1 << 21) + 3, dict(charge="mul", reset="hard", scale="absolute")),
    (np.float64, 1, (1 << 21) + 1, dict(charge="decay_input", reset="soft", scale="relative")),
    (np.float32, 4, (1 << 20) + 513, dict(charge="if", reset="none",
                                          scale="threshold_robust", surrogate="sigmoid",
                                          smooth=True)),
])
@pytest.mark.parametrize("return_membrane", [True, False])
def test_streaming_forward_matches_the_reference(dtype, T, N, options, return_membrane):
    assert T * N * np.dtype(dtype).itemsize >= STREAMING_BYTES   # the streaming path
    rng = np.random.default_rng(N + T)
    theta = np.linspace(0.75, 1.25, T)
    x = rng.normal(0.5, 1.0, (T, N)).astype(dtype)
    x[:, ::7] = theta.astype(dtype)[:, None]             # inputs exactly at the threshold
    kw = dict(decay=0.25, threshold=theta, v_init=rng.normal(0, 0.5, N).astype(dtype),
              **options)
    expected = ref.forward(x, **kw)
    for threads in (1, 2):
        actual = kernels.forward(x, return_membrane=return_membrane, num_threads=threads, **kw)
        if kw.get("smooth"):
            # smooth mode is compared within a bound elsewhere; here: 1 and 2 threads and the
            # plain path (a copy of this case just below the streaming size) agree exactly
            small = kernels.forward(x[:, :1000], num_threads=1, **dict(kw, v_init=kw["v_init"][:1000]))
            assert_bitwise_equal(actual.output[:, :1000], small.output, "smooth output")
            continue
        assert_bitwise_equal(actual.output, expected.output, f"output, {threads} threads")
        assert_bitwise_equal(actual.v_last, expected.v_last, f"v_last, {threads} threads")
        if return_membrane:
            assert_bitwise_equal(actual.membrane, expected.membrane,
                                 f"membrane, {threads} threads")
        else:
            assert actual.membrane is None
