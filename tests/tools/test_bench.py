"""`spikegrad bench`: the table and JSON structure on tiny sizes (timings are never asserted:
speed goals are measured by the benchmark itself, docs/performance.md), the benchmarked
PyTorch loop is the same neuron as spikegrad's, and the goal verdicts."""

import importlib.util
import json
import statistics
import sys

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from spikegrad.tools import bench, cli  # noqa: E402
from spikegrad.testing import assert_neuron_matches  # noqa: E402

TINY_METHODS = ["spikegrad", "loop", "spikingjelly", "spikegrad-ATGO", "spikegrad-CF"]


def test_the_benchmarked_loop_is_the_same_neuron_as_spikegrad():
    # the comparison is only fair if the loop computes what spikegrad.neuron computes
    loop = bench.make_loop()
    assert_neuron_matches(lambda x, **options: loop(x), max_examples=25, dtype=torch.float32,
                          charge="mul", decay=bench.DECAY, threshold=bench.THRESHOLD,
                          reset="hard", v_reset=bench.V_RESET, surrogate="rect",
                          sg_param=bench.WIDTH)


def test_bench_table_and_json_on_tiny_sizes(tmp_path, capsys):
    path = tmp_path / "bench.json"
    Ts, Ns = [1, 3], [2, 100]
    assert cli.main(["bench", "--T", *map(str, Ts), "--N", *map(str, Ns), "--repeat", "2",
                     "--methods", *TINY_METHODS, "--json", str(path), "--no-progress"]) == 0
    out = capsys.readouterr().out
    report = json.loads(path.read_text())
    have_sj = importlib.util.find_spec("spikingjelly") is not None
    methods = [m for m in TINY_METHODS if have_sj or m != "spikingjelly"]
    if not have_sj:
        assert report["meta"]["skipped"] == {"spikingjelly": "not installed"}
        assert "skipped: spikingjelly (not installed)" in out
    rows = report["rows"]
    assert len(rows) == len(Ts) * len(Ns) * 2 * len(methods)
    cases = {(r["mode"], r["T"], r["N"], r["method"]) for r in rows}
    assert cases == {(mode, T, N, m) for mode in ("forward", "forward+backward")
                     for T in Ts for N in Ns for m in methods}
    for r in rows:
        times = r["times_s"]
        assert bench.MAX_REPEAT >= len(times) >= 2 and all(t > 0 for t in times)
        assert len(times) == bench.MAX_REPEAT or sum(times) >= bench.MIN_TOTAL_S
        assert r["time_s"] == statistics.median(times)
        floor_bytes = {"forward": 8, "forward+backward": 20}[r["mode"]] * r["T"] * r["N"]
        bandwidth = report["copy_gb_per_s"][f"{r['T']},{r['N']}"] * 1e9
        assert r["floor_s"] == pytest.approx(floor_bytes / bandwidth, rel=1e-9)
        assert r["x_floor"] == pytest.approx(r["time_s"] / r["floor_s"], rel=1e-9)
        assert r["gb_per_s"] == pytest.approx(floor_bytes / r["time_s"] / 1e9, rel=1e-9)
    assert "GLIBC_TUNABLES" in report["meta"]["allocator"]
    assert out.startswith("allocator: ")
    table = [line for line in out.splitlines() if line.startswith(("forward ", "forward+"))]
    assert len(table) == len(rows)
    assert "goals: not evaluated" in out


def test_bench_compile_row(capsys):
    assert cli.main(["bench", "--T", "2", "--N", "64", "--repeat", "1", "--methods",
                     "spikegrad", "compile", "--modes", "forward+backward",
                     "--no-progress"]) == 0
    out = capsys.readouterr().out
    rows = [line.split() for line in out.splitlines() if line.startswith("forward+")]
    assert [row[3] for row in rows] == ["spikegrad", "compile"]


def test_allocator_note(monkeypatch):
    monkeypatch.setenv("GLIBC_TUNABLES", bench.NO_PAGE_FAULTS)
    assert "page faults on fresh tensors are excluded" in bench._describe_allocator()
    monkeypatch.delenv("GLIBC_TUNABLES")
    note = bench._describe_allocator()
    assert "unset" in note and bench.NO_PAGE_FAULTS in note


def _row(mode, method, x_floor, floor_s=0.01):
    return bench.Row(mode, 8, 2 ** 22, method, x_floor * floor_s, floor_s, 0.0, x_floor)


