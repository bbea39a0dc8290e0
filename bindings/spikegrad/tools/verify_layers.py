"""`spikegrad verify`, part 2: the spikegrad.nn layers against their references.

For each layer configuration, dtype and random case: the layer's output must equal the
reference's bit for bit, dL/dx must lie within the bound of spikegrad.testing.compare
(scaled by spikegrad.ref.error_scale), and layer state (TrLIF's running mean) must equal the
reference's bit for bit after every training window. tdBatchNorm (plain torch arithmetic)
is compared in float64 against its NumPy transcription within (n + 16) eps of its scale.
Needs PyTorch. `spikegrad verify` runs this module in a child process
(`python -m spikegrad.tools.verify_layers`), so that the kernels' check never imports torch.
"""

from __future__ import annotations

import numpy as np

from .. import ref
from ..testing import compare

__all__ = ["verify_layers", "tdbn_bound", "main"]


def _value(value, dtype):
    import torch
    if isinstance(value, torch.Tensor):
        return float(value.detach().to(torch.float32 if dtype == np.float32 else torch.float64))
    return float(np.asarray(value, dtype=dtype))


def _window(layer, x_np, expected, rng, call=None):
    """(forward |diff| or 0, backward err/bound) of one window."""
    import torch
    x = torch.from_numpy(x_np).requires_grad_()
    out = layer(x) if call is None else call(x)
    T = x_np.shape[0]
    a, e = out.detach().numpy().reshape(T, -1), expected.output.reshape(T, -1)
    forward = 0.0 if np.array_equal(a, e, equal_nan=True) else (compare.max_error(a, e)
                                                                 or float("inf"))
    g = rng.normal(size=x_np.shape).astype(x_np.dtype)
    (grad_x,) = torch.autograd.grad((out * torch.from_numpy(g)).sum(), x)
    g_ref = g.reshape(expected.x.shape)
    e_grads = ref.backward(expected, g_ref)
    scale = ref.error_scale(expected, g_ref)
    ratio = compare.error_ratio(grad_x.numpy().reshape(T, -1), e_grads.x.reshape(T, -1),
                                dtype=x_np.dtype, T=T, magnitude=scale.x.reshape(T, -1))
    return forward, ratio


def _input(rng, dtype, threshold, T, B, F):
    x = rng.normal(0.6 * threshold, threshold, (T, B, F)).astype(dtype)
    x[rng.random(x.shape) < 0.2] = dtype(threshold)      # some exactly at the threshold
    return x


def _check_lif(rng, dtype, case, kwargs):
    from ..nn import LIF
    layer = LIF(**kwargs).to(torch_dtype(dtype))
    T, B, F = [(1, 1, 1), (4, 3, 17), (8, 2, 40)][case % 3]
    x = _input(rng, dtype, abs(kwargs.get("threshold", 1.0)), T, B, F)
    expected = ref.forward(
        x, charge=layer.charge, decay=_value(layer.decay, dtype),
        threshold=_value(layer.threshold, dtype), reset=layer.reset, v_reset=layer.v_reset,
        detach_reset=layer.detach_reset, scale=layer.scale, surrogate=layer.surrogate,
        sg_param=layer.sg_param, v_init=layer.v_reset)
    forward, ratio = _window(layer, x, expected, rng)
    return forward, ratio, 0.0


def _check_mpdagl(rng, dtype, case, kwargs):
    from ..nn import MPDAGL
    layer = MPDAGL(**kwargs).to(torch_dtype(dtype))
    T, B, F = [(1, 1, 1), (4, 3, 17), (8, 2, 40)][case % 3]
    x = _input(rng, dtype, 0.5, T, B, F)
    gbar = float(rng.uniform(0.3, 3.0))
    expected = ref.mpdagl.forward(x, decay=_value(layer.decay, dtype), gamma_bar=gbar)
    forward, ratio = _window(layer, x, expected, rng, call=lambda x_: layer(x_, gbar))
    return forward, ratio, 0.0


def _check_trlif(rng, dtype, case, kwargs):
    from ..nn import TrLIF
    layer = TrLIF(**kwargs).to(torch_dtype(dtype))
    T, B, F = [(1, 1, 1), (4, 3, 17), (8, 2, 40)][case % 3]
    forward, ratio, state = 0.0, 0.0, 0.0
    running_mean = 0.0
    for training in (True, True, False):
        layer.train(training)
        x = _input(rng, dtype, float(kwargs.get("threshold", 1.0)), T, B, F)
        expected, running_mean = ref.mp_init.trlif_forward(
            x, decay=_value(layer.decay, dtype), threshold=_value(layer.threshold, dtype),
            running_mean=running_mean, training=training, momentum=layer.momentum,
            decay_input=layer.decay_input, scale=layer.scale, surrogate=layer.surrogate,
            sg_param=layer.sg_param, mp_init=layer.mp_init, detach_reset=layer.detach_reset)
        running_mean = float(np.asarray(running_mean, dtype=dtype))
        f, r = _window(layer, x, expected, rng)
        forward, ratio = max(forward, f), max(ratio, r)
        state = max(state, abs(layer.running_mean.item() - running_mean))
    return forward, ratio, state


