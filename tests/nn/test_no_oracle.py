"""The library never imports the oracle it is tested against: a fresh interpreter that runs
spikegrad.neuron, every layer and the kernels has no spikegrad.ref module loaded."""

from __future__ import annotations

import subprocess
import sys
import textwrap

PROGRAM = textwrap.dedent("""
    import sys
    import numpy as np
    import torch
    import spikegrad
    import spikegrad.kernels
    import spikegrad.nn as snn

    torch.manual_seed(0)
    x = torch.rand(4, 2, 8, dtype=torch.float64) * 2
    spikegrad.neuron(x, surrogate="sigmoid").output.sum().backward
    spikegrad.multilevel(x * 3, a=1.0)
    spikegrad.pnb_loss([spikegrad.multilevel(x * 3, a=1.0, return_membrane=True).membrane])
    spikegrad.kernels.forward(x.numpy())
    spikegrad.kernels.adaptive_forward(x.numpy())
    spikegrad.kernels.multilevel_forward(x.numpy())
    spikegrad.kernels.pnb_partial_sums(x.numpy())
    layers = [snn.LIF(), snn.ATGO(), snn.ATGO(threshold_mode="estimated"), snn.MPDAGL(),
              snn.TrLIF(), snn.CF(T=4), snn.CF(surrogate="span")]
    for layer in layers:
        layer.record_diagnostics = True
        for training in (True, False):
            layer.train(training)
            out = layer(x.requires_grad_(True))
            out.sum().backward()
    bn = snn.tdBatchNorm(8).double()
    bn(x.reshape(4, 2, 8))
    loaded = sorted(name for name in sys.modules
                    if name == "spikegrad.ref" or name.startswith("spikegrad.ref."))
    print("LOADED", loaded)
    sys.exit(1 if loaded else 0)
""")


def test_library_does_not_import_the_reference():
    result = subprocess.run([sys.executable, "-c", PROGRAM], capture_output=True, text=True,
                            timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "LOADED []" in result.stdout


def test_reference_is_a_lazy_attribute():
    program = ("import sys, spikegrad; assert 'spikegrad.ref' not in sys.modules; "
               "assert callable(spikegrad.ref.forward); print('ok')")
    result = subprocess.run([sys.executable, "-c", program], capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
