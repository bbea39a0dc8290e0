"""`assert_neuron_matches`: check someone else's neuron against spikegrad.ref.

    assert_neuron_matches(fn, charge="decay_input", decay=0.5, reset="hard",
                          surrogate="sigmoid", threshold=torch.tensor(1.0))

`fn(x, **options)` is the neuron under test: x is a [T, N] torch tensor (requires_grad),
`options` are exactly the keywords given to the checker (tensors among them as fresh leaf
tensors requiring grad, of x's dtype), and it returns the [T, N] output o[t]. The checker
draws inputs with hypothesis (the threshold edge included), and for each one

1. compares the output with `spikegrad.ref.forward` **exactly** (smooth mode: within the
   bound of `spikegrad.testing.compare`, because the primitives call exp/atan);
2. back-propagates a random upstream gradient dL/do through `fn` with autograd and compares
   dL/dx and dL/d(every tensor option) with `spikegrad.ref.backward`, within
   `atol + rtol * scale`, `scale` being the largest rounding magnitude of that gradient
   (`spikegrad.ref.error_scale`: the sum of |every term| that reached it). The default rtol
   is the derived bound of `spikegrad.testing.compare`, `(T + 1) * 16 * eps + 1e-12`; atol
   defaults to 0.

On a mismatch, hypothesis shrinks the input, and the AssertionError shows the minimal
example, the first timestep and neuron that differ, expected vs actual, and a diagnosis:
the reference is re-run with known bugs substituted into its formulas (`MUTATIONS`), and the
message names the ones that reproduce the user's numbers, and the path (reset, leak,
surrogate, threshold) they point to.
"""

from __future__ import annotations

import contextlib
import threading
from dataclasses import dataclass, field

import numpy as np

from .. import ref
from .._options import CHARGES, DEFAULT_SG_PARAM, RESETS, SCALES, SURROGATES, check_options
from ..ref import formulas as F
from . import compare

__all__ = ["assert_neuron_matches", "Mutation", "MUTATIONS", "load_callable",
           "options_from_json"]

NUMBER_OPTIONS = ("decay", "threshold", "sg_param", "v_init", "v_reset")
DIFFERENTIABLE = ("decay", "threshold", "sg_param", "v_init")
CHOICE_OPTIONS = ("charge", "reset", "scale", "surrogate", "detach_reset", "smooth")
GRADIENTS = ("x",) + DIFFERENTIABLE
# which path a gradient that differs on its own points to
GRADIENT_PATH = {"decay": "leak", "threshold": "threshold", "sg_param": "surrogate",
                 "v_init": "leak or reset", "x": "reset, leak or surrogate"}
MAX_T, MAX_N = 8, 16
# held while spikegrad.ref.formulas is patched (the diagnosis, the sigmoid's scale)
_PATCH_LOCK = threading.RLock()
FAILURES_KEPT = 4   # the first failing examples (large, unshrunk) kept for the diagnosis


# --------------------------------------------------------------------------------------
# The claim: what the user says fn implements
# --------------------------------------------------------------------------------------

@dataclass
class _Claim:
    """The variant the user claims, with every number resolved to spikegrad's defaults."""

    options: dict        # the keywords exactly as given (passed on to fn)
    reference: dict      # the keywords for spikegrad.ref.forward (NumPy, defaults filled)
    tensors: tuple       # the names passed as tensors: their gradients are compared
    dtype: type          # np.float32 or np.float64
    T: int | None        # fixed by a length-T threshold / sg_param tensor or array
    N: int | None        # fixed by a v_init of shape [N]

    def describe(self):
        parts = []
        for name, value in self.options.items():
            if name in self.tensors:
                parts.append(f"{name}={_numpy(value).tolist()!r} (tensor: gradient checked)")
            else:
                parts.append(f"{name}={value!r}")
        return ", ".join(parts) if parts else "(spikegrad.neuron defaults)"


def _numpy(value):
    if hasattr(value, "detach"):
        return value.detach().cpu().numpy()
    return np.asarray(value)