def test_goal_verdicts():
    fb, fwd = bench.FORWARD_BACKWARD, bench.FORWARD
    rows = [_row(fb, "spikegrad", 1.25), _row(fb, "loop", 20.0), _row(fb, "compile", 2.0),
            _row(fb, "spikegrad-ATGO", 2.5), _row(fb, "spikegrad-CF", 1.9),
            _row(fwd, "spikegrad", 1.3)]
    lines = bench.goals(bench.Report(rows, {}, {}))
    verdict = {line.split("] ")[1].split(":")[0]: line.strip().startswith("[met]")
               for line in lines[1:]}
    assert verdict == {
        "spikegrad forward+backward within 1.3x of the floor": True,
        "spikegrad-ATGO forward+backward within 2x of the floor": False,
        "spikegrad-CF forward+backward within 2x of the floor": True,
        "spikegrad inference forward within 1.2x of its floor": False,
        "forward+backward at least 2x faster than compile": False,   # 2.0 / 1.25 = 1.6
        "forward+backward at least 10x faster than loop": True,      # 20 / 1.25 = 16
    }


@pytest.mark.parametrize("argv, message", [
    (["--T", "0"], "T must be"), (["--N", "4", "--repeat", "0"], "repeat must be"),
    (["--threads", "0"], "--threads must be")])
def test_bad_arguments_are_named(argv, message, capsys):
    assert cli.main(["bench", "--no-progress", "--methods", "spikegrad", *argv]) == 2
    assert message in capsys.readouterr().err


def test_plot_without_matplotlib_is_a_clear_error(tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib", None)   # `import matplotlib` now fails
    assert cli.main(["bench", "--plot", str(tmp_path / "p.png")]) == 2
    assert "matplotlib" in capsys.readouterr().err
    assert not (tmp_path / "p.png").exists()


@pytest.mark.skipif(importlib.util.find_spec("matplotlib") is None,
                    reason="matplotlib is not installed")
def test_plot_writes_a_png(tmp_path):
    path = tmp_path / "p.png"
    assert cli.main(["bench", "--T", "2", "--N", "8", "16", "--repeat", "1", "--methods",
                     "spikegrad", "loop", "--no-progress", "--plot", str(path)]) == 0
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.parametrize("preset", [None, "ACTIVE"])
def test_import_leaves_omp_wait_policy_as_it_was(preset):
    # spikegrad loads its OpenMP runtime with OMP_WAIT_POLICY=PASSIVE unless the user chose
    # one, and restores the environment (torch's runtime, loaded later, is not affected)
    import os
    import subprocess
    import sys

    env = {k: v for k, v in os.environ.items() if k != "OMP_WAIT_POLICY"}
    if preset:
        env["OMP_WAIT_POLICY"] = preset
    code = "import os, spikegrad; print(os.environ.get('OMP_WAIT_POLICY'))"
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                         text=True, check=True).stdout.strip()
    assert out == str(preset)


def test_variants_table_covers_every_single_level_variant(tmp_path, capsys, monkeypatch):
    # one short timing per case: the table's structure, not the times, is under test
    monkeypatch.setattr(bench, "MIN_TOTAL_S", 0.0)
    path = tmp_path / "variants.json"
    assert cli.main(["bench", "--variants", "--T", "3", "--N", "50", "--repeat", "1",
                     "--json", str(path), "--no-progress"]) == 0
    out = capsys.readouterr().out
    report = json.loads(path.read_text())
    expected = {bench.variant_label(o) for o in bench.neuron_variants()}
    assert len(expected) == 4 * 3 * 3 * 4 * 2   # charge x reset x scale x surrogate x smooth
    rows = report["rows"]
    assert {(r["mode"], r["method"]) for r in rows} == {
        (mode, label) for mode in ("forward", "forward+backward") for label in expected}
    assert len(rows) == 2 * len(expected)
    assert all(r["T"] == 3 and r["N"] == 50 for r in rows)
    for r in rows:
        assert r["x_floor"] == pytest.approx(r["time_s"] / r["floor_s"], rel=1e-9)
    body = [line for line in out.splitlines() if line.split(" ")[0] in expected]
    assert len(body) == len(expected)
    assert "worst" in out and "[smooth]" in out


def test_variants_run_the_variant_they_name():
    # each timed function is the neuron its label names: its output is the NumPy
    # reference's for those options (bit for bit outside smooth mode)
    from spikegrad import ref
    x = torch.randn(4, 33, generator=torch.Generator().manual_seed(3)) + 0.5
    outputs = set()
    for options in bench.neuron_variants():
        got = bench.make_variant(options)(x).numpy()
        want = ref.neuron.forward(x.numpy(), decay=bench.DECAY, threshold=bench.THRESHOLD,
                                  v_reset=bench.V_RESET, sg_param=bench.WIDTH,
                                  **options).output
        label = bench.variant_label(options)
        if options["smooth"]:
            np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6, err_msg=label)
        else:
            assert np.array_equal(got, want), label
        outputs.add(got.tobytes())
    assert len(outputs) > 20   # the options reach the kernel (they change the output)
    labels = [bench.variant_label(o) for o in bench.neuron_variants()]
    assert len(set(labels)) == len(labels)


