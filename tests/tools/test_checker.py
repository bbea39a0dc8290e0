"""spikegrad.testing.assert_neuron_matches: the mutation suite.

`user_neuron` is what a user would write: an eager PyTorch neuron with a custom autograd
spike, written from docs/spec.md's tables. Correct, it passes the checker for several variants;
with each seeded bug it fails with a message naming the path the bug lives on.
"""

import math
import re

import pytest
from hypothesis import HealthCheck, assume, example, given, settings
from hypothesis import strategies as st

torch = pytest.importorskip("torch")
pytest.importorskip("hypothesis")

from spikegrad.testing import assert_neuron_matches  # noqa: E402
from spikegrad.testing import strategies as sgst  # noqa: E402
from spikegrad.testing.checker import MUTATIONS  # noqa: E402

from conftest import examples  # noqa: E402


def _surrogate(shape, z, p):
    if shape == "rect":
        return (z.abs() < p / 2).to(z.dtype) / p
    if shape == "triangle":
        return torch.clamp(p - z.abs(), min=0) / (p * p)
    if shape == "sigmoid":
        sg = torch.sigmoid(p * z)
        return p * sg * (1 - sg)                 # as SpikingJelly writes it
    if shape == "atan":
        return p / (2 * (1 + (math.pi / 2 * p * z) ** 2))
    raise ValueError(shape)


class _Spike(torch.autograd.Function):
    """H(z) forward; f'(z; p) backward. `strict` fires for z > 0 (a seeded bug)."""

    @staticmethod
    def forward(ctx, z, p, shape, strict):
        ctx.save_for_backward(z, p)
        ctx.shape = shape
        return (z > 0 if strict else z >= 0).to(z.dtype)

    @staticmethod
    def backward(ctx, grad):
        z, p = ctx.saved_tensors
        d = _surrogate(ctx.shape, z, p)
        sign = -1 if ctx.shape in ("rect", "triangle") else 1
        grad_p = (grad * sign * (z / p) * d).sum(dim=-1) if p.dim() else \
            (grad * sign * (z / p) * d).sum()
        return grad * d, grad_p, None, None


def user_neuron(x, *, charge="mul", decay=0.2, threshold=1.0, reset="hard", v_reset=0.0,
                detach_reset=False, scale="absolute", surrogate="rect", sg_param=None,
                v_init=None, smooth=False, bug=None):
    """A user's eager neuron, x [T, N]; `bug` seeds one of the mutation suite's bugs."""
    assert not smooth
    T, N = x.shape
    if sg_param is None:
        sg_param = {"rect": 1.0, "triangle": 1.0, "sigmoid": 4.0, "atan": 2.0}[surrogate]
    theta_all = torch.as_tensor(threshold, dtype=x.dtype).expand(T)
    p_all = torch.as_tensor(sg_param, dtype=x.dtype).expand(T)
    if bug == "surrogate_width_halved":
        p_all = p_all / 2
    lam = torch.as_tensor(decay, dtype=x.dtype)
    if bug == "leak_gradient_missing":
        lam = lam.detach()
    if bug == "leak_one_minus_decay":
        lam = 1 - lam
    v = x.new_zeros(N) if v_init is None else torch.as_tensor(v_init, dtype=x.dtype).expand(N)
    s_prev = x.new_zeros(N)
    outputs = []
    for t in range(T):
        theta, p = theta_all[t], p_all[t]
        if bug == "threshold_gradient_sign":
            theta = 2 * theta.detach() - theta   # same value, gradient negated
        if bug == "membrane_detached_in_time":
            v = v.detach()
        if charge == "mul":
            h = lam * v + x[t]
        elif charge == "decay_input":
            h = v + lam * (x[t] - (v - v_reset))
        elif charge == "no_decay_input":
            h = v - lam * (v - v_reset) + x[t]
        else:
            h = v + x[t]
        z = h - theta if scale == "absolute" else h / theta - 1
        shape = "sigmoid" if bug == "surrogate_wrong_shape" else surrogate
        s = _Spike.apply(z, p, shape, bug == "strict_threshold")
        outputs.append(theta * s if scale == "threshold_robust" else s)
        detach = detach_reset != (bug == "reset_detach_flipped")
        s_reset = s.detach() if detach else s
        if bug == "reset_one_step_late":
            s_reset, s_prev = s_prev, s_reset
        if reset == "hard":
            to = 0.0 if bug == "hard_reset_to_zero" else v_reset
            v = h * (1 - s_reset) + to * s_reset
        elif reset == "soft":
            subtracted = theta
            if bug == "soft_reset_wrong_threshold":
                subtracted = theta_all[0]
            if bug == "soft_reset_by_one":
                subtracted = 1
            v = h - subtracted * s_reset
        else:
            v = h
    return torch.stack(outputs)