def _parse_claim(options, dtype, torch):
    unknown = sorted(set(options) - set(NUMBER_OPTIONS) - set(CHOICE_OPTIONS))
    if unknown:
        raise TypeError(f"unknown option(s) {', '.join(unknown)}: the options are the "
                        f"spikegrad.neuron keywords {NUMBER_OPTIONS + CHOICE_OPTIONS}")
    choices = dict(charge="mul", reset="hard", scale="absolute", surrogate="rect",
                   detach_reset=False, smooth=False)
    choices.update({k: options[k] for k in CHOICE_OPTIONS if k in options})
    check_options(**choices)

    tensors = tuple(k for k in DIFFERENTIABLE if isinstance(options.get(k), torch.Tensor))
    if "v_reset" in options and isinstance(options["v_reset"], torch.Tensor):
        raise TypeError("v_reset must be a float (spikegrad has no gradient for it)")
    tensor_dtypes = {options[k].dtype for k in tensors}
    if dtype is None:
        if len(tensor_dtypes) > 1:
            raise TypeError(f"the tensor options have different dtypes {tensor_dtypes}")
        dtype = tensor_dtypes.pop() if tensor_dtypes else torch.float64
    if dtype not in (torch.float32, torch.float64):
        raise TypeError(f"dtype must be torch.float32 or torch.float64, got {dtype}")
    for k in tensors:
        if options[k].dtype != dtype:
            raise TypeError(f"{k} has dtype {options[k].dtype} but dtype is {dtype}")
    np_dtype = np.float32 if dtype == torch.float32 else np.float64

    numbers = dict(decay=0.2, threshold=1.0, sg_param=DEFAULT_SG_PARAM[choices["surrogate"]],
                   v_init=None, v_reset=0.0)
    T = N = None
    for name in NUMBER_OPTIONS:
        if name not in options or options[name] is None:
            continue
        if not isinstance(options[name], (torch.Tensor, int, float, list, tuple, np.ndarray)) \
                or isinstance(options[name], bool):
            raise TypeError(f"{name} must be a number or a tensor, got "
                            f"{type(options[name]).__name__}")
        value = _numpy(options[name]).astype(np.float64)
        if name in ("threshold", "sg_param") and value.ndim == 1:
            if T is not None and value.shape[0] != T:
                raise ValueError(f"{name} has length {value.shape[0]} but another per-step "
                                 f"option has length {T}")
            T = value.shape[0]
        elif name == "v_init" and value.ndim == 1:
            N = value.shape[0]
        elif value.ndim != 0:
            vector = {"threshold": " or a length-T vector", "sg_param": " or a length-T vector",
                      "v_init": " or a vector of N neurons"}.get(name, "")
            raise ValueError(f"{name} must be a number, a 0-d tensor{vector}, got shape "
                             f"{value.shape}")
        numbers[name] = value if value.ndim else float(value)
    if T == 0 or N == 0:
        raise ValueError("per-step and per-neuron options must not be empty")
    reference = dict(choices, **numbers)
    ref.forward(np.zeros((T or 1, N or 1), np_dtype), **reference)  # the value checks
    return _Claim(dict(options), reference, tensors, np_dtype, T, N)


# --------------------------------------------------------------------------------------
# Running both sides on one example
# --------------------------------------------------------------------------------------

@dataclass
class _Example:
    x: np.ndarray            # [T, N]
    grad_output: np.ndarray  # [T, N], the upstream dL/do

    @property
    def T(self):
        return self.x.shape[0]


@dataclass
class _Observed:
    """What fn did on one example: its output and its gradients (None: none reached)."""

    output: np.ndarray
    grads: dict


@dataclass
class _Expected:
    output: np.ndarray
    membrane: np.ndarray
    grads: dict
    scales: dict


def _run_user(fn, claim, example, torch, with_grads=True):
    tdtype = torch.float32 if claim.dtype == np.float32 else torch.float64
    x = torch.tensor(example.x, dtype=tdtype, requires_grad=True)
    leaves = {"x": x}
    kwargs = dict(claim.options)
    for name in claim.tensors:
        leaf = claim.options[name].detach().clone().to("cpu", tdtype).requires_grad_()
        leaves[name] = leaf
        kwargs[name] = leaf.to(claim.options[name].device)
    out = fn(x, **kwargs)
    if isinstance(out, tuple):  # NeuronOutput or (output, ...): the first is the output
        out = out[0]
    if not isinstance(out, torch.Tensor):
        raise TypeError(f"fn must return a torch.Tensor [T, N], got {type(out).__name__}")
    if tuple(out.shape) != example.x.shape:
        raise ValueError(f"fn returned shape {tuple(out.shape)} for x of shape "
                         f"{example.x.shape}; it must return the output [T, N]")
    output = out.detach().cpu().numpy()
    grads = {}
    if not with_grads:
        pass
    elif out.requires_grad:
        upstream = torch.tensor(example.grad_output, dtype=out.dtype, device=out.device)
        found = torch.autograd.grad((out * upstream).sum(), list(leaves.values()),
                                    allow_unused=True)
        grads = {name: None if g is None else g.detach().cpu().numpy().astype(np.float64)
                 for name, g in zip(leaves, found)}
    else:
        grads = {name: None for name in leaves}
    return _Observed(output, grads)