def test_variant_goal_verdicts():
    fb, fwd = bench.FORWARD_BACKWARD, bench.FORWARD
    rows = [_row(fb, "mul/hard/absolute/rect", 1.2), _row(fb, "if/soft/relative/atan", 1.35),
            _row(fb, "mul/hard/absolute/sigmoid/smooth", 3.0),
            _row(fwd, "mul/hard/absolute/rect", 1.1), _row(fwd, "if/soft/relative/atan", 1.15)]
    lines = bench.variant_goals(bench.Report(rows, {}, {}))
    assert ("  [NOT met] forward+backward within 1.3x of the floor: 1 of 2 variants; worst "
            "1.35x (if/soft/relative/atan)") in lines
    assert ("  [smooth] forward+backward within 1.3x of the floor: 0 of 1 variants; worst "
            "3.00x (mul/hard/absolute/sigmoid/smooth)") in lines
    assert ("  [met] forward within 1.2x of the floor: 2 of 2 variants; worst 1.15x "
            "(if/soft/relative/atan)") in lines


@pytest.mark.parametrize("argv", [["--variants", "--device", "cuda"],
                                  ["--variants", "--plot", "p.png"]])
def test_variants_refuses_what_it_cannot_do(argv, capsys, monkeypatch):
    monkeypatch.setattr(bench, "check_plot_available", lambda: None)
    assert cli.main(["bench", "--no-progress", *argv]) == 2
    assert "--variants" in capsys.readouterr().err


# ---------------------------------------------------------------------------------------
# The GPU bench (bench_cuda.py): its logic on synthetic rows and on the CPU, no GPU needed
# ---------------------------------------------------------------------------------------

from spikegrad.tools import bench_cuda  # noqa: E402

HAVE_SJ = importlib.util.find_spec("spikingjelly") is not None


def _gpu_row(mode, N, method, ms, x_floor=1.0):
    return bench.Row(mode, 8, N, method, ms / 1e3, ms / 1e3 / x_floor, 0.0, x_floor)