VARIANTS = {
    "lif_hard_rect": dict(charge="mul", reset="hard", scale="absolute", surrogate="rect",
                          decay=0.25, threshold=1.0),
    "spikingjelly_lif": dict(charge="decay_input", reset="hard", scale="absolute",
                             surrogate="sigmoid", decay=0.5, threshold=1.0),
    "trsg_soft_atan": dict(charge="decay_input", reset="soft", scale="threshold_robust",
                           surrogate="atan", decay=0.5, threshold=0.75),
    "if_soft_triangle_detached": dict(charge="if", reset="soft", scale="relative",
                                      surrogate="triangle", threshold=0.5, detach_reset=True),
    "no_decay_input_hard": dict(charge="no_decay_input", reset="hard", surrogate="triangle",
                                decay=0.25, v_reset=-0.5, v_init=-0.5, threshold=0.5),
    "no_decay_input_none": dict(charge="no_decay_input", reset="none", surrogate="rect",
                                decay=0.125, v_reset=-0.5, threshold=0.5),
}


def _tensor(value, dtype=torch.float64):
    return torch.tensor(value, dtype=dtype)


def _with_tensors(options, names, dtype=torch.float64):
    out = dict(options)
    for name in names:
        value = out.get(name, {"decay": 0.2, "threshold": 1.0}.get(name))
        if name == "sg_param" and value is None:
            value = {"rect": 1.0, "triangle": 1.0, "sigmoid": 4.0,
                     "atan": 2.0}[out.get("surrogate", "rect")]
        out[name] = _tensor(value, dtype)
    return out


@pytest.mark.parametrize("name", sorted(VARIANTS))
def test_a_correct_neuron_passes(name):
    options = _with_tensors(VARIANTS[name], ("decay", "threshold"))
    assert_neuron_matches(user_neuron, max_examples=60, **options)


@settings(max_examples=examples(12), suppress_health_check=[HealthCheck.nested_given])
@given(options=sgst.options(smooth=st.just(False)),
       threshold=st.sampled_from([1.0, 0.5, 1e-3, 1e3, -0.25]),
       decay=st.sampled_from([0.0, 0.2, 0.25, 1.0]), v_reset=st.sampled_from([0.0, -0.5]),
       tensors=st.sets(st.sampled_from(["decay", "threshold", "sg_param", "v_init"])),
       dtype=st.sampled_from([torch.float32, torch.float64]))
@example(options=dict(charge="mul", reset="hard", scale="absolute", surrogate="rect",
                      smooth=False, detach_reset=False),
         threshold=1e3, decay=0.0, v_reset=0.0, tensors={"threshold"}, dtype=torch.float64)
@example(options=dict(charge="decay_input", reset="soft", scale="threshold_robust",
                      surrogate="sigmoid", smooth=False, detach_reset=True),
         threshold=1e-3, decay=1.0, v_reset=-0.5, tensors={"decay", "threshold", "sg_param",
                                                           "v_init"}, dtype=torch.float32)
def test_a_correct_neuron_passes_for_any_variant(options, threshold, decay, v_reset, tensors,
                                                 dtype):
    assume(threshold > 0 or options["scale"] == "absolute")
    claim = dict(options, threshold=threshold, decay=decay, v_reset=v_reset, v_init=0.25)
    del claim["smooth"]
    claim = _with_tensors(claim, sorted(tensors), dtype)
    if "v_init" not in tensors:
        claim["v_init"] = 0.25
    assert_neuron_matches(user_neuron, max_examples=15, dtype=dtype, **claim)


def test_a_correct_neuron_passes_in_float32_with_per_step_parameters():
    options = dict(charge="mul", reset="soft", surrogate="sigmoid", decay=_tensor(0.5,
                   torch.float32), threshold=_tensor([1.0, 0.5, 2.0], torch.float32),
                   sg_param=_tensor([4.0, 2.0, 8.0], torch.float32),
                   v_init=_tensor([0.25, -0.5], torch.float32))
    assert_neuron_matches(user_neuron, max_examples=40, **options)


