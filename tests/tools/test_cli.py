"""`spikegrad verify`: passes on the real kernels, and fails when a kernel is wrong."""

import subprocess
import sys

import numpy as np

from spikegrad import kernels
from spikegrad.tools import cli


def test_verify_passes_and_prints_every_variant(capsys):
    assert cli.main(["verify", "--cases", "1"]) == 0
    out = capsys.readouterr().out
    kernel_table = out.split("spikegrad.nn layers")[0]
    rows = [line for line in kernel_table.splitlines() if line.endswith(("PASS", "FAIL"))
            and not line.startswith("cf ")]   # the CF table: tests/tools/test_cli_multilevel.py
    assert len(rows) == 4 * 3 * 3 * 4 + 2 * 2   # neuron variants, then DS-ATGO modes
    assert all(row.endswith("PASS") for row in rows)
    assert "144 passed, 0 failed" in out
    assert "DS-ATGO: 4 passed, 0 failed" in out


def test_verify_fails_on_a_wrong_forward(monkeypatch, capsys):
    real_forward = kernels.forward

    def off_by_one_ulp(*args, **kwargs):
        result = real_forward(*args, **kwargs)
        if result.membrane is not None and kwargs.get("charge") == "if":
            result.membrane[...] = np.nextafter(result.membrane, np.inf)
        return result

    monkeypatch.setattr(kernels, "forward", off_by_one_ulp)
    assert cli.main(["verify", "--cases", "1", "--failures-only"]) == 1
    out = capsys.readouterr().out
    failing = [line for line in out.splitlines() if line.endswith("FAIL")]
    assert failing and all(line.startswith("if ") for line in failing)


def test_verify_fails_on_a_wrong_backward(monkeypatch, capsys):
    real_backward = kernels.backward

    def halved_threshold_gradient(*args, **kwargs):
        grads = real_backward(*args, **kwargs)
        grads.threshold = np.asarray(grads.threshold) * 0.5
        return grads

    monkeypatch.setattr(kernels, "backward", halved_threshold_gradient)
    assert cli.main(["verify", "--cases", "1", "--failures-only"]) == 1


def test_verify_fails_on_a_wrong_adaptive_threshold(monkeypatch, capsys):
    real_forward = kernels.adaptive_forward

    def one_ulp_high(*args, **kwargs):
        result = real_forward(*args, **kwargs)
        if kwargs.get("threshold_mode") == "estimated":
            result.threshold[...] = np.nextafter(result.threshold, np.inf)
        return result

    monkeypatch.setattr(kernels, "adaptive_forward", one_ulp_high)
    assert cli.main(["verify", "--cases", "1", "--failures-only"]) == 1
    failing = [line for line in capsys.readouterr().out.splitlines() if line.endswith("FAIL")]
    assert len(failing) == 2 and all(line.startswith("estimated ") for line in failing)


def test_console_script_runs_without_torch_imported():
    code = ("import sys, spikegrad.tools.cli as c; rc = c.main(['verify', '--cases', '1']); "
            "assert 'torch' not in sys.modules, 'verify imported torch'; sys.exit(rc)")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_missing_torch_is_a_clear_error_and_numpy_parts_still_work():
    code = (
        "import sys; sys.modules['torch'] = None\n"  # makes `import torch` fail
        "import numpy as np, spikegrad\n"
        "out = spikegrad.kernels.forward(np.ones((2, 3), np.float32))\n"
        "assert (out.output == spikegrad.ref.forward(np.ones((2, 3), np.float32)).output).all()\n"
        "try:\n"
        "    spikegrad.neuron\n"
        "except ModuleNotFoundError as error:\n"
        "    assert 'PyTorch' in str(error) and 'spikegrad[torch]' in str(error), error\n"
        "else:\n"
        "    raise SystemExit('spikegrad.neuron did not report the missing torch')\n")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
