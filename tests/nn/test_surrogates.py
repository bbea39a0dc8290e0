"""The diagnostics' surrogate formulas (spikegrad.nn._surrogates) give the same bits as the
reference's (spikegrad.ref.formulas, spikegrad.ref.multilevel), ugly inputs included."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from conftest import examples
from spikegrad._options import LEVEL_SURROGATES, SCALES, SURROGATES
from spikegrad.nn import _surrogates
from spikegrad.ref import formulas as ref_formulas
from spikegrad.ref import multilevel as ref_multilevel

SPECIAL = [0.0, -0.0, 0.5, -0.5, 1.0, -1.0, 2.0, 1e-300, 5e-324, 1e300, -1e300]


def arrays(dtype):
    width = 32 if dtype == np.float32 else 64
    info = np.finfo(dtype)
    special = [v for v in SPECIAL if v == 0 or float(info.tiny) <= abs(v) <= float(info.max)]
    elements = st.one_of(st.floats(width=width), st.sampled_from(special))
    return hnp.arrays(dtype, st.integers(0, 40), elements=elements)


@st.composite
def cases(draw):
    dtype = draw(st.sampled_from([np.float32, np.float64]))
    h = draw(arrays(dtype))
    positive = st.one_of(st.floats(1e-6, 1e6), st.sampled_from([1e-300, 1e300, 0.0]))
    with np.errstate(all="ignore"):   # 1e300 rounds to inf in float32: an ugly input too
        theta = dtype(draw(st.one_of(positive, st.floats(allow_nan=True))))
        p = dtype(draw(positive))
    return h, theta, p


def _same_bits(ours, theirs):
    ours, theirs = np.asarray(ours), np.asarray(theirs)
    assert ours.dtype == theirs.dtype
    assert ours.tobytes() == theirs.tobytes()


@settings(max_examples=examples(200))
@given(cases(), st.sampled_from(SCALES), st.sampled_from(SURROGATES))
def test_surrogate_derivative_equals_the_reference(case, scale, surrogate):
    h, theta, p = case
    with np.errstate(all="ignore"):
        z = _surrogates.spike_argument(scale, h, theta)
        ref_z = ref_formulas.spike_argument(scale, h, theta)
        _same_bits(z, ref_z)
        _same_bits(_surrogates.surrogate_derivative(surrogate, z, p),
                   ref_formulas.surrogate_derivative(surrogate, ref_z, p))
        zero = np.zeros(1, dtype=h.dtype)
        _same_bits(_surrogates.surrogate_derivative(surrogate, zero, p),
                   ref_formulas.surrogate_derivative(surrogate, zero, p))


@settings(max_examples=examples(200))
@given(st.sampled_from([np.float32, np.float64]).flatmap(
           lambda dt: st.tuples(arrays(dt), st.just(dt))),
       st.floats(1e-3, 1e3), st.floats(1e-3, 1e3), st.integers(1, 4), st.integers(1, 4),
       st.one_of(st.floats(1e-3, 10.0), st.sampled_from([1e-300, 1e300])),
       st.sampled_from(LEVEL_SURROGATES))
def test_level_surrogates_equal_the_reference(h_dtype, theta_p, theta_n, k_p, k_n, a, surrogate):
    h, dtype = h_dtype
    with np.errstate(all="ignore"):   # 1e300 rounds to inf in float32: an ugly input too
        tp, tn, a = dtype(theta_p), dtype(theta_n), dtype(a)
        sp, sn = _surrogates.level_surrogate_sums(surrogate, h, tp, tn, k_p, k_n, a)
        ref_sp, ref_sn, _, _ = ref_multilevel.level_surrogates(
            ref_multilevel.MultilevelOptions(surrogate), h, tp, tn, k_p, k_n, a)
    _same_bits(sp, ref_sp)
    _same_bits(sn, ref_sn)
