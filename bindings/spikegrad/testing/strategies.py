"""Hypothesis strategies for spiking-neuron tests, used by spikegrad's own tests.

    options()            one variant: a dict of charge, reset, scale, surrogate, ...
    neuron_case()        a variant plus inputs: x [T, N], decay, threshold, sg_param, v_init
    inputs()             x [T, N] alone, for a neuron whose parameters are fixed

Inputs are drawn to include the ugly cases: T = 1, N = 1, negative inputs, huge and tiny
thresholds, and membranes landing exactly on the threshold (z = 0, where H jumps).
Arrays are made by a seeded NumPy generator from drawn sizes and a drawn seed, with a
drawn fraction of entries replaced by exact threshold values: large arrays stay cheap.
"""

from __future__ import annotations

import numpy as np
from hypothesis import strategies as st

from .._options import CHARGES, DEFAULT_SG_PARAM, RESETS, SCALES, SURROGATES
from ..ref.formulas import WIDTH_SHAPES

__all__ = ["options", "shapes", "neuron_case", "NeuronCase", "inputs", "multilevel_case"]


def options(charges=CHARGES, resets=RESETS, scales=SCALES, surrogates=SURROGATES,
            smooth=st.booleans(), detach_reset=st.booleans()):
    """A dict of the spikegrad.neuron option keywords."""
    return st.fixed_dictionaries({
        "charge": st.sampled_from(charges),
        "reset": st.sampled_from(resets),
        "scale": st.sampled_from(scales),
        "surrogate": st.sampled_from(surrogates),
        "smooth": smooth,
        "detach_reset": detach_reset,
    })


def shapes(max_T=16, max_N=4096):
    """(T, N), biased towards the edges T = 1 and N = 1."""
    T = st.one_of(st.just(1), st.integers(1, max_T))
    N = st.one_of(st.just(1), st.integers(1, 64), st.integers(1, max_N))
    return st.tuples(T, N)


_THRESHOLDS = st.one_of(st.sampled_from([1.0, 0.5, 2.0, 1e-3, 1e3, 0.3]),
                        st.floats(0.05, 4.0))
_SMOOTH_THRESHOLDS = st.one_of(st.sampled_from([1.0, 0.5, 2.0]), st.floats(0.25, 4.0))
_DECAYS = st.one_of(st.sampled_from([0.0, 0.2, 0.25, 0.5, 1.0]), st.floats(0.0, 1.0))


class NeuronCase(dict):
    """Keyword arguments for spikegrad.ref.forward / spikegrad.neuron (x included)."""

    @property
    def T(self):
        return self["x"].shape[0]


@st.composite
def neuron_case(draw, option_strategy=None, dtype=st.sampled_from([np.float32, np.float64]),
                shape=None, thresholds=None, allow_negative_threshold=True):
    """A variant and its inputs; `case["x"]` is [T, N] of the drawn dtype.

    `thresholds` draws the base threshold (default: 1, 0.5, 2, 1e-3, 1e3 or a float in
    [0.05, 4]); x is drawn at the threshold's scale."""
    opts = draw(option_strategy if option_strategy is not None else options())
    T, N = draw(shape if shape is not None else shapes())
    dt = draw(dtype)
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))

    if thresholds is None:
        # smooth mode: the backends' trajectories differ by rounding (exp, atan), which the
        # surrogate amplifies by |theta| / p; keep that factor O(1) (spikegrad.testing.compare)
        thresholds = _SMOOTH_THRESHOLDS if opts["smooth"] else _THRESHOLDS
    threshold_base = draw(thresholds)
    if opts["scale"] == "absolute" and allow_negative_threshold and draw(st.booleans()):
        threshold_base = -threshold_base * 0.25  # an absolute threshold may be negative
    per_step_threshold = draw(st.booleans())
    threshold = (threshold_base * rng.uniform(0.5, 1.5, T) if per_step_threshold
                 else threshold_base)
    theta = np.broadcast_to(np.asarray(threshold, dtype=dt), (T,))

    # smooth mode: surrogates at their default or wider (spikegrad.testing.compare)
    factors = [1.0, 0.5, 2.0] if not opts["smooth"] else (
        [1.0, 2.0] if opts["surrogate"] in WIDTH_SHAPES else [1.0, 0.5])
    p0 = DEFAULT_SG_PARAM[opts["surrogate"]] * draw(st.sampled_from(factors))
    sg_param = p0 * rng.uniform(0.5, 2.0, T) if draw(st.booleans()) else p0

    # the input: a normal draw scaled to the threshold, some entries exactly at it
    spread = draw(st.sampled_from([0.5, 1.0] if opts["smooth"] else [0.5, 1.0, 3.0]))
    magnitude = abs(float(theta.mean()))
    x = rng.normal(magnitude * 0.6, magnitude * spread + 1e-3, (T, N)).astype(dt)
    edge_fraction = draw(st.sampled_from([0.0, 0.1, 0.5]))
    edge = rng.random((T, N)) < edge_fraction
    x[edge] = np.broadcast_to(theta[:, None], (T, N))[edge]

    kind = draw(st.sampled_from(["none", "scalar", "array"]))
    v_init = {"none": None,
              "scalar": float(rng.normal(0, magnitude * 0.5)),
              "array": rng.normal(0, magnitude * 0.5 + 1e-3, N).astype(dt)}[kind]
    return NeuronCase(x=x, decay=draw(_DECAYS), threshold=threshold, sg_param=sg_param,
                      v_init=v_init, v_reset=draw(st.sampled_from([0.0, 0.0, -0.5])), **opts)