def _check_tdbn(rng, dtype, case, kwargs):
    import torch

    from ..nn import tdBatchNorm
    if dtype != np.float64:
        return 0.0, 0.0, 0.0   # compared in float64 only (plain torch arithmetic)
    T, B, C, S = [(1, 2, 1, 1), (4, 3, 3, 5), (2, 2, 4, 6)][case % 3]
    bn = tdBatchNorm(C, **kwargs).double()
    gamma, beta = rng.normal(1, 0.5, C), rng.normal(0, 0.5, C)
    with torch.no_grad():
        bn.weight.copy_(torch.from_numpy(gamma))
        bn.bias.copy_(torch.from_numpy(beta))
    x = rng.normal(1.0, 2.0, (T, B, C, S))
    y = bn(torch.from_numpy(x)).detach().numpy()
    expected, _, var = ref.tdbn.forward(x, gamma, beta, **kwargs)
    bound = tdbn_bound(x, gamma, beta, var, n=T * B * S, eps=bn.eps, **kwargs)
    return 0.0, float(np.abs(y - expected).max() / bound), 0.0


def tdbn_bound(x, gamma, beta, var, *, n, alpha=1.0, v_th=1.0, eps=1e-5):
    """The float64 bound for tdBatchNorm against spikegrad.ref.tdbn: the two differ in the
    order of the per-channel sums over n values (each within n eps of the sum of the
    magnitudes) and in where alpha V_th multiplies (a few roundings), so
    |torch - numpy| <= (n + 16) eps m, m = alpha V_th max|gamma| max|x - mean| /
    sqrt(min var + eps) + max|beta| bounding every term of y (Eqs. 5-6)."""
    x = np.asarray(x, dtype=np.float64)
    spread = 2 * np.abs(x).max()                      # |x - mean_c| <= 2 max|x|
    m = (alpha * v_th * np.abs(gamma).max() * spread / np.sqrt(np.min(var) + eps)
         + np.abs(beta).max())
    return (n + 16) * float(np.finfo(np.float64).eps) * m


def torch_dtype(dtype):
    import torch
    return torch.float32 if dtype == np.float32 else torch.float64


CONFIGURATIONS = [
    ("LIF", _check_lif, dict()),
    ("LIF", _check_lif, dict(learn_decay=True, learn_threshold=True)),
    ("LIF", _check_lif, dict(charge="decay_input", reset="soft", scale="threshold_robust",
                             surrogate="atan", sg_param=2.0, learn_threshold=True)),
    ("LIF", _check_lif, dict(charge="no_decay_input", reset="hard", v_reset=-0.5,
                             detach_reset=True, scale="relative", surrogate="sigmoid",
                             sg_param=4.0, threshold=2.0)),
    ("MPDAGL", _check_mpdagl, dict()),
    ("MPDAGL", _check_mpdagl, dict(learn_decay=True, decay=0.5)),
    ("TrLIF", _check_trlif, dict()),
    ("TrLIF", _check_trlif, dict(scale="absolute", decay_input=False)),
    ("TrLIF", _check_trlif, dict(scale="relative", surrogate="triangle", threshold=2.0,
                                 detach_reset=True)),
    ("TrLIF", _check_trlif, dict(mp_init=False, surrogate="sigmoid", sg_param=4.0)),
    ("tdBatchNorm", _check_tdbn, dict()),
    ("tdBatchNorm", _check_tdbn, dict(alpha=0.5, v_th=0.5)),
]


def verify_layers(rng, cases=2, failures_only=False, print=print) -> int:
    """Print one line per layer configuration; return the number of failures."""
    try:
        import torch  # noqa: F401
    except ModuleNotFoundError:
        print("spikegrad.nn layers: skipped (PyTorch is not installed)")
        return 0
    header = (f"{'layer':<12}{'options':<60}{'forward |diff|':>15}"
              f"{'err/bound':>20}{'state |diff|':>14}  verdict")
    print(f"spikegrad.nn layers x float32/float64 x {cases} random cases against the "
          "references: forward and state bit-identical, dL/dx within the bound "
          "(err/bound <= 1);")
    print("tdBatchNorm is plain torch arithmetic: its float64 forward is compared within "
          "(n + 16) eps of its scale (err/bound)")
    print(header)
    print("-" * len(header))
    failures = 0
    for name, check, kwargs in CONFIGURATIONS:
        forward = ratio = state = 0.0
        for dtype in (np.float32, np.float64):
            for case in range(cases):
                f, r, s = check(rng, dtype, case, kwargs)
                forward, ratio, state = max(forward, f), max(ratio, r), max(state, s)
        ok = forward == 0 and ratio <= 1 and state == 0
        failures += not ok
        if not (failures_only and ok):
            shown = ", ".join(f"{k}={v}" for k, v in kwargs.items()) or "defaults"
            print(f"{name:<12}{shown[:58]:<60}{forward:>15.3g}{ratio:>20.3g}{state:>14.3g}"
                  f"  {'PASS' if ok else 'FAIL'}")
    print("-" * len(header))
    print(f"{len(CONFIGURATIONS) - failures} layer configurations passed, {failures} failed")
    return failures


def main(argv=None) -> int:
    import argparse
    parser = argparse.ArgumentParser(prog="python -m spikegrad.tools.verify_layers")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--cases", type=int, default=2)
    parser.add_argument("--failures-only", action="store_true")
    args = parser.parse_args(argv)
    rng = np.random.default_rng([args.seed, 1])
    return 1 if verify_layers(rng, cases=args.cases, failures_only=args.failures_only) else 0


if __name__ == "__main__":
    raise SystemExit(main())
