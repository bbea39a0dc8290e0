"""The option-name lists live once in the package (spikegrad._options): they equal the
reference's own lists, and the compiled kernels' parser accepts every name and rejects
others."""

from __future__ import annotations

import numpy as np
import pytest

from spikegrad import _core, _options
from spikegrad.ref import adaptive as ref_adaptive
from spikegrad.ref import formulas as ref_formulas


@pytest.mark.parametrize("name", ["CHARGES", "RESETS", "SCALES", "SURROGATES", "WIDTH_SHAPES",
                                  "SHARPNESS_SHAPES", "DEFAULT_SG_PARAM", "LEVEL_SURROGATES"])
def test_lists_equal_the_reference(name):
    assert getattr(_options, name) == getattr(ref_formulas, name)


@pytest.mark.parametrize("name", ["THRESHOLD_MODES", "TGO_DRIVERS"])
def test_adaptive_lists_equal_the_reference(name):
    assert getattr(_options, name) == getattr(ref_adaptive, name)


def test_every_surrogate_has_a_default_and_a_kind():
    assert set(_options.DEFAULT_SG_PARAM) == set(_options.SURROGATES)
    assert sorted(_options.WIDTH_SHAPES + _options.SHARPNESS_SHAPES) == \
        sorted(_options.SURROGATES)


def _neuron_forward(charge="mul", reset="hard", scale="absolute", surrogate="rect"):
    T, N = 2, 3
    x = np.linspace(-1.0, 2.0, T * N).reshape(T, N)
    out, v_last = np.empty((T, N)), np.empty(N)
    _core.neuron_forward(0.5, 0.0, np.ones(T), np.ones(T), None, x, out, None, v_last,
                         charge=charge, reset=reset, scale=scale, surrogate=surrogate,
                         smooth=False)


def _adaptive_forward(threshold_mode="true", tgo_driver="std"):
    T, N = 2, 4
    x = np.linspace(-1.0, 2.0, T * N).reshape(T, N)
    _core.adaptive_forward(0.5, 0.0, np.zeros(N), x, np.empty((T, N)), None, np.empty(N),
                           np.empty(T), np.empty(T), np.empty(T), np.empty(T), np.empty(N),
                           np.empty(_core.adaptive_workspace_bytes(x), np.uint8), charge="mul",
                           reset="hard", threshold_mode=threshold_mode, f_c=1.0, v_th=1.0,
                           tgo=True, tgo_driver=tgo_driver, width=1.0)


def _multilevel_forward(surrogate):
    T, N = 2, 3
    x = np.linspace(-3.0, 3.0, T * N).reshape(T, N)
    _core.multilevel_forward(0.25, 1.0, 1.0, 2, 2, np.ones(T), np.zeros(N), x,
                             np.empty((T, N)), None, np.empty(N), surrogate=surrogate,
                             smooth=False)


@pytest.mark.parametrize("charge", _options.CHARGES)
def test_core_accepts_charge(charge):
    _neuron_forward(charge=charge)


@pytest.mark.parametrize("reset", _options.RESETS)
def test_core_accepts_reset(reset):
    _neuron_forward(reset=reset)


@pytest.mark.parametrize("scale", _options.SCALES)
def test_core_accepts_scale(scale):
    _neuron_forward(scale=scale)


@pytest.mark.parametrize("surrogate", _options.SURROGATES)
def test_core_accepts_surrogate(surrogate):
    _neuron_forward(surrogate=surrogate)


@pytest.mark.parametrize("mode", _options.THRESHOLD_MODES)
def test_core_accepts_threshold_mode(mode):
    _adaptive_forward(threshold_mode=mode)


@pytest.mark.parametrize("driver", _options.TGO_DRIVERS)
def test_core_accepts_tgo_driver(driver):
    _adaptive_forward(tgo_driver=driver)


@pytest.mark.parametrize("surrogate", _options.LEVEL_SURROGATES)
def test_core_accepts_level_surrogate(surrogate):
    _multilevel_forward(surrogate)


@pytest.mark.parametrize("call", [
    lambda: _neuron_forward(charge="nope"), lambda: _neuron_forward(reset="nope"),
    lambda: _neuron_forward(scale="nope"), lambda: _neuron_forward(surrogate="nope"),
    lambda: _adaptive_forward(threshold_mode="nope"), lambda: _adaptive_forward(tgo_driver="nope"),
    lambda: _multilevel_forward("nope")])
def test_core_rejects_unknown_names(call):
    with pytest.raises(ValueError):
        call()