def _run_reference(claim, example, mutation=None):
    """spikegrad.ref on the example, with `mutation` substituted. Holds the patch lock, so
    that checkers in several threads never see each other's substitutions (other users of
    spikegrad.ref in other threads could, while a diagnosis runs)."""
    options = dict(claim.reference)
    with _PATCH_LOCK, _mutated(mutation, options) as transform:
        result = ref.forward(example.x, **options)
        grads = ref.backward(result, example.grad_output)
        with _sigmoid_at_its_peak():
            scales = ref.error_scale(result, example.grad_output)
    grads = {name: np.asarray(getattr(grads, name), dtype=np.float64) for name in GRADIENTS}
    if transform is not None:
        grads = transform(grads)
    return _Expected(result.output, result.membrane, grads,
                     {name: np.asarray(getattr(scales, name), dtype=np.float64)
                      for name in GRADIENTS})


@contextlib.contextmanager
def _sigmoid_at_its_peak():
    """The rounding scale of a sigmoid surrogate is its peak p/4, not its value.

    Users (SpikingJelly's surrogate.Sigmoid among them) write f' = p * sg * (1 - sg), whose
    1 - sg cancels in the tails: its error is a few ulps of the peak p/4 wherever z lies
    (and |z| times that in dF/dp). spikegrad.ref evaluates the cancellation-free form, so
    the bound for a user's sigmoid counts every surrogate evaluation at the peak."""
    with _PATCH_LOCK:
        current = F.surrogate_derivative

        def scale(shape, z, p):
            if shape == "sigmoid":
                return np.full_like(z, p * z.dtype.type(0.25))
            return current(shape, z, p)
        F.surrogate_derivative = scale
        try:
            yield
        finally:
            F.surrogate_derivative = current


# --------------------------------------------------------------------------------------
# Comparing: the first difference, readable
# --------------------------------------------------------------------------------------

@dataclass
class _Difference:
    what: str            # "output" or "grad <name>"
    count: int
    size: int
    index: tuple         # (t, n), (t,), (n,) or ()
    expected: float
    actual: float
    bound: float
    note: str = ""
    structural: bool = False    # a wrong dtype or shape: not a numeric bug

    def describe(self):
        bound = "exact" if self.bound == 0 else f"bound {self.bound:.3g}"
        if self.index == () and self.size == 1:
            text = f"{self.what}: expected {self.expected!r}, got {self.actual!r} ({bound})"
        else:
            text = (f"{self.what}: {self.count} of {self.size} values differ; first at "
                    f"{_where(self.what, self.index)}: expected {self.expected!r}, got "
                    f"{self.actual!r} ({bound})")
        return text + (f" - {self.note}" if self.note else "")


def _where(what, index):
    if len(index) == 2:
        return f"timestep t={index[0]}, neuron n={index[1]}"
    if len(index) == 1:
        return f"timestep t={index[0]}" if what.endswith(("threshold", "sg_param")) \
            else f"neuron n={index[0]}"
    return "the scalar"


def _forward_difference(observed, expected, claim, example):
    a, e = observed.output, expected.output
    if a.dtype != e.dtype:
        return _Difference("output", a.size, a.size, (), float("nan"), float("nan"), 0.0,
                           note=f"fn returned dtype {a.dtype}, x was {e.dtype}",
                           structural=True)
    if claim.reference["smooth"]:
        magnitude = compare.smooth_forward_magnitude(
            expected.membrane, claim.reference["threshold"], claim.reference["v_reset"])
        bound = np.broadcast_to(compare.tolerance(e, dtype=claim.dtype, T=example.T,
                                                  magnitude=magnitude), e.shape)
    else:
        bound = np.zeros(e.shape)
    return _first_over(a, e, bound, "output")


def _first_over(actual, expected, bound, what, note=""):
    a = np.asarray(actual, dtype=np.float64)
    e = np.asarray(expected, dtype=np.float64)
    same_nan = np.isnan(a) & np.isnan(e)
    with np.errstate(invalid="ignore"):
        diff = np.where(same_nan | (a == e), 0.0, np.abs(a - e))
    over = ~(diff <= bound)   # NaN differences count as over
    if not over.any():
        return None
    first = tuple(int(i) for i in np.argwhere(over)[0])
    return _Difference(what, int(over.sum()), int(e.size), first, e[first].item(),
                       a[first].item(), float(np.broadcast_to(bound, e.shape)[first]), note)


def _gradient_bound(expected, name, claim, example, rtol, atol):
    scale = expected.scales[name]
    finite = scale[np.isfinite(scale)]
    magnitude = float(finite.max()) if finite.size else 0.0
    if rtol is None:
        rtol = (example.T + 1) * compare.ULPS * float(np.finfo(claim.dtype).eps) \
            + compare.FLOAT64_SUM_RTOL
    return (atol or 0.0) + rtol * magnitude


