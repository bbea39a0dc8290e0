"""`spikegrad verify`'s CF table: every row passes on the real kernels, and a wrong CF
kernel makes verify fail."""

import numpy as np

from spikegrad import kernels
from spikegrad.tools import cli


def _cf_rows(out):
    return [line for line in out.splitlines() if line.startswith("cf ")
            and line.endswith(("PASS", "FAIL"))]


def test_verify_covers_the_cf_neuron_and_pnb(capsys):
    assert cli.main(["verify", "--cases", "1"]) == 0
    out = capsys.readouterr().out
    rows = _cf_rows(out)
    assert len(rows) == 2 * 3 + 1
    assert all(row.endswith("PASS") for row in rows)
    assert "cf: 7 passed, 0 failed" in out


def test_verify_fails_on_a_wrong_cf_forward(monkeypatch, capsys):
    real = kernels.multilevel_forward

    def one_ulp_off(*args, **kwargs):
        result = real(*args, **kwargs)
        if kwargs.get("surrogate") == "tsg":
            result.v_last[...] = np.nextafter(result.v_last, np.inf)
        return result

    monkeypatch.setattr(kernels, "multilevel_forward", one_ulp_off)
    assert cli.main(["verify", "--cases", "1", "--failures-only"]) == 1
    rows = _cf_rows(capsys.readouterr().out)
    assert rows and all(row.startswith("cf tsg") and row.endswith("FAIL") for row in rows)


def test_verify_fails_on_wrong_pnb_sums(monkeypatch, capsys):
    real = kernels.pnb_partial_sums
    monkeypatch.setattr(kernels, "pnb_partial_sums", lambda *a, **k: real(*a, **k) * (1 + 1e-9))
    assert cli.main(["verify", "--cases", "1", "--failures-only"]) == 1
    rows = _cf_rows(capsys.readouterr().out)
    assert [row.split()[1] for row in rows] == ["pnb"]
