"""The checked-in golden vectors of the C++ tests (cpp/tests/golden/*.golden, made by
tools/make_golden.py) against the current NumPy reference: if pyref/ changes and the files
are not regenerated, this fails, so the C++ tests never check against a stale oracle.

Each case of each file is run through spikegrad.ref again: exact records must come back bit
for bit; close records within the bound of spikegrad.testing.compare (recomputed here, with
the magnitudes of the reference's error_scale), and the recorded bound must be that bound.
The files must cover what cpp/tests/test_golden.cpp promises: every kernel of
<spikegrad/spikegrad.hpp>, every option value, both dtypes, and the edge cases."""

import sys
from pathlib import Path

import numpy as np
import pytest

from spikegrad import ref
from spikegrad.testing.compare import assert_bitwise_equal, assert_close

ROOT = Path(__file__).resolve().parents[2]
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
            assert len(values) == count, line[:60]
            cases[-1][1][name] = values
        else:
            assert kind in ("exact", "close"), line[:60]
            assert len(values) == (2 * count if kind == "close" else count), line[:60]
            cases[-1][2][name] = (kind, values[:count], values[count:] if kind == "close" else None)
    return cases


FILES = {name: read_golden(kernel.path) for name, kernel in make_golden.KERNELS.items()}
CASES = [case for cases in FILES.values() for case in cases]


def _headers(kernel):
    return [case[0] for case in FILES[kernel]]


def _values(kernel, key):
    return {header[key] for header in _headers(kernel)}


def test_golden_files_hold_their_kernel_only_and_are_small():
    for name, kernel in make_golden.KERNELS.items():
        assert {header["kernel"] for header in _headers(name)} == {name}
        assert [header["index"] for header in _headers(name)] == list(range(len(FILES[name])))
        assert kernel.path.stat().st_size < 150_000, kernel.path.name


def test_neuron_file_covers_every_option():
    assert len(FILES["neuron"]) >= 30
    for option, values in (("charge", ref.formulas.CHARGES), ("reset", ref.formulas.RESETS),
                           ("scale", ref.formulas.SCALES),
                           ("surrogate", ref.formulas.SURROGATES),
                           ("smooth", ("0", "1")), ("detach_reset", ("0", "1")),
                           ("dtype", ("float32", "float64"))):
        assert _values("neuron", option) == set(values), option
    assert any(h["T"] == "1" and h["N"] == "1" for h in _headers("neuron"))


def test_adaptive_file_covers_every_option_and_a_second_block():
    assert len(FILES["adaptive"]) >= 15
    for option, values in (("charge", ref.formulas.CHARGES), ("reset", ref.formulas.RESETS),
                           ("threshold_mode", ref.adaptive.THRESHOLD_MODES),
                           ("tgo_driver", ref.adaptive.TGO_DRIVERS), ("tgo", ("0", "1")),
                           ("detach_reset", ("0", "1")), ("dtype", ("float32", "float64"))):
        assert _values("adaptive", option) == set(values), option
    headers = _headers("adaptive")
    assert any(h["T"] == "1" and h["N"] == "2" for h in headers)         # the smallest N
    assert any(int(h["N"]) > ref.adaptive.BLOCK for h in headers)
    # some case sits exactly on its threshold (std = 0: theta = h) and fires there
    on_threshold = 0
    for header, inputs, records in FILES["adaptive"]:
        T, N = int(header["T"]), int(header["N"])
        membrane = records["membrane"][1].reshape(T, N)
        output = records["output"][1].reshape(T, N)
        theta = records["threshold"][1][:, None]
        on_threshold += int(((membrane == theta) & (output == 1)).sum())
    assert on_threshold > 0