def _backward_differences(observed, expected, claim, example, rtol, atol, ignore=()):
    differences = []
    for name in ("x",) + claim.tensors:
        if name in ignore:
            continue
        e = expected.grads[name]
        a = observed.grads.get(name)
        note = ""
        if a is None:   # autograd reached no path to it: the gradient is zero
            a = np.zeros_like(e)
            note = f"no gradient reached {name} (is it used as a tensor in fn's graph?)"
        if a.shape != e.shape:
            differences.append(_Difference(
                f"grad {name}", e.size, e.size, (), float("nan"), float("nan"), 0.0,
                note=f"shape {a.shape}, expected {e.shape}", structural=True))
            continue
        bound = _gradient_bound(expected, name, claim, example, rtol, atol)
        found = _first_over(a, e, bound, f"grad {name}", note)
        if found is not None:
            differences.append(found)
    return differences


# --------------------------------------------------------------------------------------
# The diagnosis: known bugs, as substitutions in the reference's formulas
# --------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Mutation:
    """A known bug, as a substitution in spikegrad.ref: replaced formulas (name ->
    replacement(original), applied to spikegrad.ref.formulas while the reference runs),
    overridden options (claimed options -> {option: value}) and a transform of the
    reference's gradients. `applies(claimed options)` says whether the bug can show at all
    in the claimed variant."""

    path: str            # reset, leak, surrogate, threshold
    description: str     # completes "fn behaves like spikegrad.ref where the neuron ..."
    stage: str           # "forward" (changes the output) or "backward" (gradients only)
    applies: object = None      # claimed options -> bool; None: always
    formulas: dict = field(default_factory=dict)
    overrides: object = None    # claimed options -> {option: value}
    transform: object = None    # grads dict -> grads dict
    ignore: tuple = ()   # gradients the bug leaves undetermined (not compared)
    needs: tuple = ()    # tensor options without which it cannot show


@contextlib.contextmanager
def _mutated(mutation, options):
    """Run the reference with `mutation` substituted (options are updated in place)."""
    if mutation is None:
        yield None
        return
    if mutation.overrides is not None:
        options.update(mutation.overrides(dict(options)))
    with _PATCH_LOCK:
        originals = {name: getattr(F, name) for name in mutation.formulas}
        try:
            for name, replacement in mutation.formulas.items():
                setattr(F, name, replacement(originals[name]))
            yield mutation.transform
        finally:
            for name, original in originals.items():
                setattr(F, name, original)


def _strict_heaviside(original):
    return lambda z: (z > 0).astype(z.dtype)


def _reset_one_step_late(original):
    previous = []

    def reset(kind, h, s, theta, v_reset):
        used = previous[-1] if previous else np.zeros_like(s)
        previous.append(s)
        return original(kind, h, used, theta, v_reset)
    return reset


def _soft_reset_by(subtracted):
    """A soft reset that subtracts subtracted(thresholds so far) instead of theta[t]."""
    def make(original):
        step = []

        def reset(kind, h, s, theta, v_reset):
            step.append(theta)
            return original(kind, h, s, subtracted(step), v_reset)
        return reset
    return make


def _hard_reset_to_zero(original):
    return lambda kind, h, s, theta, v_reset: original(kind, h, s, theta, 0 * v_reset)


def _reset_dv_dh_one(original):
    return lambda kind, s: np.ones_like(s)


def _charge_partials_with(which, value):
    """dh/dx, dh/dv_prev, dh/dlam with entry `which` replaced by `value` (0 or 1)."""
    def make(original):
        def partials(kind, v_prev, x, lam, v_reset):
            parts = list(original(kind, v_prev, x, lam, v_reset))
            parts[which] = np.full_like(v_prev, value)
            return tuple(parts)
        return partials
    return make


def _surrogate_with_param(change):
    def make(original):
        return lambda shape, z, p: original(shape, z, change(p))
    return make


def _surrogate_shape(other, default_param):
    def make(original):
        if default_param:
            return lambda shape, z, p: original(other, z, z.dtype.type(DEFAULT_SG_PARAM[other]))
        return lambda shape, z, p: original(other, z, p)
    return make


def _spike_argument_partials(dz_dh_one=False, flip_theta=False):
    def make(original):
        def partials(scale, h, theta):
            dz_dh, dz_dtheta = original(scale, h, theta)
            return (np.ones_like(dz_dh) if dz_dh_one else dz_dh,
                    -dz_dtheta if flip_theta else dz_dtheta)
        return partials
    return make


def _negate(name):
    def transform(grads):
        return dict(grads, **{name: -grads[name]})
    return transform


def _zero(name):
    def transform(grads):
        return dict(grads, **{name: np.zeros_like(grads[name])})
    return transform


def _per_step_threshold(c):
    return np.ndim(c["threshold"]) == 1 and len(set(np.ravel(c["threshold"]))) > 1


def _claims(option, value):
    return lambda c: c[option] == value


def _claims_not(option, value):
    return lambda c: c[option] != value