def test_gpu_goal_verdicts():
    fb, fwd = bench.FORWARD_BACKWARD, bench.FORWARD
    small, mid, big = 2 ** 16, 2 ** 20, 2 ** 24
    rows = [
        # 2^16: faster than compile and SpikingJelly (the faster of its two backends)
        _gpu_row(fwd, small, "spikegrad", 0.010), _gpu_row(fwd, small, "compile", 0.020),
        _gpu_row(fwd, small, "spikingjelly-triton", 0.030),
        _gpu_row(fwd, small, "spikingjelly-cuda", 0.015),
        # forward+backward: slower than the native SpikingJelly backend, equal to compile
        _gpu_row(fb, small, "spikegrad", 0.040), _gpu_row(fb, small, "compile", 0.040),
        _gpu_row(fb, small, "spikingjelly-triton", 0.050),
        _gpu_row(fb, small, "spikingjelly-cuda", 0.030),
        # 2^20: forward rows missing, forward+backward without SpikingJelly
        _gpu_row(fb, mid, "spikegrad", 0.1), _gpu_row(fb, mid, "compile", 0.3),
        # 2^24: the floors
        _gpu_row(fb, big, "spikegrad", 2.0, x_floor=1.24),
        _gpu_row(fwd, big, "spikegrad", 0.7, x_floor=1.16),
        _gpu_row(fb, big, "compile", 3.0), _gpu_row(fwd, big, "compile", 0.6),
        _gpu_row(fb, big, "spikingjelly-triton", 4.0),
        _gpu_row(fwd, big, "spikingjelly-triton", 1.0),
        _gpu_row(fb, big, "spikegrad-ATGO", 5.0, x_floor=2.5),
        _gpu_row(fb, big, "spikegrad-CF", 3.0, x_floor=1.5),
        _gpu_row(fb, 2 ** 22, "spikegrad", 1.0),   # not a goal size: ignored
    ]
    report = bench.Report(rows, {}, {"gpu": "test GPU"})
    lines = bench_cuda.goals_cuda(report)
    assert lines[0] == "GPU goals (T = 8, float32, test GPU): 8 of 16 met"
    assert len(lines) == 17 and all(line.startswith(("  [met] ", "  [NOT met] "))
                                    for line in lines[1:])
    met = {line.split("] ", 1)[1].rsplit(": ", 1)[0]: line.startswith("  [met]")
           for line in lines[1:]}
    assert met == {
        "N = 2^16: spikegrad forward faster than torch.compile": True,
        "N = 2^16: spikegrad forward faster than SpikingJelly": True,
        "N = 2^16: spikegrad forward+backward faster than torch.compile": False,   # equal
        "N = 2^16: spikegrad forward+backward faster than SpikingJelly": False,
        "N = 2^20: spikegrad forward faster than torch.compile": False,            # missing
        "N = 2^20: spikegrad forward faster than SpikingJelly": False,
        "N = 2^20: spikegrad forward+backward faster than torch.compile": True,
        "N = 2^20: spikegrad forward+backward faster than SpikingJelly": False,
        "N = 2^24: spikegrad forward faster than torch.compile": False,            # 0.7 > 0.6
        "N = 2^24: spikegrad forward faster than SpikingJelly": True,
        "N = 2^24: spikegrad forward+backward faster than torch.compile": True,
        "N = 2^24: spikegrad forward+backward faster than SpikingJelly": True,
        "N = 2^24: spikegrad forward+backward within 1.25x of the 20-byte floor": True,
        "N = 2^24: spikegrad forward within 1.15x of the 8-byte floor": False,
        "N = 2^24: spikegrad-ATGO forward+backward within 2x of the 20-byte floor": False,
        "N = 2^24: spikegrad-CF forward+backward within 2x of the 20-byte floor": True,
    }
    text = "\n".join(lines)
    assert "0.75x than spikingjelly-cuda" in text and "1.50x than spikingjelly-cuda" in text
    assert "N = 2^20: spikegrad forward faster than torch.compile: not measured" in text
    goals = bench_cuda.evaluate_goals_cuda(report)
    assert [g["met"] for g in goals] == list(met.values())
    assert goals[0]["value"] == pytest.approx(2.0) and goals[4]["value"] is None
    json.dumps(goals)   # the JSON carries them


def test_gpu_goals_on_an_empty_report_are_all_not_met():
    lines = bench_cuda.goals_cuda(bench.Report([], {}, {}))
    assert len(lines) == 17 and all("[NOT met]" in line and line.endswith("not measured")
                                    for line in lines[1:])


def test_gpu_factories_record_unknown_and_unbuildable_methods():
    factories, skipped = bench_cuda._factories(
        ("spikegrad", "bogus", "spikingjelly-triton", "spikingjelly-cuda"), device="cpu")
    assert list(factories) == ["spikegrad"]
    assert skipped["bogus"].startswith("unknown method")
    # without SpikingJelly: ImportError; with it: its GPU backends refuse CPU tensors
    for name in ("spikingjelly-triton", "spikingjelly-cuda"):
        assert ("ModuleNotFoundError" in skipped[name] if not HAVE_SJ
                else "runs on CUDA tensors only" in skipped[name]), skipped[name]


def test_time_batches_fills_the_target_and_repeats():
    calls, syncs = [], []
    times, per_batch, single, warmup = bench_cuda.time_batches(
        lambda: calls.append(1), 4, lambda: syncs.append(1), target_s=1e-3, max_calls=300)
    assert len(times) == 4 and all(t > 0 for t in times)
    assert 1 <= per_batch <= 300 and single > 0 and warmup > 0
    # warm-up + 3 single calls + one calibration batch (when > 1 call) + 4 batches
    assert len(calls) >= 1 + bench_cuda.SINGLE_CALLS + 4 * per_batch


class _Raising(torch.nn.Module):
    """A layer (it has .to) whose forward raises."""

    def __init__(self, error):
        super().__init__()
        self.error = error

    def forward(self, x):
        raise self.error


