"""`spikegrad demo`: a short run writes results.json, results.md and figures.png whose
contents are consistent and plausible; the same seed gives the same results; bad arguments
are named. Skipped without scikit-learn or matplotlib (pip install 'spikegrad[demo]')."""

import io
import json
import math
import sys

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from conftest import examples

pytest.importorskip("torch")
pytest.importorskip("sklearn")
pytest.importorskip("matplotlib")

from spikegrad.tools import cli, demo  # noqa: E402

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

    import torch

    threads = torch.get_num_threads()
    first = run(0, "a")
    assert run(0, "b") == first
    assert run(1, "c") != first
    assert torch.get_num_threads() == threads     # the demo's one thread is given back


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
    with pytest.raises(TypeError, match="methods"):
        demo.run_demo("lif", str(tmp_path))
    with pytest.raises(TypeError, match="seed"):
        demo.run_demo(["lif"], str(tmp_path), seed=1.5)
    assert not (tmp_path / "results.json").exists()


def test_missing_extra_is_a_clear_error(tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "sklearn", None)     # as if not installed
    assert cli.main(["demo", "--methods", "lif", "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "sklearn" in err and "spikegrad[torch,demo]" in err
    assert not (tmp_path / "results.json").exists()


def _small_network(name, T=2, seed=0):
    import torch

    torch.manual_seed(seed)
    config = demo.DemoConfig(T=T, hidden=8, layers=2, epochs=1)
    return demo.build_network(demo.METHODS[name], config), config


@pytest.mark.parametrize("T", [1, 3])
def test_every_method_starts_from_the_same_linear_weights(T):
    import torch

    reference, _ = _small_network("lif", T)
    for name in demo.METHODS:
        net, _ = _small_network(name, T)
        for a, b in zip([*reference.linears, reference.readout], [*net.linears, net.readout]):
            assert torch.equal(a.weight, b.weight) and torch.equal(a.bias, b.bias), name


@pytest.mark.parametrize("name", list(demo.METHODS))
def test_network_wiring(name):
    import torch

    from spikegrad import nn as snn
    from spikegrad import pnb_loss

    expected_layer = {"lif": snn.LIF, "ds-atgo": snn.ATGO, "mpd-agl": snn.MPDAGL,
                      "cf-tsg-pnb": snn.CF, "mp-init-trsg": snn.TrLIF, "as-sg": snn.TrLIF,
                      "rs-sg": snn.TrLIF}[name]
    net, config = _small_network(name)
    assert all(type(layer) is expected_layer for layer in net.spiking_layers())
    assert len(net.spiking_layers()) == config.layers
    if name == "mpd-agl":
        # each MPD-AGL layer takes gamma_bar from its own tdBN (V_th = 0.5): with gamma = 3
        # on the second norm, its first width is 2 * 3 * 0.5 (Eq. 7)
        with torch.no_grad():
            net.norms[1].weight.fill_(3.0)
        assert net.norms[1].v_th == 0.5
    for layer in net.spiking_layers():
        layer.record_diagnostics = True
    x = torch.rand(5, 64)
    logits = net(x)
    assert logits.shape == (5, 10)
    if name == "mpd-agl":
        assert float(net.spiking[0].diagnostics["sg_width"][0]) == pytest.approx(1.0)
        assert float(net.spiking[1].diagnostics["sg_width"][0]) == pytest.approx(3.0)
    for layer in net.spiking_layers():
        assert layer.diagnostics["firing_rate"].shape == (config.T,)
    extra = net.extra_loss()
    if name == "cf-tsg-pnb":
        assert torch.equal(extra, pnb_loss([layer.membrane for layer in net.spiking]))
    else:
        assert extra is None
    if name in ("mp-init-trsg", "as-sg", "rs-sg"):
        scale = {"mp-init-trsg": "threshold_robust", "as-sg": "absolute",
                 "rs-sg": "relative"}[name]
        assert all(layer.scale == scale and layer.mp_init for layer in net.spiking)


@st.composite
def _results(draw):
    """A results dict as run_demo writes it, with drawn values (rates 0 and 1 included)."""
    layers, T = draw(st.integers(1, 4)), draw(st.integers(1, 4))
    names = draw(st.lists(st.sampled_from(list(demo.METHODS)), min_size=1, unique=True))
    fraction = st.floats(0, 1)
    methods = {}
    for name in names:
        available = [draw(st.lists(fraction, min_size=T, max_size=T)) for _ in range(layers)]
        methods[name] = {
            "label": demo.METHODS[name].label,
            "test_accuracy": draw(st.integers(0, 360)) / 360,
            "firing_rate": [draw(st.lists(fraction, min_size=T, max_size=T))
                            for _ in range(layers)],
            "gradient_available": [sum(a) / T for a in available],
            "train_time_s": draw(st.floats(1e-3, 1e3)),
        }
    config = {"T": T, "hidden": 8, "layers": layers, "epochs": 1, "train_size": 1437,
              "test_size": 360}
    return {"seed": 0, "config": config, "methods": methods}


@settings(max_examples=examples(40))
@given(results=_results())
@example(results={"seed": 0, "config": {"T": 1, "hidden": 1, "layers": 1, "epochs": 1,
                                        "train_size": 1437, "test_size": 360},
                  "methods": {"lif": {"label": "plain LIF", "test_accuracy": 1.0,
                                      "firing_rate": [[0.0]], "gradient_available": [1.0],
                                      "train_time_s": 0.05}}})
def test_results_md_rows_read_back_as_the_results(results):
    import tempfile

    with tempfile.TemporaryDirectory() as out:
        path = f"{out}/results.md"
        demo.write_markdown(results, path)
        with open(path) as written:
            lines = written.read().splitlines()
    rows = [line for line in lines if line.startswith("| ") and not line.startswith("| method")]
    assert len(rows) == len(results["methods"])
    for row, entry in zip(rows, results["methods"].values()):
        cells = [c.strip() for c in row.strip("|").split("|")]
        assert cells[0] == entry["label"]
        assert float(cells[1].rstrip("%")) == pytest.approx(100 * entry["test_accuracy"],
                                                            abs=0.05)
        rates = [float(c.rstrip("%")) for c in cells[2].split(" / ")]
        means = [100 * sum(r) / len(r) for r in entry["firing_rate"]]
        assert rates == pytest.approx(means, abs=0.05 + 1e-9)
        grads = [float(c.rstrip("%")) for c in cells[3].split(" / ")]
        assert grads == pytest.approx([100 * g for g in entry["gradient_available"]],
                                      abs=0.05 + 1e-9)
        assert float(cells[4]) == pytest.approx(entry["train_time_s"], abs=0.05 + 1e-9)
