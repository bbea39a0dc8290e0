"""The buffers of spikegrad._core and spikegrad._cuda (bindings/buffers.hpp), checked through
_core on the CPU: NumPy arrays and CPU torch tensors (read by duck typing) are one calling
convention with the same bits; every bad buffer is refused with the documented error type and
a message that names the argument."""

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from spikegrad import _core  # noqa: E402

OPTIONS = dict(charge="decay_input", reset="soft", scale="absolute", surrogate="sigmoid",
               smooth=False)
T, N = 3, 5


def _neuron_buffers(make, dtype=np.float32):
    """The arguments of _core.neuron_forward, made by `make` (np.asarray or torch.from_numpy)."""
    rng = np.random.default_rng(0)
    x = (rng.normal(0.6, 1.0, (T, N))).astype(dtype)
    return dict(decay=0.3, v_reset=-0.1, threshold=make(np.full(T, 0.9, dtype)),
                sg_param=make(np.full(T, 2.0, dtype)), v_init=make(np.zeros(N, dtype)),
                x=make(x), output=make(np.empty((T, N), dtype)),
                membrane=make(np.empty((T, N), dtype)), v_last=make(np.empty(N, dtype)))


def _forward(args):
    _core.neuron_forward(args["decay"], args["v_reset"], args["threshold"], args["sg_param"],
                         args["v_init"], args["x"], args["output"], args["membrane"],
                         args["v_last"], **OPTIONS)


class _FakeTensor:
    """Duck-typed like a torch tensor on another device: refused before its data is read."""

    class _Device:
        type, index = "cuda", 0

    device = _Device()
    dtype = torch.float32
    shape = torch.Size((T,))

    def is_contiguous(self):
        return True

    def data_ptr(self):
        raise AssertionError("the data of a tensor on the wrong device must not be read")


MAKERS = {"numpy": np.asarray, "torch": torch.from_numpy}


@pytest.mark.parametrize("kind", MAKERS)
@pytest.mark.parametrize("name, bad, error, message", [
    ("threshold", lambda a: a.astype(np.float64), TypeError,
     r"threshold must have dtype float32 \(the dtype of x\), got float64"),
    ("x", lambda a: a.astype(np.int32), TypeError, "x must be float32 or float64, got int32"),
    ("sg_param", lambda a: np.ones(T + 1, a.dtype), ValueError,
     r"sg_param must have shape \(3,\), got \(4,\)"),
    ("output", lambda a: np.empty((N, T), a.dtype).T, ValueError, "output must be C-contiguous"),
    ("v_last", lambda a: np.empty((2, N), a.dtype)[:, 0], ValueError,
     r"v_last must have shape \(5,\), got \(2,\)"),
    ("x", lambda a: a.reshape(-1), ValueError, r"x must be 2-D \[T, N\], got shape \(15,\)"),
])
def test_bad_buffers_are_refused_naming_the_argument(kind, name, bad, error, message):
    make = MAKERS[kind]
    args = _neuron_buffers(make)
    args[name] = make(bad(np.asarray(args[name])))
    with pytest.raises(error, match=message):
        _forward(args)


def test_read_only_array_is_refused():
    args = _neuron_buffers(np.asarray)
    args["output"].flags.writeable = False
    with pytest.raises(ValueError, match="output must be writeable"):
        _forward(args)


@pytest.mark.parametrize("kind", MAKERS)
def test_non_contiguous_tensor_view_is_refused(kind):
    args = _neuron_buffers(MAKERS[kind])
    wide = MAKERS[kind](np.empty((T, 2 * N), np.float32))
    args["membrane"] = wide[:, ::2]
    with pytest.raises(ValueError, match="membrane must be C-contiguous"):
        _forward(args)


@pytest.mark.parametrize("kind", MAKERS)
def test_overlapping_output_is_refused(kind):
    args = _neuron_buffers(MAKERS[kind])
    args["output"] = args["x"]                 # the same memory
    with pytest.raises(ValueError, match="output must not share memory with x"):
        _forward(args)
    args = _neuron_buffers(MAKERS[kind])
    args["v_last"] = args["membrane"][1]       # a row of another output
    with pytest.raises(ValueError, match="(membrane must not share memory with v_last|"
                                         "v_last must not share memory with membrane)"):
        _forward(args)


def test_tensor_on_another_device_is_refused():
    args = _neuron_buffers(torch.from_numpy)
    args["x"] = torch.empty((T, N), device="meta")
    with pytest.raises(ValueError, match=r"x must be on the CPU .*got a tensor on meta"):
        _forward(args)
    args = _neuron_buffers(torch.from_numpy)
    args["threshold"] = _FakeTensor()
    with pytest.raises(ValueError, match="threshold must be on the CPU .*got a tensor on cuda"):
        _forward(args)


def test_other_objects_are_type_errors():
    args = _neuron_buffers(np.asarray)
    args["sg_param"] = [2.0] * T
    with pytest.raises(TypeError, match="sg_param must be a numpy.ndarray or a CPU torch.Tensor, "
                                        "got list"):
        _forward(args)
    args = _neuron_buffers(np.asarray)
    args["decay"] = "0.3"
    with pytest.raises(TypeError, match="decay must be a float or a 0-d buffer, got str"):
        _forward(args)
    args = _neuron_buffers(np.asarray)
    args["decay"] = np.full(1, 0.3, np.float32)
    with pytest.raises(ValueError, match=r"decay must have shape \(\), got \(1,\)"):
        _forward(args)