@st.composite
def inputs(draw, shape=None, *, threshold=1.0, charge="mul", decay=0.2, dtype=np.float64):
    """x [T, N] of `dtype` for a neuron whose threshold, charge and decay are fixed.

    `threshold` is a float or a length-T array; x is drawn at its scale, negative entries
    included, and a drawn fraction of entries is set to the values that put the membrane
    exactly on the threshold from a zero membrane (at t = 0 with v_init = 0, or after a
    hard reset to 0): theta itself, and theta / decay for the `decay_input` charge
    (h = decay * x)."""
    T, N = draw(shape if shape is not None else shapes())
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    return input_array(rng, T, N, threshold=threshold, charge=charge, decay=decay,
                       dtype=dtype, spread=draw(st.sampled_from([0.5, 1.0, 3.0])),
                       edge_fraction=draw(st.sampled_from([0.0, 0.1, 0.5, 1.0])),
                       edge_over_decay=draw(st.booleans()))


def input_array(rng, T, N, *, threshold=1.0, charge="mul", decay=0.2, dtype=np.float64,
                spread=1.0, edge_fraction=0.1, edge_over_decay=False):
    """The array behind `inputs`, from a NumPy generator (for callers outside hypothesis)."""
    dt = np.dtype(dtype).type
    theta = np.broadcast_to(np.asarray(threshold, dtype=np.float64), (T,)).astype(dt)
    magnitude = float(np.abs(theta.astype(np.float64)).mean())
    x = rng.normal(magnitude * 0.6, magnitude * spread + 1e-3, (T, N)).astype(dt)
    edge_values = np.broadcast_to(theta[:, None], (T, N))
    if charge == "decay_input" and decay != 0 and edge_over_decay:
        with np.errstate(over="ignore"):
            at_threshold = (theta.astype(np.float64) / decay).astype(dt)
        if np.isfinite(at_threshold).all():
            edge_values = np.broadcast_to(at_threshold[:, None], (T, N))
    edge = rng.random((T, N)) < edge_fraction
    x[edge] = edge_values[edge]
    return x


# ---------------------------------------------------------------------------------------
# docs/spec.md §6: the multi-level circulate-firing neuron (the CF paper)
# ---------------------------------------------------------------------------------------

_LEVEL_THETAS = st.one_of(st.sampled_from([1.0, 0.5, 2.0, 1e-3, 1e3, 0.3]),
                          st.floats(0.05, 4.0))
_SMOOTH_LEVEL_THETAS = st.one_of(st.sampled_from([1.0, 0.5, 2.0]), st.floats(0.5, 2.0))


@st.composite
def multilevel_case(draw, surrogates=("span", "tsg"), smooth=st.booleans(),
                    detach_reset=st.booleans(),
                    dtype=st.sampled_from([np.float32, np.float64]), shape=None):
    """Keyword arguments for spikegrad.ref.multilevel.forward (x [T, N] included).

    Levels: theta_p, theta_n from 1, 0.5, 2, 1e-3, 1e3, 0.3 or [0.05, 4] (moderate,
    [0.5, 2], in smooth mode, with a * theta <= 1.5, so that finite differences of the
    smooth forward stay well conditioned: |dv/dh| <= 1),
    k_p, k_n in 1..4; x is drawn at the levels' scale, with a drawn fraction of entries
    exactly on a level (+-k theta, where the strict comparisons matter)."""
    is_smooth = draw(smooth)
    T, N = draw(shape if shape is not None else shapes())
    dt = draw(dtype)
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    thetas = _SMOOTH_LEVEL_THETAS if is_smooth else _LEVEL_THETAS
    theta_p = draw(thetas)
    theta_p_dt = dt(theta_p)
    theta_n = theta_p if draw(st.booleans()) else draw(thetas)
    theta_n_dt = dt(theta_n)
    k_p, k_n = draw(st.integers(1, 4)), draw(st.integers(1, 4))
    a_max = 1.5 / max(theta_p, theta_n) if is_smooth else 3.0
    a0 = draw(st.floats(0.25, 1.0)) * a_max
    a = a0 * rng.uniform(0.5, 1.0, T) if draw(st.booleans()) else a0

    scale = max(theta_p, theta_n) * max(k_p, k_n)
    x = rng.normal(0.0, scale * draw(st.sampled_from([0.3, 0.7, 1.5])), (T, N)).astype(dt)
    edge_fraction = draw(st.sampled_from([0.0, 0.1, 0.5]))
    edge = rng.random((T, N)) < edge_fraction
    ks = rng.integers(1, max(k_p, k_n) + 1, (T, N))
    negative = rng.random((T, N)) < 0.5
    levels = np.where(negative, -(ks.astype(dt) * theta_n_dt), ks.astype(dt) * theta_p_dt)
    x[edge] = levels[edge].astype(dt)

    kind = draw(st.sampled_from(["none", "scalar", "array"]))
    v_init = {"none": None,
              "scalar": float(rng.normal(0, scale * 0.3)),
              "array": rng.normal(0, scale * 0.3, N).astype(dt)}[kind]
    return NeuronCase(x=x, decay=draw(_DECAYS), theta_p=theta_p, theta_n=theta_n, k_p=k_p,
                      k_n=k_n, surrogate=draw(st.sampled_from(surrogates)), a=a,
                      detach_reset=draw(detach_reset), v_init=v_init, smooth=is_smooth)
