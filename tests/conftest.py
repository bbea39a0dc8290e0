"""Hypothesis settings for the whole suite: no deadline (the first call of a compiled or
traced op is slow), and a bounded number of examples so that the suite stays in budget on a
2-core machine. SPIKEGRAD_EXAMPLES scales every test's example count (default 1.0)."""

import os

from hypothesis import HealthCheck, settings

settings.register_profile(
    "spikegrad", deadline=None, print_blob=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
settings.load_profile("spikegrad")

SCALE = float(os.environ.get("SPIKEGRAD_EXAMPLES", "1.0"))


def examples(n):
    """The example budget of a test, scaled by SPIKEGRAD_EXAMPLES."""
    return max(1, int(n * SCALE))
