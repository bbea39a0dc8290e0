"""The torch ops of docs/spec.md §6 (`spikegrad.multilevel`, `spikegrad.pnb_loss`) and the layer
`spikegrad.nn.CF`: against the reference, gradcheck in smooth mode, opcheck, torch.compile,
and the user-facing errors."""

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

torch = pytest.importorskip("torch")

import spikegrad  # noqa: E402
from spikegrad import ref  # noqa: E402
from spikegrad.ops import multilevel_ops  # noqa: E402
from spikegrad.testing import strategies as sgst  # noqa: E402
from spikegrad.testing.compare import assert_bitwise_equal, assert_close  # noqa: E402

from conftest import examples  # noqa: E402
from pnb_transcription import transcription  # noqa: E402

OPTIONS = ("theta_p", "theta_n", "k_p", "k_n", "surrogate", "detach_reset", "smooth")


@settings(max_examples=examples(200))
@given(case=sgst.multilevel_case(shape=sgst.shapes(max_T=8, max_N=300)),
       seed=st.integers(0, 2**32 - 1))
def test_op_matches_reference(case, seed):
    x = torch.from_numpy(case["x"]).requires_grad_()
    dt = x.dtype
    T, N = x.shape
    tsg = case["surrogate"] == "tsg"
    a = torch.as_tensor(np.broadcast_to(np.asarray(case["a"], np.float64), np.shape(case["a"]))
                        .copy(), dtype=dt).requires_grad_(tsg)
    decay = torch.tensor(case["decay"], dtype=dt, requires_grad=True)
    v_init = case["v_init"]
    v_init_t = None if v_init is None else torch.as_tensor(
        np.asarray(v_init, np.float64), dtype=dt).requires_grad_()
    out = spikegrad.multilevel(x, decay=decay, a=a, v_init=v_init_t, return_membrane=True,
                               **{k: case[k] for k in OPTIONS})
    expected = ref.multilevel.forward(**case)
    for name in ("output", "membrane", "v_last"):
        actual = getattr(out, name).detach().numpy()   # bit-identical, smooth mode too
        assert_bitwise_equal(actual, getattr(expected, name), f"op {name}")

    rng = np.random.default_rng(seed)
    upstream = [rng.normal(size=(T, N)).astype(case["x"].dtype),
                rng.normal(size=(T, N)).astype(case["x"].dtype),
                rng.normal(size=N).astype(case["x"].dtype)]
    loss = sum((o * torch.from_numpy(u)).sum()
               for o, u in zip((out.output, out.membrane, out.v_last), upstream))
    leaves = {"x": x, "decay": decay}
    if v_init_t is not None:
        leaves["v_init"] = v_init_t
    if tsg:
        leaves["a"] = a
    grads = dict(zip(leaves, torch.autograd.grad(loss, list(leaves.values()))))
    g_ref = ref.multilevel.backward(expected, *upstream)
    scale = ref.multilevel.error_scale(expected, *upstream)
    for name, g in grads.items():
        assert_close(g.numpy(), getattr(g_ref, name), f"grad {name}", dtype=case["x"].dtype,
                     T=T, magnitude=getattr(scale, name))


@pytest.mark.parametrize("surrogate", ["span", "tsg"])
def test_gradcheck_in_smooth_mode(surrogate):
    """detach_reset is not the derivative of any forward: it is checked against the
    reference's backward in test_op_matches_reference."""
    torch.manual_seed(0)
    T, N = 4, 5
    x = (torch.randn(T, N, dtype=torch.float64) * 1.5).requires_grad_()
    decay = torch.tensor(0.4, dtype=torch.float64, requires_grad=True)
    a = (torch.rand(T, dtype=torch.float64) * 0.5 + 0.6).requires_grad_(surrogate == "tsg")
    v_init = (torch.randn(N, dtype=torch.float64) * 0.3).requires_grad_()

    def f(x, decay, a, v_init):
        out = spikegrad.multilevel(x, decay=decay, a=a, v_init=v_init, theta_p=0.8,
                                   theta_n=1.2, k_p=2, k_n=3, surrogate=surrogate,
                                   smooth=True,
                                   return_membrane=True)
        return out.output, out.membrane, out.v_last

    assert torch.autograd.gradcheck(f, (x, decay, a, v_init))


