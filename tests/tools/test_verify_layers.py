"""The layers' part of `spikegrad verify` (spikegrad.tools.verify_layers): passes on the real
layers and fails when a layer is wrong."""

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from spikegrad.tools import verify_layers  # noqa: E402
from spikegrad import nn as snn  # noqa: E402


def _run(capsys):
    failures = verify_layers.verify_layers(np.random.default_rng(0), cases=1)
    return failures, capsys.readouterr().out


def test_verify_layers_passes(capsys):
    failures, out = _run(capsys)
    rows = [line for line in out.splitlines() if line.endswith(("PASS", "FAIL"))]
    assert failures == 0 and len(rows) == len(verify_layers.CONFIGURATIONS)
    assert all(row.endswith("PASS") for row in rows)


def test_verify_layers_fails_on_a_running_mean_one_ulp_off(monkeypatch, capsys):
    real = snn.TrLIF._update_running_mean

    def off(self, output, v_last):
        real(self, output, v_last)
        up = torch.tensor(np.inf, dtype=self.running_mean.dtype)
        self.running_mean.copy_(torch.nextafter(self.running_mean, up))

    monkeypatch.setattr(snn.TrLIF, "_update_running_mean", off)
    failures, out = _run(capsys)
    failing = [line for line in out.splitlines() if line.endswith("FAIL")]
    assert failures and failing
    assert all(line.startswith("TrLIF") for line in failing)


def test_verify_layers_fails_on_a_wrong_width(monkeypatch, capsys):
    real = snn.MPDAGL.widths
    monkeypatch.setattr(snn.MPDAGL, "widths",
                        lambda self, T, lam, g: [2 * w for w in real(self, T, lam, g)])
    failures, out = _run(capsys)
    failing = [line for line in out.splitlines() if line.endswith("FAIL")]
    assert failures and failing and all(line.startswith("MPDAGL") for line in failing)