def _set(option, value):
    return lambda c: {option: value}


def _build_mutations():
    m = []
    # ---- the forward: fire, reset, charge, scale
    m.append(Mutation("threshold", "fires only for h > theta (strict comparison); the spec fires "
                      "at z >= 0, i.e. h >= theta", "forward", _claims("smooth", False),
                      formulas={"heaviside": _strict_heaviside}))
    m.append(Mutation("reset", "resets v[t] with the previous step's spike s[t-1] (off by "
                      "one timestep)", "forward", _claims_not("reset", "none"),
                      formulas={"reset": _reset_one_step_late}))
    m.append(Mutation("reset", "subtracts 1 (the spike) instead of theta in the soft reset",
                      "forward", lambda c: c["reset"] == "soft" and np.any(
                          np.asarray(c["threshold"]) != 1),
                      formulas={"reset": _soft_reset_by(lambda thetas: 1)}))
    m.append(Mutation("reset", "subtracts the previous step's threshold theta[t-1] in the "
                      "soft reset", "forward",
                      lambda c: c["reset"] == "soft" and _per_step_threshold(c),
                      formulas={"reset": _soft_reset_by(lambda thetas: thetas[-2:][0])}))
    m.append(Mutation("reset", "subtracts the first step's threshold theta[0] in the soft "
                      "reset", "forward",
                      lambda c: c["reset"] == "soft" and _per_step_threshold(c),
                      formulas={"reset": _soft_reset_by(lambda thetas: thetas[0])}))
    m.append(Mutation("reset", "resets to 0 instead of v_reset in the hard reset", "forward",
                      lambda c: c["reset"] == "hard" and c["v_reset"] != 0,
                      formulas={"reset": _hard_reset_to_zero}))
    for kind in RESETS:
        m.append(Mutation("reset", f"resets as reset={kind!r}", "forward",
                          _claims_not("reset", kind), overrides=_set("reset", kind)))
    for kind in CHARGES:
        m.append(Mutation("leak", f"charges as charge={kind!r}", "forward",
                          _claims_not("charge", kind), overrides=_set("charge", kind)))
    m.append(Mutation("leak", "uses 1 - decay as the leak factor", "forward",
                      lambda c: c["charge"] != "if" and c["decay"] != 0.5,
                      overrides=lambda c: {"decay": 1 - c["decay"]}))
    m.append(Mutation("leak", "uses 1 / decay as the leak factor (tau for 1/tau)", "forward",
                      lambda c: c["charge"] != "if" and c["decay"] not in (0, 1),
                      overrides=lambda c: {"decay": 1 / c["decay"]}))
    positive_threshold = lambda c: np.all(np.asarray(c["threshold"]) > 0)  # noqa: E731
    for kind in SCALES:
        m.append(Mutation("threshold", f"compares and outputs as scale={kind!r}", "forward",
                          lambda c, kind=kind: c["scale"] != kind and (
                              kind == "absolute" or positive_threshold(c)),
                          overrides=_set("scale", kind)))

    # ---- the backward only: reset
    m.append(Mutation("reset", "detaches the spike inside the reset although "
                      "detach_reset=False", "backward",
                      lambda c: c["reset"] != "none" and not c["detach_reset"],
                      overrides=_set("detach_reset", True)))
    m.append(Mutation("reset", "keeps the gradient through the spike inside the reset "
                      "although detach_reset=True", "backward",
                      lambda c: c["reset"] != "none" and c["detach_reset"],
                      overrides=_set("detach_reset", False)))
    m.append(Mutation("reset", "drops the (1 - s) factor of the hard reset in the backward "
                      "(dv/dh = 1)", "backward", _claims("reset", "hard"),
                      formulas={"reset_dv_dh": _reset_dv_dh_one}))
    # leak (charge_partials returns dh/dx, dh/dv_prev, dh/dlam)
    m.append(Mutation("leak", "has no gradient for the decay (dh/dlam = 0)", "backward",
                      _claims_not("charge", "if"),
                      formulas={"charge_partials": _charge_partials_with(2, 0)},
                      needs=("decay",)))
    m.append(Mutation("leak", "carries no gradient through time: the membrane v[t-1] is "
                      "detached (dh/dv_prev = 0)", "backward",
                      formulas={"charge_partials": _charge_partials_with(1, 0)}))
    m.append(Mutation("leak", "leaves the leak factor out of the gradient through time "
                      "(dh/dv_prev = 1)", "backward", _claims_not("charge", "if"),
                      formulas={"charge_partials": _charge_partials_with(1, 1)}))
    # surrogate (its parameter's own gradient is left uncompared)
    for factor, words in ((0.5, "half"), (2.0, "twice")):
        m.append(Mutation("surrogate", f"uses {words} the surrogate parameter (sg_param * "
                          f"{factor:g})", "backward",
                          formulas={"surrogate_derivative": _surrogate_with_param(
                              lambda p, factor=factor: p * p.dtype.type(factor))},
                          ignore=("sg_param",)))
    m.append(Mutation("surrogate", "uses 1 / sg_param as the surrogate parameter", "backward",
                      lambda c: np.any(np.asarray(c["sg_param"]) != 1),
                      formulas={"surrogate_derivative": _surrogate_with_param(lambda p: 1 / p)},
                      ignore=("sg_param",)))
    for shape in SURROGATES:
        for default in (True, False):
            param = f"sg_param {DEFAULT_SG_PARAM[shape]:g}" if default else "the given sg_param"
            differs = (lambda c, shape=shape: c["surrogate"] != shape) if default else \
                (lambda c, shape=shape: c["surrogate"] != shape and np.any(
                    np.asarray(c["sg_param"]) != DEFAULT_SG_PARAM[shape]))
            m.append(Mutation("surrogate", f"uses the {shape!r} surrogate ({param})",
                              "backward", differs,
                              formulas={"surrogate_derivative":
                                        _surrogate_shape(shape, default)},
                              ignore=("sg_param",)))
    m.append(Mutation("surrogate", "does not divide the surrogate by theta (dz/dh = 1 for a "
                      "relative scale)", "backward", _claims_not("scale", "absolute"),
                      formulas={"spike_argument_partials":
                                _spike_argument_partials(dz_dh_one=True)}))
    # threshold
    m.append(Mutation("threshold", "has the threshold gradient with the wrong sign",
                      "backward", transform=_negate("threshold"), needs=("threshold",)))
    m.append(Mutation("threshold", "has the wrong sign of dz/dtheta (the threshold's path "
                      "through the spike argument)", "backward",
                      formulas={"spike_argument_partials":
                                _spike_argument_partials(flip_theta=True)},
                      needs=("threshold",)))
    m.append(Mutation("threshold", "has no gradient for the threshold", "backward",
                      transform=_zero("threshold"), needs=("threshold",)))
    return tuple(m)