def test_opcheck():
    torch.manual_seed(0)
    T, N = 5, 7
    for dtype, grad in ((torch.float32, False), (torch.float64, True)):
        x = torch.randn(T, N, dtype=dtype, requires_grad=grad)
        args = (x, torch.tensor(0.25, dtype=dtype, requires_grad=grad),
                torch.full((T,), 1.0, dtype=dtype, requires_grad=grad),
                torch.zeros(N, dtype=dtype, requires_grad=grad), 1.0, 1.0, 2, 2, "tsg",
                False, False, True)
        torch.library.opcheck(multilevel_ops.multilevel_forward, args)
    x = torch.randn(T, N)
    torch.library.opcheck(multilevel_ops.multilevel_backward, (
        x, torch.tensor(0.25), torch.ones(T), torch.zeros(N), torch.randn(T, N), None,
        torch.randn(N), 1.0, 1.0, 2, 2, "span", False, True))
    h = (torch.randn(3, 40, dtype=torch.float64) * 2).requires_grad_()
    torch.library.opcheck(multilevel_ops.pnb_partial_sums, (h, 1.0, 1.0, 2))
    torch.library.opcheck(multilevel_ops.pnb_partial_sums_backward,
                          (h.detach(), torch.randn(2, 2, 2, dtype=torch.float64), 1.0, 1.0, 2))


def test_torch_compile_fullgraph_matches_eager():
    torch.manual_seed(0)

    def layer(x, a):
        out = spikegrad.multilevel(x, surrogate="tsg", a=a, return_membrane=True)
        return out.output.sum() + spikegrad.pnb_loss(out.membrane)

    x = torch.randn(4, 3, 5, requires_grad=True) * 2
    a = torch.full((4,), 1.0, requires_grad=True)
    compiled = torch.compile(layer, fullgraph=True, backend="aot_eager")
    eager_out, compiled_out = layer(x, a), compiled(x, a)
    torch.testing.assert_close(compiled_out, eager_out, rtol=0, atol=0)
    for g, e in zip(torch.autograd.grad(compiled_out, (a,)), torch.autograd.grad(eager_out, (a,))):
        torch.testing.assert_close(g, e, rtol=0, atol=0)


# ---------------------------------------------------------------------------------------
# pnb_loss
# ---------------------------------------------------------------------------------------

@settings(max_examples=examples(60))
@given(seed=st.integers(0, 2**32 - 1), K=st.integers(1, 3),
       sizes=st.lists(st.integers(1, 300), min_size=1, max_size=3), pooled=st.booleans(),
       dtype=st.sampled_from([torch.float32, torch.float64]))
def test_pnb_loss_matches_reference(seed, K, sizes, pooled, dtype):
    rng = np.random.default_rng(seed)
    hs = [torch.from_numpy(rng.normal(0, 1.5 * K, n)).to(dtype).requires_grad_()
          for n in sizes]
    kw = dict(theta_p=1.0, theta_n=0.75, k=K, pooled=pooled)
    loss = spikegrad.pnb_loss(hs if len(hs) > 1 else hs[0], **kw)
    assert loss.dtype == dtype and loss.shape == ()
    arrays = [h.detach().numpy() for h in hs]
    expected = ref.pnb.loss(arrays, **kw)
    eps = float(np.finfo(np.float32 if dtype == torch.float32 else np.float64).eps)
    # The sums differ from the reference's by exp's ulps only, relatively (no cancellation:
    # within a region h has one sign): <= ULPS = 16 eps each, so each mu to 32 eps, each
    # |log(ratio + eps)| absolutely to 64 eps (d log r = dr / r); then one cast to the dtype.
    assert abs(float(loss.detach()) - expected) <= 64 * eps * max(1.0, abs(expected))
    grads = torch.autograd.grad(loss, hs)
    g_ref = ref.pnb.loss_backward(arrays, **kw)
    for g, e in zip(grads, g_ref):
        magnitude = np.abs(e).max() if e.size else 0.0
        assert_close(g.numpy(), e.astype(g.numpy().dtype), "pnb grad",
                     dtype=np.float32 if dtype == torch.float32 else np.float64, T=1,
                     magnitude=max(magnitude, np.abs(np.concatenate([x.ravel() for x in g_ref])).max()))


def test_pnb_loss_hand_transcription_and_empty_regions():
    h = torch.tensor([0.3, 0.9, 1.7, -0.2, -1.4, -2.0, 0.0, 5.0], dtype=torch.float64)
    assert float(spikegrad.pnb_loss(h)) == pytest.approx(transcription([h.numpy()]), rel=1e-13)
    empty = torch.tensor([0.0, 3.0, -3.0], dtype=torch.float64, requires_grad=True)
    loss = spikegrad.pnb_loss(empty)
    assert float(loss.detach()) == pytest.approx(-math.log(1e-8), rel=1e-15)
    (g,) = torch.autograd.grad(loss, empty)
    assert torch.equal(g, torch.zeros(3, dtype=torch.float64))