def test_spikegrad_neuron_itself_passes():
    import spikegrad

    def ours(x, **options):
        return spikegrad.neuron(x, **options).output

    assert_neuron_matches(ours, max_examples=30, smooth=True, surrogate="atan",
                          reset="soft", threshold=_tensor(0.75), decay=_tensor(0.5))


# (bug, variant, tensors passed, the path the message must name)
BUGS = [
    ("reset_detach_flipped", "lif_hard_rect", (), "reset"),
    ("reset_detach_flipped", "if_soft_triangle_detached", (), "reset"),
    ("surrogate_width_halved", "lif_hard_rect", (), "surrogate"),
    ("surrogate_width_halved", "spikingjelly_lif", ("sg_param",), "surrogate"),
    ("strict_threshold", "lif_hard_rect", (), "threshold"),
    ("strict_threshold", "trsg_soft_atan", (), "threshold"),
    ("leak_gradient_missing", "lif_hard_rect", ("decay",), "leak"),
    ("leak_gradient_missing", "trsg_soft_atan", ("decay",), "leak"),
    ("membrane_detached_in_time", "spikingjelly_lif", (), "leak"),
    ("reset_one_step_late", "lif_hard_rect", (), "reset"),
    ("reset_one_step_late", "trsg_soft_atan", (), "reset"),
    ("threshold_gradient_sign", "lif_hard_rect", ("threshold",), "threshold"),
    ("threshold_gradient_sign", "trsg_soft_atan", ("threshold",), "threshold"),
    ("soft_reset_wrong_threshold", "trsg_soft_atan", (), "reset"),
    ("soft_reset_by_one", "trsg_soft_atan", (), "reset"),
    ("hard_reset_to_zero", "no_decay_input_hard", (), "reset"),
    ("surrogate_wrong_shape", "trsg_soft_atan", (), "surrogate"),
    ("leak_one_minus_decay", "lif_hard_rect", (), "leak"),
]


@pytest.mark.parametrize("bug, variant, tensors, path", BUGS,
                         ids=[f"{b}-{v}" for b, v, _, _ in BUGS])
def test_each_seeded_bug_is_caught_and_its_path_named(bug, variant, tensors, path):
    options = _with_tensors(VARIANTS[variant], tensors)
    if bug == "soft_reset_wrong_threshold":   # needs a threshold that changes over time
        options["threshold"] = _tensor([0.75, 1.5, 0.5])

    def buggy(x, **kwargs):
        return user_neuron(x, bug=bug, **kwargs)

    with pytest.raises(AssertionError) as caught:
        assert_neuron_matches(buggy, max_examples=100, **options)
    message = str(caught.value)
    diagnosis = message.split("diagnosis:")[1]
    assert f"points to the {path} path" in diagnosis, message
    assert "minimal example: T=" in message, message
    # where: a timestep and neuron (or a parameter's entry), or the scalar gradient itself
    assert re.search(r"first at (timestep|neuron)|grad \w+: expected", message), message
    assert "expected" in message and "got" in message, message


def test_a_forward_difference_names_the_timestep_and_neuron():
    def strict(x, **kwargs):
        return user_neuron(x, bug="strict_threshold", **kwargs)

    with pytest.raises(AssertionError) as caught:
        assert_neuron_matches(strict, max_examples=20)
    message = str(caught.value)
    # the fixed edge case T = 1, N = 1, x = theta: the spike at t = 0, n = 0 is missing
    assert "the neuron's forward differs" in message
    assert "minimal example: T=1, N=1" in message
    assert "first at timestep t=0, neuron n=0: expected 1.0, got 0.0" in message
    assert "fires only for h > theta" in message


def test_an_unexplained_difference_still_names_the_gradient_path():
    def decay_gradient_doubled(x, decay, **kwargs):
        d = 2 * decay - decay.detach()        # same value, gradient doubled
        return user_neuron(x, decay=d, **kwargs)

    with pytest.raises(AssertionError) as caught:
        assert_neuron_matches(decay_gradient_doubled, max_examples=50, decay=_tensor(0.25))
    message = str(caught.value)
    assert "grad decay" in message
    assert "no single known bug reproduces it" in message
    assert "leak path" in message


def test_every_mutation_names_one_of_the_documented_paths():
    assert {m.path for m in MUTATIONS} == {"reset", "leak", "surrogate", "threshold"}