MUTATIONS = _build_mutations()


def _matches(mutation, fn_results, claim, rtol, atol):
    """Whether the mutated reference reproduces every recorded result of fn."""
    for example, observed in fn_results:
        try:
            expected = _run_reference(claim, example, mutation)
        except (ValueError, ZeroDivisionError, FloatingPointError):
            return False
        if _forward_difference(observed, expected, claim, example) is not None:
            return False
        if mutation.stage == "backward" and _backward_differences(
                observed, expected, claim, example, rtol, atol, ignore=mutation.ignore):
            return False
    return True


def _relevant(mutation, claim):
    return all(name in claim.tensors for name in mutation.needs)


def _diagnose(stage, failures, claim, rtol, atol):
    """The mutations of `stage` that reproduce all failing results, and a fallback."""
    candidates = [m for m in MUTATIONS if m.stage == stage and _relevant(m, claim)
                  and (m.applies is None or m.applies(claim.reference))]
    return [m for m in candidates if _matches(m, failures, claim, rtol, atol)]


# --------------------------------------------------------------------------------------
# The entry point
# --------------------------------------------------------------------------------------

class _Mismatch(AssertionError):
    pass


def _examples(claim):
    """hypothesis strategy of _Example for the claimed neuron."""
    from hypothesis import strategies as st

    from . import strategies as sgst

    T = st.just(claim.T) if claim.T is not None else st.one_of(st.just(1),
                                                              st.integers(1, MAX_T))
    N = st.just(claim.N) if claim.N is not None else st.one_of(st.just(1),
                                                              st.integers(1, MAX_N))

    @st.composite
    def example(draw):
        x = draw(sgst.inputs(st.tuples(T, N), threshold=claim.reference["threshold"],
                             charge=claim.reference["charge"],
                             decay=claim.reference["decay"], dtype=claim.dtype))
        rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
        return _Example(x, rng.normal(size=x.shape).astype(claim.dtype))
    return example()


def _edge_examples(claim):
    """Explicit examples every run checks first: one neuron exactly at the threshold at
    T = 1, a negative input, and an input at the threshold on two steps."""
    T, N = claim.T or 1, claim.N or 1
    theta = np.broadcast_to(np.asarray(claim.reference["threshold"], np.float64), (T,))
    at = np.repeat(theta[:, None], N, axis=1).astype(claim.dtype)
    ones = np.ones((T, N), claim.dtype)
    examples = [_Example(at, ones), _Example(-at - 1, ones)]
    if claim.T is None:
        t2 = np.repeat(np.full((2, 1), theta[0]), N, axis=1).astype(claim.dtype)
        examples.append(_Example(t2, np.array([[1.0], [-0.5]]).repeat(N, 1).astype(
            claim.dtype)))
    return examples


