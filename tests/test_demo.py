"""`spikegrad demo`: a short run writes results.json, results.md and figures.png whose
contents are consistent and plausible; the same seed gives the same results; bad arguments
are named. Skipped without scikit-learn or matplotlib (pip install 'spikegrad[demo]')."""

import io
import json
import math
import sys

import pytest

pytest.importorskip("torch")
pytest.importorskip("sklearn")
pytest.importorskip("matplotlib")

from spikegrad import cli, demo  # noqa: E402

METHODS = ["lif", "cf-tsg-pnb"]     # a single-level and the multi-level neuron
EPOCHS = 2


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("demo")
    code = cli.main(["demo", "--quick", "--epochs", str(EPOCHS), "--methods", *METHODS,
                     "--out", str(out), "--seed", "3"])
    assert code == 0
    return out


def test_results_json_schema_and_plausible_values(quick_run):
    results = json.loads((quick_run / "results.json").read_text())
    assert results["seed"] == 3 and results["quick"] is True
    config = results["config"]
    T, layers = config["T"], config["layers"]
    assert config["epochs"] == EPOCHS
    # scikit-learn's digits: 1797 images, a 20% stratified test split
    assert config["train_size"] + config["test_size"] == 1797
    assert config["test_size"] == math.ceil(0.2 * 1797)
    assert list(results["methods"]) == METHODS
    for name, entry in results["methods"].items():
        assert entry["label"] == demo.METHODS[name].label
        per_epoch = entry["test_accuracy_per_epoch"]
        assert len(per_epoch) == EPOCHS
        assert entry["test_accuracy"] == per_epoch[-1]
        # accuracies are counts over the test set; chance is 10%, two epochs learn digits
        for accuracy in per_epoch:
            assert (accuracy * config["test_size"]) == pytest.approx(
                round(accuracy * config["test_size"]), abs=1e-6)
        assert 0.5 < entry["test_accuracy"] <= 1.0, name
        rates = entry["firing_rate"]
        assert len(rates) == layers and all(len(r) == T for r in rates)
        # every layer fires, none saturates (all neurons at every step)
        assert all(0 < rate < 1 for layer in rates for rate in layer), (name, rates)
        available = entry["gradient_available_per_timestep"]
        assert len(available) == layers and all(len(a) == T for a in available)
        assert all(0 <= a <= 1 for layer in available for a in layer)
        assert entry["gradient_available"] == pytest.approx(
            [sum(layer) / T for layer in available], rel=1e-12)
        assert entry["train_time_s"] > 0


def test_cf_has_more_neurons_in_its_gradient_window_than_plain_lif(quick_run):
    # TSG's triangles of half-width 1/a = 1 around the levels +-1, +-2 cover (-3, 3) minus
    # two points, plain LIF's rectangle of width 1 only (0.5, 1.5): the figure's point.
    methods = json.loads((quick_run / "results.json").read_text())["methods"]
    for cf, lif in zip(methods["cf-tsg-pnb"]["gradient_available"],
                       methods["lif"]["gradient_available"]):
        assert cf > lif


def test_results_md_is_a_table_of_the_json(quick_run):
    results = json.loads((quick_run / "results.json").read_text())
    lines = (quick_run / "results.md").read_text().splitlines()
    rows = [line for line in lines if line.startswith("| ") and not line.startswith("| method")]
    assert len(rows) == len(METHODS)
    for row, entry in zip(rows, results["methods"].values()):
        cells = [c.strip() for c in row.strip("|").split("|")]
        assert cells[0] == entry["label"]
        assert cells[1] == f"{100 * entry['test_accuracy']:.1f}%"
        assert len(cells[2].split(" / ")) == results["config"]["layers"]
        assert cells[3].split(" / ")[0] == f"{100 * entry['gradient_available'][0]:.1f}%"


def test_figures_png_is_a_three_panel_png(quick_run):
    import matplotlib.image

    data = (quick_run / "figures.png").read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    image = matplotlib.image.imread(str(quick_run / "figures.png"))
    height, width = image.shape[:2]
    assert width > 2.5 * height            # three panels side by side
    assert image.std() > 0                 # not a blank canvas


def test_same_seed_same_results_other_seed_other_split(tmp_path):
    def run(seed, out):
        results = demo.run_demo(["lif"], str(tmp_path / out), quick=True, seed=seed,
                                epochs=1, stream=io.StringIO())
        entry = results["methods"]["lif"]
        entry.pop("train_time_s")
        return entry

    first = run(0, "a")
    assert run(0, "b") == first
    assert run(1, "c") != first


def test_bad_arguments_are_named(tmp_path, capsys):
    assert cli.main(["demo", "--methods", "lif", "nope", "--out", str(tmp_path)]) == 2
    assert "--methods" in capsys.readouterr().err
    assert cli.main(["demo", "--epochs", "0", "--out", str(tmp_path)]) == 2
    assert "--epochs" in capsys.readouterr().err
    with pytest.raises(ValueError, match="methods"):
        demo.run_demo([], str(tmp_path))
    with pytest.raises(ValueError, match="methods"):
        demo.run_demo(["lif", "lif"], str(tmp_path))
    with pytest.raises(ValueError, match="epochs"):
        demo.run_demo(["lif"], str(tmp_path), epochs=0)
    with pytest.raises(TypeError, match="seed"):
        demo.run_demo(["lif"], str(tmp_path), seed=1.5)
    assert not (tmp_path / "results.json").exists()


def test_missing_extra_is_a_clear_error(tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "sklearn", None)     # as if not installed
    assert cli.main(["demo", "--methods", "lif", "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "sklearn" in err and "spikegrad[torch,demo]" in err
    assert not (tmp_path / "results.json").exists()
