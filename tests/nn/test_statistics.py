"""The layers compute their statistics themselves (spikegrad._statistics, spikegrad._options):
every function gives the same bits, and raises the same errors, as the reference's."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from conftest import examples
from spikegrad import _options, _statistics
from spikegrad.ref import adaptive as ref_adaptive
from spikegrad.ref import mp_init as ref_mp_init
from spikegrad.ref import multilevel as ref_multilevel
from spikegrad.ref import neuron as ref_neuron
from spikegrad.ref import pnb as ref_pnb

UGLY = st.one_of(st.floats(allow_nan=True, allow_infinity=True, width=64),
                 st.sampled_from([0.0, -0.0, 5e-324, -5e-324, 1e308, -1e308, 1.0, -1.0]))
FLOAT64S = hnp.arrays(np.float64, st.integers(0, 1300), elements=UGLY)
FINITE = st.floats(-1e6, 1e6, allow_nan=False, allow_infinity=False)


def _quiet(call):
    """Ugly inputs overflow both implementations alike; NumPy's warnings are not the subject."""
    with np.errstate(all="ignore"):
        return call()


def _same_bits(a, b):
    assert np.asarray(a, dtype=np.float64).tobytes() == np.asarray(b, dtype=np.float64).tobytes()


@settings(max_examples=examples(80))
@given(FLOAT64S)
def test_combine_partial_sums_equals_the_reference(partials):
    _same_bits(_quiet(lambda: _statistics.combine_partial_sums(partials)),
               _quiet(lambda: ref_adaptive.combine_partial_sums(partials)))


@settings(max_examples=examples(40))
@given(hnp.arrays(np.float64, st.integers(600, 70_000), elements=FINITE))
def test_combine_partial_sums_of_many_blocks_equals_the_reference(partials):
    _same_bits(_quiet(lambda: _statistics.combine_partial_sums(partials)),
               _quiet(lambda: ref_adaptive.combine_partial_sums(partials)))


def test_block_equals_the_reference():
    assert _statistics.BLOCK == ref_adaptive.BLOCK
    assert _statistics.COMBINE_LANES == ref_adaptive.COMBINE_LANES
    assert _statistics.WARP == ref_adaptive.WARP


@settings(max_examples=examples(100))
@given(UGLY, UGLY, UGLY)
def test_estimated_threshold_equals_the_reference(lam, f_c, v_th):
    _same_bits(_statistics.estimated_threshold(lam, f_c, v_th),
               ref_adaptive.estimated_threshold(lam, f_c, v_th))


@st.composite
def windows(draw):
    T, B, F = draw(st.integers(1, 5)), draw(st.integers(1, 6)), draw(st.integers(1, 30))
    dtype = draw(st.sampled_from([np.float32, np.float64]))
    output = draw(hnp.arrays(dtype, (T, B, F), elements=st.sampled_from([0.0, -0.0, 1.0, 0.5])))
    v_last = draw(hnp.arrays(dtype, (B, F), elements=st.floats(width=32) if dtype == np.float32
                             else UGLY))
    return output, v_last


@settings(max_examples=examples(80))
@given(windows(), st.floats(allow_nan=True, allow_infinity=True), st.floats(0, 1))
def test_mp_init_running_mean_equals_the_reference(window, running_mean, momentum):
    output, v_last = window

    def ours():
        counts, sums = _statistics.per_sample_sums(output, v_last)
        mu = _statistics.batch_mean(math.fsum(counts), math.fsum(sums))
        return counts, sums, mu, _statistics.update_running_mean(running_mean, mu, momentum)

    def theirs():
        counts, sums = ref_mp_init.per_sample_sums(output, v_last)
        mu = ref_mp_init.batch_mean(*ref_mp_init.active_membrane_sum(output, v_last))
        return counts, sums, mu, ref_mp_init.update_running_mean(running_mean, mu, momentum)

    mine, reference = _same_outcome(ours, theirs)
    if mine is not None:
        for a, b in zip(mine, reference):
            _same_bits(a, b)


def _same_outcome(ours, theirs):
    """Both return the same value, or both raise the same error with the same message."""
    results = []
    for call in (ours, theirs):
        try:
            results.append(("value", _quiet(call)))
        except (TypeError, ValueError, OverflowError) as error:
            results.append((type(error), str(error)))
    if results[0][0] == "value" and results[1][0] == "value":
        return results[0][1], results[1][1]
    assert results[0] == results[1]
    return None, None


OPTION_VALUES = st.one_of(st.sampled_from(["true", "estimated", "std", "threshold", "nope", ""]),
                          st.text(max_size=4))


@settings(max_examples=examples(150))
@given(OPTION_VALUES, OPTION_VALUES, UGLY, UGLY, UGLY)
def test_adaptive_option_checks_equal_the_reference(mode, driver, f_c, v_th, width):
    _same_outcome(lambda: _options.check_adaptive_options(mode, driver, f_c, v_th, width),
                  lambda: ref_adaptive.check_adaptive_options(mode, driver, f_c, v_th, width))


INTS = st.one_of(st.integers(-3, 5), st.booleans(), st.just(2.0), st.just(np.int64(3)))


@settings(max_examples=examples(150))
@given(UGLY, UGLY, INTS, INTS, UGLY)
def test_level_checks_equal_the_reference(theta_p, theta_n, k_p, k_n, eps):
    _same_outcome(lambda: _options.check_level_parameters(theta_p, theta_n, k_p, k_n),
                  lambda: ref_multilevel.check_level_parameters(theta_p, theta_n, k_p, k_n))
    _same_outcome(lambda: _options.check_pnb_parameters(theta_p, theta_n, k_p, eps),
                  lambda: ref_pnb.check(theta_p, theta_n, k_p, eps))


@settings(max_examples=examples(100))
@given(st.one_of(UGLY, hnp.arrays(np.float64, st.integers(0, 6), elements=UGLY)),
       st.integers(1, 5), st.sampled_from([np.float32, np.float64]))
def test_per_step_equals_the_reference(value, T, dtype):
    ours, theirs = _same_outcome(lambda: _options.per_step(value, T, dtype, "a"),
                                 lambda: ref_neuron._per_step(value, T, dtype, "a"))
    if ours is not None:
        assert ours[1] == theirs[1]
        assert ours[0].dtype == theirs[0].dtype
        assert ours[0].tobytes() == theirs[0].tobytes()


@settings(max_examples=examples(100))
@given(st.one_of(st.none(), UGLY, hnp.arrays(np.float64, st.sampled_from([(2, 3), (3,), (6,)]),
                                             elements=UGLY)),
       st.sampled_from([np.float32, np.float64]))
def test_initial_membrane_equals_the_reference(v_init, dtype):
    ours, theirs = _same_outcome(lambda: _options.initial_membrane(v_init, (2, 3), dtype),
                                 lambda: ref_neuron.initial_membrane(v_init, (2, 3), dtype))
    if ours is not None:
        assert ours[1] == theirs[1]
        assert ours[0].dtype == theirs[0].dtype
        assert ours[0].tobytes() == theirs[0].tobytes()


def test_level_surrogate_check_matches_the_reference():
    for name in _options.LEVEL_SURROGATES:
        ref_multilevel.MultilevelOptions(name)
    with pytest.raises(ValueError):
        ref_multilevel.MultilevelOptions("nope")