def assert_neuron_matches(fn, *, max_examples=200, rtol=None, atol=None, dtype=None,
                          **options):
    """Check `fn`, a neuron implementation, against spikegrad.ref; raise AssertionError
    with a diagnosis on the first (shrunk) mismatch.

    Args:
        fn: called as `fn(x, **options)` with x a [T, N] torch tensor requiring grad;
            returns the output o, [T, N] (a tuple's first element is taken as the output).
            Tensor options reach fn as fresh leaf tensors requiring grad.
        max_examples: how many hypothesis examples to draw (after the fixed edge cases).
        rtol, atol: the gradient tolerance `atol + rtol * scale` (see the module
            docstring); default rtol: the derived bound of spikegrad.testing.compare,
            atol: 0. The forward is compared exactly (except in smooth mode).
        dtype: torch.float32 or torch.float64 for x; default: the tensor options' dtype,
            else float64.
        options: the spikegrad.neuron keywords of the variant fn claims to implement
            (charge, decay, threshold, reset, v_reset, detach_reset, scale, surrogate,
            sg_param, v_init, smooth). Unspecified ones take spikegrad.neuron's defaults.
            Pass decay, threshold, sg_param or v_init as a tensor to check its gradient.
    """
    try:
        import torch
    except ModuleNotFoundError as error:  # pragma: no cover
        raise ModuleNotFoundError("assert_neuron_matches needs PyTorch "
                                  "(pip install 'spikegrad[torch]')") from error
    if not callable(fn):
        raise TypeError(f"fn must be callable, got {type(fn).__name__}")
    if isinstance(max_examples, bool) or not isinstance(max_examples, int) or max_examples < 1:
        raise ValueError(f"max_examples must be a positive int, got {max_examples!r}")
    for name, value in (("rtol", rtol), ("atol", atol)):
        if value is not None and (isinstance(value, bool) or not isinstance(
                value, (int, float)) or not value >= 0):
            raise ValueError(f"{name} must be a number >= 0 or None, got {value!r}")
    claim = _parse_claim(options, dtype, torch)

    # Two passes: the forward alone first, so that a forward bug is reported as one even
    # where a small example only shows it in the gradients.
    for stage in ("forward", "backward"):
        failures = _search(fn, claim, stage, max_examples, rtol, atol, torch)
        if failures:
            extra = _more_evidence(fn, claim, stage, rtol, atol, torch)
            raise AssertionError(_message(failures, claim, rtol, atol, extra)) from None


def _search(fn, claim, stage, max_examples, rtol, atol, torch):
    """Run hypothesis on `stage`; return the failing examples in the order they ran (the
    last one is the shrunk minimal example), or [] if all passed."""
    from hypothesis import HealthCheck, Verbosity, example, given, settings

    failures = []   # (stage, example, observed, differences)

    def check(case):
        observed = _run_user(fn, claim, case, torch, with_grads=stage == "backward")
        expected = _run_reference(claim, case)
        if stage == "forward":
            forward = _forward_difference(observed, expected, claim, case)
            if forward is not None:
                failures.append((stage, case, observed, [forward]))
                raise _Mismatch(stage)
            return
        backward = _backward_differences(observed, expected, claim, case, rtol, atol)
        if backward:
            failures.append((stage, case, observed, backward))
            raise _Mismatch(stage)

    test = given(case=_examples(claim))(check)
    for case in reversed(_edge_examples(claim)):
        test = example(case=case)(test)
    test = settings(max_examples=max_examples, deadline=None, database=None,
                    derandomize=True, verbosity=Verbosity.quiet, print_blob=False,
                    report_multiple_bugs=False,
                    suppress_health_check=list(HealthCheck))(test)
    try:
        test()
    except _Mismatch:
        pass
    return failures


def _more_evidence(fn, claim, stage, rtol, atol, torch, tries=24, keep=8):
    """Larger failing examples for the diagnosis, from a fixed seed: a shrunk example is
    often too small to tell the candidate bugs apart (at T = 2 a detached reset and a
    detached membrane give the same gradients)."""
    from .strategies import input_array

    rng = np.random.default_rng(0)
    found = []
    for i in range(tries):
        T = claim.T or int(rng.integers(2, MAX_T + 1))
        N = claim.N or int(rng.integers(1, MAX_N + 1))
        x = input_array(rng, T, N, threshold=claim.reference["threshold"],
                        charge=claim.reference["charge"], decay=claim.reference["decay"],
                        dtype=claim.dtype, spread=(0.5, 1.0, 3.0)[i % 3],
                        edge_fraction=(0.1, 0.5)[i % 2], edge_over_decay=i % 4 == 0)
        case = _Example(x, rng.normal(size=x.shape).astype(claim.dtype))
        observed = _run_user(fn, claim, case, torch)
        expected = _run_reference(claim, case)
        forward = _forward_difference(observed, expected, claim, case)
        differs = forward is not None if stage == "forward" else forward is None and bool(
            _backward_differences(observed, expected, claim, case, rtol, atol))
        if differs:
            found.append((case, observed))
            if len(found) == keep:
                break
    return found