def test_pnb_pooled_differs_from_per_layer():
    """Two layers, one only positive, one only negative: pooled, they balance; per layer,
    each has one empty side."""
    pos = torch.tensor([0.5, 1.5], dtype=torch.float64)
    neg = -pos
    pooled = float(spikegrad.pnb_loss([pos, neg]))
    per_layer = float(spikegrad.pnb_loss([pos, neg], pooled=False))
    assert pooled == pytest.approx(transcription([pos.numpy(), neg.numpy()]), rel=1e-13)
    assert per_layer == pytest.approx(
        transcription([pos.numpy(), neg.numpy()], pooled=False), rel=1e-13)
    assert pooled < 1e-6 < per_layer


@pytest.mark.parametrize("call, error, name", [
    (lambda h: spikegrad.pnb_loss([]), TypeError, "membranes"),
    (lambda h: spikegrad.pnb_loss([h, h.float()]), TypeError, "membranes"),
    (lambda h: spikegrad.pnb_loss(h, k=0), ValueError, "k"),
    (lambda h: spikegrad.pnb_loss(h, theta_p=0.0), ValueError, "theta_p"),
    (lambda h: spikegrad.pnb_loss(h, eps=-1.0), ValueError, "eps"),
    (lambda h: spikegrad.pnb_loss(h, pooled=1), TypeError, "pooled"),
    (lambda h: spikegrad.multilevel(h, theta_n=-1.0), ValueError, "theta_n"),
    (lambda h: spikegrad.multilevel(h, theta_p=torch.tensor(1.0)), TypeError, "theta_p"),
    (lambda h: spikegrad.multilevel(h, k_p=0), ValueError, "k_p"),
    (lambda h: spikegrad.multilevel(h, k_n=2.0), TypeError, "k_n"),
    (lambda h: spikegrad.multilevel(h, surrogate="rect"), ValueError, "surrogate"),
    (lambda h: spikegrad.multilevel(h, a=0.0), ValueError, "a"),
    (lambda h: spikegrad.multilevel(h, a=torch.ones(3, dtype=torch.float64)), ValueError, "a"),
    (lambda h: spikegrad.multilevel(h, surrogate="span", a=torch.ones(
        4, dtype=torch.float64, requires_grad=True)), ValueError, "a is learnable"),
    (lambda h: spikegrad.multilevel(h, smooth=1), TypeError, "smooth"),
])
def test_errors_name_the_argument(call, error, name):
    h = torch.randn(4, 3, dtype=torch.float64)
    with pytest.raises(error, match=name):
        call(h)


# ---------------------------------------------------------------------------------------
# spikegrad.nn.CF
# ---------------------------------------------------------------------------------------

def test_cf_layer_tsg_parameter_and_membrane():
    torch.manual_seed(0)
    layer = spikegrad.nn.CF(T=3)
    assert torch.allclose(layer.a(), torch.ones(3, dtype=torch.float64), rtol=0, atol=1e-15)
    assert torch.allclose(layer.q, torch.full((3,), -math.log(3), dtype=torch.float64))
    x = torch.randn(3, 2, 6, requires_grad=True) * 2
    out = layer(x)
    expected = spikegrad.multilevel(x, surrogate="tsg", a=torch.ones(3), return_membrane=True)
    assert torch.equal(out, expected.output)
    assert torch.equal(layer.membrane, expected.membrane)
    loss = out.sum() + spikegrad.pnb_loss(layer.membrane)
    loss.backward()
    assert layer.q.grad is not None and layer.q.grad.shape == (3,)
    # dL/dq = dL/da * da/dq = dL/da * s_a * sg(q) (1 - sg(q)), a = 1 at sg(q) = 1/4
    a = torch.ones(3, requires_grad=True)
    again = spikegrad.multilevel(x.detach(), surrogate="tsg", a=a, return_membrane=True)
    (g_a,) = torch.autograd.grad(again.output.sum() + spikegrad.pnb_loss(again.membrane), a)
    torch.testing.assert_close(layer.q.grad, (g_a * 2 * 0.25 * 0.75).double(), rtol=1e-6,
                               atol=1e-7)
    assert [name for name, _ in layer.named_parameters()] == ["q"]
    assert "q" in layer.state_dict()