def test_multilevel_file_covers_every_option_and_the_levels():
    assert len(FILES["multilevel"]) >= 15
    combos = {(h["surrogate"], h["smooth"], h["detach_reset"], h["dtype"])
              for h in _headers("multilevel")}
    assert len(combos) == len(ref.formulas.LEVEL_SURROGATES) * 2 * 2 * 2
    headers = _headers("multilevel")
    assert any(h["T"] == "1" and h["N"] == "1" for h in headers)
    assert any(int(h["N"]) > ref.adaptive.BLOCK for h in headers)
    # inputs exactly on a level +-k theta, where the strict comparisons of Eqs. 12-13 matter
    on_level = 0
    for header, inputs, _ in FILES["multilevel"]:
        dtype = np.dtype(header["dtype"]).type
        x = inputs["x"].astype(dtype)
        for k in range(1, max(int(header["k_p"]), int(header["k_n"])) + 1):
            on_level += int((x == dtype(k) * dtype(inputs["theta_p"][0])).sum())
            on_level += int((x == -(dtype(k) * dtype(inputs["theta_n"][0]))).sum())
    assert on_level >= 20


def test_pnb_file_covers_the_bounds_and_a_second_block():
    assert len(FILES["pnb"]) >= 10
    assert _values("pnb", "dtype") == {"float32", "float64"}
    assert {int(k) for k in _values("pnb", "K")} >= {1, 2, 3, 4}
    assert any(h["count"] == "1" for h in _headers("pnb"))
    assert any(int(h["count"]) > ref.pnb.PNB_BLOCK for h in _headers("pnb"))
    on_bound = 0
    for header, inputs, _ in FILES["pnb"]:
        dtype = np.dtype(header["dtype"]).type
        h = inputs["h"].astype(dtype)
        for k in range(0, int(header["K"]) + 2):
            on_bound += int(np.isin(h, [dtype(k) * dtype(inputs["theta_p"][0]),
                                        -(dtype(k) * dtype(inputs["theta_n"][0]))]).sum())
    assert on_bound >= 20


@pytest.mark.parametrize("header, inputs, records", CASES,
                         ids=[f"{c[0]['kernel']}{c[0]['index']}" for c in CASES])
def test_golden_matches_reference(header, inputs, records):
    kernel = make_golden.KERNELS[header["kernel"]]
    case = kernel.from_record(header, inputs)
    # the case read back writes the same inputs (nothing lost in the round trip)
    written = kernel.inputs(case)
    assert set(written) == set(inputs)
    for name, values in written.items():
        np.testing.assert_array_equal(np.ravel(np.asarray(values, dtype=np.float64)),
                                      inputs[name], err_msg=name)
    answers = kernel.expected(case)
    assert set(answers) == set(records)
    for name, answer in answers.items():
        kind, recorded, recorded_bound = records[name]
        what = f"golden {header['kernel']} case {header['index']} {name}"
        value = np.asarray(answer.values).ravel()
        if answer.magnitude is None:
            assert kind == "exact", what
            assert_bitwise_equal(recorded.astype(value.dtype), value, what)
        else:
            assert kind == "close", what
            # the file's value is the reference's within the stated bound (transcendentals
            # may round differently on another machine's NumPy) ...
            assert_close(recorded, value, what, dtype=answer.dtype, T=answer.T,
                         magnitude=np.ravel(answer.magnitude))
            # ... and its bound is the one compare.tolerance states for these magnitudes
            np.testing.assert_allclose(recorded_bound, answer.bound.ravel(), rtol=1e-6,
                                       atol=0, err_msg=what)


def test_hex_numbers_round_trip():
    for value in (0.0, -0.0, 1.0, 0.1, -3.5e-310, 1e300, np.float32(0.1), float("inf"),
                  -float("inf")):
        text = make_golden._hex(value)
        assert float.fromhex(text) == float(value) and (text.startswith("-") ==
                                                         (np.copysign(1, value) < 0))
    assert make_golden._hex(float("nan")) == "nan"
    assert make_golden._hex(3.0) == "0x1.8p+1" and make_golden._hex(1.0) == "0x1p+0"


def test_docs_usage_example_is_the_one_ctest_builds():
    """docs/cpp.md's 20-line example is cpp/examples/usage.cpp (after its header comment),
    which CTest compiles with warnings as errors and runs."""
    docs = (ROOT / "docs" / "cpp.md").read_text()
    snippet = docs.split("```cpp\n", 1)[1].split("```", 1)[0]
    source = (ROOT / "cpp" / "examples" / "usage.cpp").read_text()
    assert source.endswith(snippet)
    assert len(snippet.splitlines()) <= 20