def test_bad_arguments_are_named():
    with pytest.raises(ValueError, match="charge"):
        assert_neuron_matches(user_neuron, charge="lif")
    with pytest.raises(TypeError, match="unknown option"):
        assert_neuron_matches(user_neuron, tau=2.0)
    with pytest.raises(ValueError, match="max_examples"):
        assert_neuron_matches(user_neuron, max_examples=0)
    with pytest.raises(TypeError, match="fn must be callable"):
        assert_neuron_matches(None)
    with pytest.raises(ValueError, match="rtol"):
        assert_neuron_matches(user_neuron, rtol=-1.0)
    with pytest.raises(TypeError, match="threshold has dtype"):
        assert_neuron_matches(user_neuron, dtype=torch.float64,
                              threshold=_tensor(1.0, torch.float32))
    with pytest.raises(TypeError, match="decay must be a number or a tensor"):
        assert_neuron_matches(user_neuron, decay="0.5")
    with pytest.raises(ValueError, match="v_init must be a number, a 0-d tensor or a vector"):
        assert_neuron_matches(user_neuron, v_init=_tensor([[0.0]]))
    with pytest.raises(ValueError, match="threshold must be > 0"):
        assert_neuron_matches(user_neuron, scale="relative", threshold=-1.0)


def test_a_wrong_output_shape_is_an_error():
    with pytest.raises(ValueError, match="must return the output"):
        assert_neuron_matches(lambda x, **kw: x.sum(0), max_examples=5)


def test_a_wrong_output_dtype_is_reported():
    with pytest.raises(AssertionError) as caught:
        assert_neuron_matches(lambda x, **kw: user_neuron(x.float(), **kw), max_examples=5)
    assert "fn returned dtype float32, x was float64" in str(caught.value)
    assert "diagnosis: fn's result has the wrong dtype or shape" in str(caught.value)


# --------------------------------------------------------------------------------------
# SpikingJelly's LIFNode (docs/testing.md): the real one when installed, and a transcription
# of its torch-backend expressions (spikingjelly.activation_based, neuron.LIFNode and
# surrogate.Sigmoid / surrogate.ATan) so that the walkthrough's claims are tested everywhere.
# --------------------------------------------------------------------------------------

class _SigmoidSurrogate(torch.autograd.Function):
    """surrogate.Sigmoid: heaviside forward, grad * (1 - sg) * sg * alpha backward."""

    @staticmethod
    def forward(ctx, x, alpha):
        ctx.save_for_backward(x)
        ctx.alpha = alpha
        return (x >= 0).to(x)

    @staticmethod
    def backward(ctx, grad_output):
        sgax = (ctx.saved_tensors[0] * ctx.alpha).sigmoid_()
        return grad_output * (1. - sgax) * sgax * ctx.alpha, None


def spikingjelly_style_lif(x_seq, tau=2.0, v_threshold=1.0, v_reset=0.0, alpha=4.0,
                           detach_reset=False):
    """LIFNode(decay_input=True, step_mode='m', backend='torch') in training mode."""
    v = torch.full_like(x_seq[0], v_reset)
    spikes = []
    for x in x_seq:
        if v_reset == 0.:
            v = v + (x - v) / tau                                   # decay_input, reset0
        else:
            v = v + (x - (v - v_reset)) / tau
        spike = _SigmoidSurrogate.apply(v - v_threshold, alpha)
        spike_d = spike.detach() if detach_reset else spike
        v = (1. - spike_d) * v + spike_d * v_reset                  # jit_hard_reset
        spikes.append(spike)
    return torch.stack(spikes)


WALKTHROUGH_CLAIM = dict(charge="decay_input", decay=0.5, threshold=1.0, reset="hard",
                         v_reset=0.0, surrogate="sigmoid", sg_param=4.0, detach_reset=False)


def test_walkthrough_claim_holds_for_the_spikingjelly_transcription():
    assert_neuron_matches(lambda x, **_: spikingjelly_style_lif(x), max_examples=100,
                          **WALKTHROUGH_CLAIM)


def test_walkthrough_catches_a_detached_reset_in_the_transcription():
    with pytest.raises(AssertionError) as caught:
        assert_neuron_matches(lambda x, **_: spikingjelly_style_lif(x, detach_reset=True),
                              max_examples=100, **WALKTHROUGH_CLAIM)
    assert "points to the reset path" in str(caught.value)
    assert "detaches the spike inside the reset" in str(caught.value)