def _backward(make, dtype=np.float64, workspace=None, grad_decay=None):
    args = _neuron_buffers(make, dtype)
    rng = np.random.default_rng(1)
    grad_x, grad_v_init = make(np.empty((T, N), dtype)), make(np.empty(N, dtype))
    sums = [make(np.empty(())), make(np.empty(T)), make(np.empty(T))]
    if grad_decay is not None:
        sums[0] = grad_decay
    if workspace is None:
        workspace = make(np.empty(_core.neuron_backward_workspace_bytes(args["x"]), np.uint8))
    _core.neuron_backward(args["decay"], args["v_reset"], args["threshold"], args["sg_param"],
                          args["v_init"], args["x"], make(rng.normal(size=(T, N)).astype(dtype)),
                          None, None, grad_x, grad_v_init, *sums, workspace, detach_reset=False,
                          **OPTIONS)
    return [np.asarray(a) for a in (grad_x, grad_v_init, *sums)]


@pytest.mark.parametrize("kind", MAKERS)
def test_workspace_and_gradient_sums_are_checked(kind):
    make = MAKERS[kind]
    x = make(np.empty((T, N)))
    need = _core.neuron_backward_workspace_bytes(x)
    assert need > 0 and need % 8 == 0
    with pytest.raises(ValueError, match=f"workspace must have at least {need} bytes, got 8"):
        _backward(make, workspace=make(np.empty(8, np.uint8)))
    with pytest.raises(TypeError, match="workspace must have dtype uint8"):
        _backward(make, workspace=make(np.empty(need // 8)))
    with pytest.raises(ValueError, match="workspace must be 8-byte aligned"):
        _backward(make, workspace=make(np.empty(need + 8, np.uint8))[1:need + 1])
    with pytest.raises(TypeError, match=r"grad_decay must have dtype float64 \(float64 sums\)"):
        _backward(make, dtype=np.float32, grad_decay=make(np.empty((), np.float32)))


def test_numpy_and_tensor_buffers_give_the_same_bits():
    results = {}
    for kind, make in MAKERS.items():
        args = _neuron_buffers(make)
        _forward(args)
        results[kind] = [np.asarray(args[name]).copy() for name in ("output", "membrane", "v_last")]
        results[kind] += _backward(make)
        # a 0-d decay buffer is read as the number
        decay = make(np.array(0.3, np.float32))
        args = _neuron_buffers(make)
        args["decay"] = decay
        _forward(args)
        results[kind] += [np.asarray(args[name]).copy() for name in ("output", "membrane")]
    for a, b in zip(results["numpy"], results["torch"]):
        assert a.dtype == b.dtype and a.shape == b.shape and a.tobytes() == b.tobytes()


def test_multilevel_adaptive_and_pnb_take_tensors_with_the_same_bits():
    rng = np.random.default_rng(2)
    x = rng.normal(0.0, 2.0, (T, N)).astype(np.float32)
    outputs = {}
    for kind, make in MAKERS.items():
        got = []
        output, v_last = np.empty((T, N), np.float32), np.empty(N, np.float32)
        _core.multilevel_forward(0.25, 1.0, 0.5, 2, 3, make(np.ones(T, np.float32)),
                                 make(np.zeros(N, np.float32)), make(x), make(output), None,
                                 make(v_last), surrogate="tsg", smooth=False)
        got += [output, v_last]
        grad_x, grad_v_init = np.empty((T, N), np.float32), np.empty(N, np.float32)
        grad_decay, grad_a = np.empty(()), np.empty(T)
        workspace = np.empty(_core.multilevel_backward_workspace_bytes(make(x)), np.uint8)
        _core.multilevel_backward(0.25, 1.0, 0.5, 2, 3, make(np.ones(T, np.float32)),
                                  make(np.zeros(N, np.float32)), make(x), make(np.ones_like(x)),
                                  None, None, make(grad_x), make(grad_v_init), make(grad_decay),
                                  make(grad_a), make(workspace), surrogate="tsg", smooth=False,
                                  detach_reset=False)
        got += [grad_x, grad_v_init, grad_decay, grad_a]
        stats = [np.empty((T, N), np.float32), np.empty(N, np.float32), np.empty(T, np.float32),
                 np.empty(T, np.float32), np.empty(T), np.empty(T)]
        workspace = np.empty(_core.adaptive_workspace_bytes(make(x)), np.uint8)
        _core.adaptive_forward(0.3, 0.0, None, make(x), make(stats[0]), None, make(stats[1]),
                               *map(make, stats[2:]), make(np.empty(N, np.float32)),
                               make(workspace), charge="mul", reset="hard",
                               threshold_mode="true", f_c=1.0, v_th=1.0, tgo=True,
                               tgo_driver="std", width=1.0)
        got += stats
        sums = np.empty((2, 2, 2))
        workspace = np.empty(_core.pnb_workspace_bytes(make(x), 2), np.uint8)
        _core.pnb_partial_sums(make(x), 1.0, 0.5, 2, make(sums), make(workspace))
        grad_h = np.empty_like(x)
        _core.pnb_partial_sums_backward(make(x), 1.0, 0.5, 2, make(np.ones((2, 2, 2))),
                                        make(grad_h))
        got += [sums, grad_h]
        outputs[kind] = got
    for a, b in zip(outputs["numpy"], outputs["torch"]):
        assert a.tobytes() == b.tobytes()