def test_gpu_bench_runs_on_the_cpu_and_records_failures(monkeypatch, tmp_path):
    # the whole GPU run, on CPU tensors with tiny sizes: rows, skipped methods, goals, table
    monkeypatch.setattr(bench_cuda, "TARGET_BATCH_S", 1e-4)

    monkeypatch.setattr(bench, "make_cf", lambda T: _Raising(RuntimeError("kernel exploded")))
    report = bench_cuda.run_bench_cuda(
        Ts=(3,), Ns=(40, 64), methods=("spikegrad", "loop", "bogus", "spikegrad-CF"),
        repeat=2, progress=False, device="cpu")
    assert {(r.mode, r.N, r.method) for r in report.rows} == {
        (mode, N, m) for mode in ("forward", "forward+backward") for N in (40, 64)
        for m in ("spikegrad", "loop")}
    for r in report.rows:
        assert len(r.times_s) == 2 and r.time_s == statistics.median(r.times_s)
        assert r.calls_per_batch >= 1 and r.single_call_s > 0 and r.warmup_s > 0
        assert r.x_floor == pytest.approx(r.time_s / r.floor_s, rel=1e-9)
    skipped = report.meta["skipped"]
    assert skipped["bogus"].startswith("unknown method")
    assert skipped["spikegrad-CF forward T=3 N=40"] == "RuntimeError: kernel exploded"
    assert len([k for k in skipped if k.startswith("spikegrad-CF")]) == 4
    assert len(report.meta["goals"]) == 16 and "interrupted" not in report.meta
    table = bench_cuda.format_table_cuda(report)
    assert "skipped: bogus (unknown method" in table
    body = [line for line in table.splitlines() if line.startswith(("forward ", "forward+"))]
    assert len(body) == len(report.rows)
    data = json.loads(json.dumps(bench.to_json(report)))
    assert {"calls_per_batch", "single_call_s", "warmup_s"} <= set(data["rows"][0])


def test_gpu_bench_keeps_what_it_measured_when_stopped(monkeypatch):
    # SIGTERM (from `timeout`) raises BenchInterrupted in the run: the rows so far are kept
    monkeypatch.setattr(bench_cuda, "TARGET_BATCH_S", 1e-4)

    monkeypatch.setattr(bench, "make_cf",
                        lambda T: _Raising(bench_cuda.BenchInterrupted("signal 15")))
    report = bench_cuda.run_bench_cuda(Ts=(2,), Ns=(32, 64), methods=("spikegrad", "spikegrad-CF"),
                                       repeat=1, progress=False, device="cpu")
    assert [(r.mode, r.N, r.method) for r in report.rows] == [("forward", 32, "spikegrad")]
    assert report.meta["interrupted"].startswith("stopped by signal 15")
    assert "INTERRUPTED" in bench_cuda.format_table_cuda(report)


def test_gpu_profile_text_on_the_cpu():
    text = bench_cuda.profile_cuda(Ns=(64,), T=3, calls=2, device="cpu")
    assert "N = 2^6, T = 3, spikegrad forward+backward, 2 calls: wall" in text
    # the eager path (an autograd.Function) or the registered op, by name
    assert "host operation (self CPU time)" in text and (
        "_NeuronFunction" in text or "spikegrad::neuron_forward" in text)
    assert "profile failed" not in text


@pytest.mark.parametrize("argv, message", [
    (["--profile"], "--profile needs --device cuda"),
    (["--device", "cuda", "--profile"], "no CUDA GPU"),
    (["--device", "cuda", "--N", "64"], "no CUDA GPU")])
def test_gpu_bench_without_a_gpu_says_so(argv, message, capsys, monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert cli.main(["bench", "--no-progress", *argv]) == 2
    assert message in capsys.readouterr().err


def test_gpu_method_names_are_accepted_by_the_cli(capsys):
    # the CPU bench refuses a GPU-only method by name instead of timing something else
    assert cli.main(["bench", "--no-progress", "--methods", "spikingjelly-triton", "--T", "2",
                     "--N", "8"]) == 2
    assert "unknown method 'spikingjelly-triton'" in capsys.readouterr().err


@pytest.mark.skipif(not HAVE_SJ, reason="SpikingJelly is not installed")
def test_spikingjelly_factory_is_the_bench_neuron_on_the_cpu():
    # SpikingJelly 2.0's LIFNode as built for the GPU rows (backend "torch" on CPU tensors):
    # decay_input=False with tau = 1 / (1 - lam) is the mul charge up to rounding, so its spikes
    # are spikegrad's but where h lands within rounding of the threshold
    lif = bench_cuda.make_spikingjelly_cuda("torch", device="cpu")
    x = torch.randn(8, 4096, generator=torch.Generator().manual_seed(1)) + 0.5
    theirs, ours = lif(x), bench.make_spikegrad()(x)
    assert theirs.shape == ours.shape
    assert (theirs != ours).float().mean() < 1e-3
    leaf = x.clone().requires_grad_(True)
    lif(leaf).sum().backward()
    assert leaf.grad is not None and torch.isfinite(leaf.grad).all()
    with pytest.raises(RuntimeError, match="CUDA tensors only"):
        bench_cuda.make_spikingjelly_cuda("triton", device="cpu")