def test_walkthrough_with_spikingjelly():
    pytest.importorskip("spikingjelly")
    from spikingjelly.activation_based import neuron, surrogate

    node = neuron.LIFNode(tau=2.0, decay_input=True, v_threshold=1.0, v_reset=0.0,
                          surrogate_function=surrogate.Sigmoid(alpha=4.0),
                          detach_reset=False, step_mode="m", backend="torch")

    def lif(x, **options):
        node.reset()
        return node(x)

    assert_neuron_matches(lif, max_examples=100, **WALKTHROUGH_CLAIM)
    node.detach_reset = True
    with pytest.raises(AssertionError, match="points to the reset path"):
        assert_neuron_matches(lif, max_examples=100, **WALKTHROUGH_CLAIM)


# --------------------------------------------------------------------------------------
# The command line
# --------------------------------------------------------------------------------------

USER_MODULE = '''
import torch

def if_neuron(x, threshold=1.0, **options):
    """integrate-and-fire, hard reset, rect surrogate of width 1"""
    class Spike(torch.autograd.Function):
        @staticmethod
        def forward(ctx, z):
            ctx.save_for_backward(z)
            return (z >= 0).to(z.dtype)

        @staticmethod
        def backward(ctx, g):
            (z,) = ctx.saved_tensors
            return g * (z.abs() < 0.5).to(z.dtype)

    v, out = torch.zeros_like(x[0]), []
    for t in range(x.shape[0]):
        h = v + x[t]
        s = Spike.apply(h - threshold)
        v = h * (1 - s)
        out.append(s)
    return torch.stack(out)
'''


def test_cli_verify_against_passes_and_fails(tmp_path, monkeypatch, capsys):
    from spikegrad.tools import cli

    (tmp_path / "my_neurons.py").write_text(USER_MODULE)
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    argv = ["verify", "--against", "my_neurons:if_neuron", "--max-examples", "30"]
    assert cli.main(argv + ["--options", '{"charge": "if", "reset": "hard"}',
                            "--grad", "threshold"]) == 0
    assert "PASS" in capsys.readouterr().out
    # claimed as a leaky neuron: the charge differs, the leak path is named
    assert cli.main(argv + ["--options", '{"charge": "mul", "decay": 0.5}']) == 1
    out = capsys.readouterr().out
    assert "FAIL" in out and "points to the leak path" in out and "charge='if'" in out


def test_cli_verify_against_reports_bad_arguments(capsys):
    from spikegrad.tools import cli

    assert cli.main(["verify", "--against", "no_colon"]) == 2
    assert "package.module:function" in capsys.readouterr().err
    assert cli.main(["verify", "--against", "math:sqrt", "--options", "[1]"]) == 2
    assert "JSON object" in capsys.readouterr().err
    assert cli.main(["verify", "--against", "math:sqrt", "--grad", "tau"]) == 2
    assert "--grad" in capsys.readouterr().err


def test_the_walkthrough_message_in_the_docs_is_what_the_checker_prints():
    from pathlib import Path

    doc = (Path(__file__).resolve().parents[2] / "docs" / "testing.md").read_text()
    shown = doc.split("```\nAssertionError: ")[1].split("\n```")[0]
    with pytest.raises(AssertionError) as caught:
        assert_neuron_matches(lambda x, **_: spikingjelly_style_lif(x, detach_reset=True),
                              **WALKTHROUGH_CLAIM)
    assert str(caught.value) == shown


def test_a_tensor_option_the_gradient_never_reaches_is_reported():
    def threshold_as_float(x, threshold, **kwargs):
        return user_neuron(x, threshold=threshold.item(), **kwargs)

    with pytest.raises(AssertionError) as caught:
        assert_neuron_matches(threshold_as_float, max_examples=10, threshold=_tensor(1.0))
    message = str(caught.value)
    assert "no gradient reached threshold" in message
    assert "points to the threshold path" in message
    assert "has no gradient for the threshold" in message


@pytest.mark.parametrize("bug, path", [("surrogate_width_halved", "surrogate"),
                                       ("threshold_gradient_sign", "threshold"),
                                       ("strict_threshold", "threshold")])
def test_bugs_are_caught_in_float32(bug, path):
    options = _with_tensors(VARIANTS["spikingjelly_lif"], ("threshold",), torch.float32)

    def buggy(x, **kwargs):
        return user_neuron(x, bug=bug, **kwargs)

    with pytest.raises(AssertionError) as caught:
        assert_neuron_matches(buggy, max_examples=60, **options)
    assert "float32" in str(caught.value)
    assert f"points to the {path} path" in str(caught.value), str(caught.value)