def test_cf_layer_span_and_checks():
    layer = spikegrad.nn.CF(surrogate="span")
    assert list(layer.parameters()) == []
    x = torch.tensor([[[-3.0, -1.5, 0.0, 1.0, 2.5, 7.0]]])
    np.testing.assert_array_equal(layer(x).numpy()[0, 0], [-2, -1, 0, 0, 2, 2])
    with pytest.raises(ValueError, match="T"):
        spikegrad.nn.CF()
    with pytest.raises(ValueError, match="b_a"):
        spikegrad.nn.CF(T=2, a0=3.0)
    with pytest.raises(ValueError, match="T = 2"):
        spikegrad.nn.CF(T=2)(torch.zeros(3, 1, 1))


def test_cf_layer_diagnostics_by_hand():
    layer = spikegrad.nn.CF(T=1, a0=1.0)
    layer.record_diagnostics = True
    # TSG a = 1, theta = 1, K = 2: triangles cover (0, 3) and (-3, 0) except the points
    # 0 and +-3 (where they vanish); outputs nonzero for h > 1 or h < -1 (strict):
    # 1.5, -2, 3, 4, -3.5 fire; 0.5, 1.0, 1.5, -2 have a surrogate
    x = torch.tensor([[[0.0, 0.5, 1.0, 1.5, -2.0, 3.0, 4.0, -3.5]]])
    layer(x)
    assert layer.diagnostics["firing_rate"].tolist() == [5 / 8]
    assert layer.diagnostics["gradient_available"].tolist() == [4 / 8]


# ---------------------------------------------------------------------------------------
# An independent eager transcription of docs/spec.md §6, differentiated by autograd: the oracle for
# the non-smooth and detached backward paths, which finite differences cannot check.
# ---------------------------------------------------------------------------------------

class _StraightThrough(torch.autograd.Function):
    """value in the forward; d/dh := d_dh and d/da := sum(d_da) in the backward."""

    @staticmethod
    def forward(ctx, h, a, value, d_dh, d_da):
        ctx.save_for_backward(d_dh, d_da)
        return value

    @staticmethod
    def backward(ctx, grad):
        d_dh, d_da = ctx.saved_tensors
        return grad * d_dh, (grad * d_da).sum(), None, None, None


def eager_multilevel(x, *, decay, theta_p, theta_n, k_p, k_n, surrogate, a, detach_reset,
                     v_init):
    """x [T, N], decay 0-d, a [T], v_init [N]: docs/spec.md §6 written from the text."""
    v = v_init
    outputs, membranes = [], []
    for t in range(x.shape[0]):
        h = decay * v + x[t]
        at = a[t]
        hd = h.detach()
        n_p = n_n = 0
        if surrogate == "span":
            window_p = ((theta_p / 2 < hd) & (hd < (k_p + 0.5) * theta_p)).to(h.dtype)
            window_n = ((-(k_n + 0.5) * theta_n < hd) & (hd < -theta_n / 2)).to(h.dtype)
            count_p = sum((hd > k * theta_p).to(h.dtype) for k in range(1, k_p + 1))
            count_n = sum((hd < -k * theta_n).to(h.dtype) for k in range(1, k_n + 1))
            zero = torch.zeros_like(hd)
            n_p = _StraightThrough.apply(h, at, count_p, at.detach() * window_p, zero)
            n_n = _StraightThrough.apply(h, at, count_n, -at.detach() * window_n, zero)
        else:
            ad = at.detach()
            for k in range(1, k_p + 1):
                d = hd - k * theta_p
                inside = (1 - ad * d.abs()) > 0
                n_p = n_p + _StraightThrough.apply(
                    h, at, (d > 0).to(h.dtype), torch.clamp(ad * (1 - ad * d.abs()), min=0),
                    torch.where(inside, d * (1 - ad * d.abs()), torch.zeros_like(d)))
            for k in range(1, k_n + 1):
                d = hd + k * theta_n
                inside = (1 - ad * d.abs()) > 0
                # n_n = 1 - H(d) with primitive 1 - F_a(d): both derivatives change sign
                n_n = n_n + _StraightThrough.apply(
                    h, at, (d < 0).to(h.dtype), -torch.clamp(ad * (1 - ad * d.abs()), min=0),
                    -torch.where(inside, d * (1 - ad * d.abs()), torch.zeros_like(d)))
        outputs.append(n_p - n_n)
        if detach_reset:
            n_p, n_n = n_p.detach(), n_n.detach()
        v = h - n_p * theta_p + n_n * theta_n
        membranes.append(h)
    return torch.stack(outputs), torch.stack(membranes), v