def _message(failures, claim, rtol, atol, extra=()):
    stage, minimal, observed, differences = failures[-1]
    same_stage = [(c, o) for s, c, o, _ in failures if s == stage]
    evidence = same_stage[:FAILURES_KEPT] + [(minimal, observed)] + list(extra)
    structural = any(d.structural for d in differences)
    found = [] if structural else _diagnose(stage, evidence, claim, rtol, atol)
    T, N = minimal.x.shape
    lines = [f"the neuron's {stage} differs from spikegrad.ref",
             f"claimed variant: {claim.describe()}",
             f"minimal example: T={T}, N={N}, {np.dtype(claim.dtype).name}",
             f"  x = {_show(minimal.x)}"]
    if stage == "backward":
        lines.append(f"  upstream gradient dL/doutput = {_show(minimal.grad_output)}")
        lines.append("  output: matches exactly" if not claim.reference["smooth"]
                     else "  output: matches within the smooth-mode bound")
    expected = _run_reference(claim, minimal)
    lines.append(f"  expected output = {_show(expected.output)}")
    if stage == "forward":
        lines.append(f"  actual output   = {_show(observed.output)}")
    lines.append(f"  expected membrane h (pre-reset) = {_show(expected.membrane)}")
    lines += ["  " + d.describe() for d in differences]
    if stage == "backward":
        for d in differences:
            name = d.what.split()[-1]
            lines.append(f"  expected grad {name} = {_show(expected.grads[name])}")
            actual = observed.grads.get(name)
            lines.append(f"  actual grad {name}   = "
                         f"{'None' if actual is None else _show(actual)}")
    if structural:
        lines.append("diagnosis: fn's result has the wrong dtype or shape (see above)")
    elif found:
        paths = list(dict.fromkeys(m.path for m in found))
        lines.append(f"diagnosis: the difference points to the {' / '.join(paths)} path: "
                     f"fn behaves like spikegrad.ref where the neuron")
        lines += [f"  - {m.description}  [{m.path}]" for m in found]
    else:
        names = [d.what.split()[-1] for d in differences]
        paths = list(dict.fromkeys(GRADIENT_PATH.get(n, "forward") for n in names)) \
            if stage == "backward" else ["charge / fire / reset order"]
        lines.append(f"diagnosis: no single known bug reproduces it; the differing "
                     f"{', '.join(names) if stage == 'backward' else 'output'} points to "
                     f"the {' / '.join(paths)} path")
    return "\n".join(lines)


def _show(array):
    return np.array2string(np.asarray(array), precision=17, separator=", ",
                           max_line_width=100, threshold=64).replace("\n", "\n      ")


# --------------------------------------------------------------------------------------
# For the command line: `spikegrad verify --against module:function --options JSON`
# --------------------------------------------------------------------------------------

def load_callable(spec):
    """'package.module:function' (or 'module:Class.attribute') -> the object. The current
    directory is importable, as with `python -m`."""
    import importlib
    import os
    import sys

    module_name, sep, attribute = spec.partition(":")
    if not sep or not module_name or not attribute:
        raise ValueError(f"--against must be 'package.module:function', got {spec!r}")
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    target = importlib.import_module(module_name)
    for part in attribute.split("."):
        target = getattr(target, part)
    if not callable(target):
        raise TypeError(f"{spec} is not callable")
    return target


def options_from_json(text, grad="", dtype="float64"):
    """The keyword arguments of assert_neuron_matches from the CLI's --options JSON; the
    parameters named in `grad` (comma-separated) become tensors of `dtype`."""
    import json

    import torch

    try:
        options = json.loads(text)
    except json.JSONDecodeError as error:
        raise ValueError(f"--options is not valid JSON: {error}") from None
    if not isinstance(options, dict):
        raise ValueError(f"--options must be a JSON object, got {text!r}")
    tdtype = {"float32": torch.float32, "float64": torch.float64}[dtype]
    names = [name.strip() for name in grad.split(",") if name.strip()]
    for name in names:
        if name not in DIFFERENTIABLE:
            raise ValueError(f"--grad names one of {DIFFERENTIABLE}, got {name!r}")
        default = {"decay": 0.2, "threshold": 1.0, "v_init": 0.0,
                   "sg_param": DEFAULT_SG_PARAM.get(options.get("surrogate", "rect"))}[name]
        value = options.get(name, default)
        if value is None:
            value = default
        options[name] = torch.tensor(value, dtype=tdtype)
    options["dtype"] = tdtype
    return options
