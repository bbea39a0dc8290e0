"""The checked-in golden vectors of the C++ tests (cpp/tests/golden/, made by
tools/make_golden.py) against the current NumPy reference: if pyref/ changes and the file is
not regenerated, this fails, so the C++ tests never check against a stale oracle.

Each case of the file is run through spikegrad.ref again: exact records must come back bit
for bit; close records within the bound of spikegrad.testing.compare (recomputed here, with
the magnitudes of ref.error_scale), and the recorded bound must be that bound."""

import sys
from pathlib import Path

import numpy as np
import pytest

from spikegrad.testing.compare import assert_bitwise_equal, assert_close

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tools"))
import make_golden  # noqa: E402  (tools/ is not a package)


def read_golden(path):
    """The cases of a golden file as (header, inputs, records) triples."""
    cases = []
    for line in path.read_text().splitlines():
        if not line or line.startswith("#") or line == "end":
            continue
        kind, rest = line.split(" ", 1)
        if kind == "case":
            kernel, index, dtype, *pairs = rest.split()
            header = dict(pair.split("=") for pair in pairs)
            cases.append(({"kernel": kernel, "index": int(index), "dtype": dtype, **header},
                          {}, {}))
            continue
        name, count, *numbers = rest.split()
        values = np.array([float.fromhex(v) for v in numbers], dtype=np.float64)
        count = int(count)
        if kind == "in":
            cases[-1][1][name] = values
        else:
            assert len(values) == (2 * count if kind == "close" else count), line[:60]
            cases[-1][2][name] = (kind, values[:count], values[count:] if kind == "close" else None)
    return cases


CASES = read_golden(make_golden.GOLDEN)


def _case(header, inputs):
    dtype = np.dtype(header["dtype"]).type
    T, N = int(header["T"]), int(header["N"])
    options = dict(charge=header["charge"], reset=header["reset"], scale=header["scale"],
                   surrogate=header["surrogate"], smooth=header["smooth"] == "1",
                   detach_reset=header["detach_reset"] == "1")
    upstream = {name: (inputs[name].astype(dtype).reshape((T, N) if name != "grad_v_last"
                                                           else (N,))
                       if name in inputs else None)
                for name in make_golden.UPSTREAM}
    return make_golden.Case(dtype, options, inputs["x"].astype(dtype).reshape(T, N),
                            float(inputs["decay"][0]), float(inputs["v_reset"][0]),
                            inputs["threshold"].astype(dtype), inputs["sg_param"].astype(dtype),
                            inputs["v_init"].astype(dtype), upstream)


def test_golden_file_covers_every_option():
    assert len(CASES) >= 30
    for option, values in (("charge", make_golden.ref.formulas.CHARGES),
                           ("reset", make_golden.ref.formulas.RESETS),
                           ("scale", make_golden.ref.formulas.SCALES),
                           ("surrogate", make_golden.ref.formulas.SURROGATES),
                           ("smooth", ("0", "1")), ("detach_reset", ("0", "1")),
                           ("dtype", ("float32", "float64"))):
        assert {case[0][option] for case in CASES} == set(values), option
    assert any(case[0]["T"] == "1" and case[0]["N"] == "1" for case in CASES)


@pytest.mark.parametrize("header, inputs, records", CASES,
                         ids=[f"{c[0]['kernel']}{c[0]['index']}" for c in CASES])
def test_golden_matches_reference(header, inputs, records):
    case = _case(header, inputs)
    T = case.x.shape[0]
    answers = make_golden.expected(case)
    assert set(answers) == set(records)
    for name, (value, magnitude) in answers.items():
        kind, recorded, recorded_bound = records[name]
        what = f"golden case {header['index']} {name}"
        value = np.asarray(value).ravel()
        if magnitude is None:
            assert kind == "exact", what
            assert_bitwise_equal(recorded.astype(value.dtype), value, what)
        else:
            assert kind == "close", what
            # the file's value is the reference's within the stated bound (transcendentals
            # may round differently on another machine's NumPy) ...
            assert_close(recorded, value, what, dtype=case.dtype, T=T,
                         magnitude=np.ravel(magnitude))
            # ... and its bound is the one compare.tolerance states for these magnitudes
            np.testing.assert_allclose(recorded_bound,
                                       make_golden.bound(case, value, np.ravel(magnitude)),
                                       rtol=1e-6, atol=0, err_msg=what)


def test_docs_usage_example_is_the_one_ctest_builds():
    """docs/cpp.md's 20-line example is cpp/examples/usage.cpp (after its header comment),
    which CTest compiles with warnings as errors and runs."""
    docs = (ROOT / "docs" / "cpp.md").read_text()
    snippet = docs.split("```cpp\n", 1)[1].split("```", 1)[0]
    source = (ROOT / "cpp" / "examples" / "usage.cpp").read_text()
    assert source.endswith(snippet)
    assert len(snippet.splitlines()) <= 20