@settings(max_examples=examples(120))
@given(case=sgst.multilevel_case(smooth=st.just(False), dtype=st.just(np.float64),
                                 shape=sgst.shapes(max_T=6, max_N=50)),
       seed=st.integers(0, 2**32 - 1))
def test_op_backward_matches_independent_autograd_transcription(case, seed):
    rng = np.random.default_rng(seed)
    T, N = case["x"].shape
    tsg = case["surrogate"] == "tsg"
    x = torch.from_numpy(case["x"]).requires_grad_()
    decay = torch.tensor(case["decay"], dtype=torch.float64, requires_grad=True)
    a = torch.as_tensor(np.broadcast_to(np.asarray(case["a"], np.float64), (T,)).copy()
                        ).requires_grad_(tsg)
    v_init = torch.from_numpy(rng.normal(0, 0.5, N)).requires_grad_()
    levels = {k: case[k] for k in ("theta_p", "theta_n", "k_p", "k_n", "surrogate",
                                   "detach_reset")}
    upstream = [torch.from_numpy(rng.normal(size=s)) for s in ((T, N), (T, N), (N,))]
    leaves = [x, decay, v_init] + ([a] if tsg else [])

    out = spikegrad.multilevel(x, decay=decay, a=a, v_init=v_init, return_membrane=True,
                               **levels)
    o_e, h_e, v_e = eager_multilevel(x, decay=decay, a=a, v_init=v_init, **levels)
    # float64, the same order of operations (docs/spec.md §0): the same spikes, membranes to the bit
    assert torch.equal(out.output, o_e) and torch.equal(out.membrane, h_e)
    assert torch.equal(out.v_last, v_e)
    actual = torch.autograd.grad(
        sum((o * u).sum() for o, u in zip((out.output, out.membrane, out.v_last), upstream)),
        leaves)
    expected = torch.autograd.grad(
        sum((o * u).sum() for o, u in zip((o_e, h_e, v_e), upstream)), leaves)
    result = ref.multilevel.forward(**dict(case, v_init=v_init.detach().numpy()))
    scale = ref.multilevel.error_scale(result, *[u.numpy() for u in upstream])
    for name, g, e in zip(("x", "decay", "v_init", "a"), actual, expected):
        assert_close(g.numpy(), e.numpy(), f"grad {name} vs autograd transcription",
                     dtype=np.float64, T=T, magnitude=getattr(scale, name))


def test_tsg_on_a_single_level_neuron_is_the_triangle_with_p_one_over_a():
    """docs/cf.md: TSG on a plain LIF layer is spikegrad.neuron's triangle with
    sg_param = 1 / a; autograd through 1/a gives docs/spec.md §6's straight-through a-gradient."""
    torch.manual_seed(3)
    T, N = 3, 40
    x = torch.randn(T, N, dtype=torch.float64) * 1.5 + 0.5
    a = torch.tensor([0.7, 1.0, 1.8], dtype=torch.float64, requires_grad=True)
    out = spikegrad.neuron(x, charge="mul", decay=0.25, threshold=1.0, reset="soft",
                           surrogate="triangle", sg_param=1 / a, return_membrane=True)
    g_o = torch.randn(T, N, dtype=torch.float64)
    (g_a,) = torch.autograd.grad((out.output * g_o).sum(), a)
    # the recursion of docs/spec.md §8 by hand (mul charge, soft reset), with docs/spec.md §6's dF_a/da
    h = out.membrane.detach().numpy()
    F = ref.formulas
    expected = np.zeros(T)
    g_v = np.zeros(N)
    for t in reversed(range(T)):
        d = h[t] - 1.0
        sg = F.tsg_derivative(d, a[t].item())
        g_s = g_o[t].numpy() - 1.0 * g_v            # do/ds = 1, dv/ds = -theta
        expected[t] = np.sum(g_s * F.tsg_a_derivative(d, a[t].item()))
        g_h = g_v * 1.0 + g_s * sg                   # soft reset: dv/dh = 1 with s fixed
        g_v = g_h * 0.25
    np.testing.assert_allclose(g_a.numpy(), expected, rtol=1e-12, atol=1e-12)
