"""`spikegrad demo`: the seed methods side by side on scikit-learn's handwritten digits.

    spikegrad demo --quick --out demo-results          # about 20 s on 2 cores
    spikegrad demo --methods lif ds-atgo --seed 1      # the full run, two methods

Every method trains the same small spiking network, from the same initial weights, on the
same batches (one seed fixes the split, the initial weights and the batch order):

    x [B, 64] (8x8 digits / 16) -> Linear(64, H) -> norm -> spiking layer 1     direct input,
      repeated over T steps     -> Linear(H, H)  -> norm -> spiking layer 2     [T, B, H]
                                   ... (L spiking layers)
                                -> Linear(H, 10) on the mean over t of layer L's output

The spiking layers and the norm are the method's (see METHODS and docs/demo.md). What is
measured, per method: test accuracy after every epoch; per layer and timestep, the firing
rate and the proportion of neurons inside the surrogate's gradient window (the layers'
`diagnostics`, averaged over the training batches of the last epoch); training time.
Written to --out: results.json, results.md (a table) and figures.png.

Needs PyTorch, scikit-learn and matplotlib: pip install 'spikegrad[torch,demo]'.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import dataclasses
from dataclasses import dataclass
from typing import Callable, Optional

__all__ = ["METHODS", "DemoConfig", "run_demo", "main"]


@dataclass(frozen=True)
class DemoConfig:
    """The training recipe shared by every method. `quick()` and `full()` are the two
    presets of the command line."""
    T: int = 4               # timesteps (direct input: the same image at every step)
    hidden: int = 128        # H, neurons per spiking layer
    layers: int = 4          # L, spiking layers
    epochs: int = 20
    batch_size: int = 64
    lr: float = 2e-3         # Adam
    test_fraction: float = 0.2
    pnb_weight: float = 0.25     # CF: CE + 0.25 * L_pnb (the CF paper's Eq. 23)

    @classmethod
    def quick(cls) -> "DemoConfig":
        return cls(epochs=8)

    @classmethod
    def full(cls) -> "DemoConfig":
        return cls(hidden=256, epochs=30)


# ---------------------------------------------------------------------------------------
# The methods: one spiking layer (and its norm) per hidden layer.
# ---------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Method:
    label: str                       # as the papers name it
    make_norm: Callable              # hidden -> the norm before the spiking layer
    make_layer: Callable             # config -> the spiking layer
    note: str                        # what the method is, in this network


def _bn(hidden):
    """A batch norm over time and batch: tdBatchNorm with alpha V_th = 1 is exactly that."""
    from ..nn import tdBatchNorm
    return tdBatchNorm(hidden, alpha=1.0, v_th=1.0)


def _td_bn_half(hidden):
    from ..nn import tdBatchNorm
    return tdBatchNorm(hidden, alpha=1.0, v_th=0.5)   # MPD-AGL: normalised to V_th = 0.5


def _lif(config):
    from ..nn import LIF
    return LIF(charge="mul", decay=0.2, threshold=1.0, reset="hard", scale="absolute",
               surrogate="rect", sg_param=1.0)


def _atgo(config):
    from ..nn import ATGO
    return ATGO(decay=0.2)


def _mpdagl(config):
    from ..nn import MPDAGL
    return MPDAGL(decay=0.2, learn_decay=True, v_th=0.5)


def _cf(config):
    from ..nn import CF
    return CF(T=config.T, keep_membrane=True)   # the PNB loss reads every membrane


def _trlif(scale):
    def make(config):
        from ..nn import TrLIF
        return TrLIF(tau=2.0, threshold=1.0, scale=scale)
    return make


METHODS: dict[str, Method] = {
    "lif": Method("plain LIF", _bn, _lif,
                  "mul charge, lam 0.2, theta 1, hard reset, rect width 1"),
    "ds-atgo": Method("DS-ATGO", _bn, _atgo,
                      "adaptive threshold (mean + std of h[t]) + TGO width schedule"),
    "mpd-agl": Method("MPD-AGL", _td_bn_half, _mpdagl,
                      "tdBN (V_th 0.5) + PLIF + MPD-AGL width from gamma_bar"),
    "cf-tsg-pnb": Method("CF + TSG + PNB", _bn, _cf,
                         "circulate-firing (K = 2), learnable TSG a[t], CE + 0.25 PNB"),
    "mp-init-trsg": Method("MP-Init + TrSG", _bn, _trlif("threshold_robust"),
                           "learnable tau and theta, TrSG, MP-Init"),
    "as-sg": Method("AS-SG", _bn, _trlif("absolute"),
                    "as MP-Init + TrSG with the absolute-scale surrogate"),
    "rs-sg": Method("RS-SG", _bn, _trlif("relative"),
                    "as MP-Init + TrSG with the relative-scale surrogate"),
}


# ---------------------------------------------------------------------------------------
# Data and network
# ---------------------------------------------------------------------------------------

def _require_extras():
    try:
        import matplotlib  # noqa: F401
        import sklearn  # noqa: F401
        import torch  # noqa: F401
    except ImportError as error:
        raise ImportError(f"spikegrad demo needs PyTorch, scikit-learn and matplotlib "
                          f"({error.name} is missing): pip install 'spikegrad[torch,demo]'"
                          ) from error


def load_digits_split(seed: int, test_fraction: float):
    """scikit-learn's bundled 8x8 digits (1797 images, no download), pixels / 16, split
    stratified by class with `seed`. Returns float32 tensors (x_train, y_train, x_test,
    y_test)."""
    import torch
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    digits = load_digits()
    x = digits.data.astype("float32") / 16.0
    x_train, x_test, y_train, y_test = train_test_split(
        x, digits.target, test_size=test_fraction, stratify=digits.target,
        random_state=seed)
    return (torch.from_numpy(x_train), torch.from_numpy(y_train).long(),
            torch.from_numpy(x_test), torch.from_numpy(y_test).long())


def build_network(method: Method, config: DemoConfig):
    """The demo network for one method (torch.nn.Module): forward(x [B, 64]) -> logits."""
    from torch import nn

    from ..nn import CF, MPDAGL, gamma_bar

    class DemoNet(nn.Module):
        def __init__(self):
            super().__init__()
            H, L = config.hidden, config.layers
            # the linear layers first, so that every method starts from the same weights
            self.linears = nn.ModuleList([nn.Linear(64 if k == 0 else H, H) for k in range(L)])
            self.readout = nn.Linear(H, 10)
            self.norms = nn.ModuleList([method.make_norm(H) for _ in range(L)])
            self.spiking = nn.ModuleList([method.make_layer(config) for _ in range(L)])

        def spiking_layers(self):
            return list(self.spiking)

        def forward(self, x):
            # direct input: the image's encoding, the same at each of the T steps
            s = self.linears[0](x).unsqueeze(0).expand(config.T, -1, -1)   # [T, B, H]
            for k, (norm, layer) in enumerate(zip(self.norms, self.spiking)):
                y = norm(s if k == 0 else self.linears[k](s))
                s = layer(y, gamma_bar=gamma_bar(norm)) if isinstance(layer, MPDAGL) \
                    else layer(y)
            return self.readout(s.mean(0))                                  # [B, 10]

        def extra_loss(self):
            """CF: the CF paper's PNB loss on the pre-reset membranes of every CF layer."""
            if isinstance(self.spiking[0], CF):
                from .. import pnb_loss
                return pnb_loss([layer.membrane for layer in self.spiking])
            return None

    return DemoNet()


# ---------------------------------------------------------------------------------------
# Training, measuring, progress
# ---------------------------------------------------------------------------------------

class _Progress:
    """One line per method: a bar over the epochs, the last test accuracy, the time."""

    def __init__(self, name: str, total: int, stream=None):
        self.name, self.total = name, total
        self.stream = stream if stream is not None else sys.stderr
        self.tty = hasattr(self.stream, "isatty") and self.stream.isatty()
        self.start = time.perf_counter()

    def update(self, done: int, accuracy: Optional[float]) -> None:
        width = 20
        filled = round(width * done / self.total)
        acc = "" if accuracy is None else f"  test acc {100 * accuracy:5.1f}%"
        line = (f"{self.name:<13} [{'#' * filled}{'.' * (width - filled)}] "
                f"{done:>3}/{self.total} epochs{acc}  {time.perf_counter() - self.start:6.1f} s")
        if self.tty:
            self.stream.write("\r" + line + ("\n" if done == self.total else ""))
        elif done == self.total:
            self.stream.write(line + "\n")
        self.stream.flush()


def _accuracy(model, x, y, batch_size: int) -> float:
    import torch

    model.eval()
    correct = 0
    with torch.no_grad():
        for i in range(0, len(x), batch_size):
            correct += int((model(x[i:i + batch_size]).argmax(1) == y[i:i + batch_size]).sum())
    model.train()
    return correct / len(x)


def train_method(name: str, config: DemoConfig, data, seed: int, stream=None) -> dict:
    """Train one method; returns its entry of results.json."""
    import torch
    from torch import nn

    method = METHODS[name]
    x_train, y_train, x_test, y_test = data
    torch.manual_seed(seed)                        # same initial weights for every method
    model = build_network(method, config)
    optimizer = torch.optim.Adam(model.parameters(), lr=config.lr)
    order = torch.Generator().manual_seed(seed)    # same batch order for every method
    ce = nn.CrossEntropyLoss()
    layers = model.spiking_layers()
    progress = _Progress(name, config.epochs, stream)
    accuracy_per_epoch = []
    firing = [torch.zeros(config.T, dtype=torch.float64) for _ in layers]
    available = [torch.zeros(config.T, dtype=torch.float64) for _ in layers]
    seen = 0
    train_time = 0.0               # the training steps only, not the per-epoch evaluation
    for epoch in range(config.epochs):
        start = time.perf_counter()
        last = epoch == config.epochs - 1
        for layer in layers:
            layer.record_diagnostics = last       # measure the last epoch's windows
        permutation = torch.randperm(len(x_train), generator=order)
        for i in range(0, len(x_train), config.batch_size):
            batch = permutation[i:i + config.batch_size]
            if len(batch) < 2:
                continue                           # batch norm needs two samples
            logits = model(x_train[batch])
            loss = ce(logits, y_train[batch])
            extra = model.extra_loss()
            if extra is not None:
                loss = loss + config.pnb_weight * extra
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            if last:
                # weighted by batch size: the fraction over all the epoch's neurons
                for k, layer in enumerate(layers):
                    firing[k] += len(batch) * layer.diagnostics["firing_rate"].double()
                    available[k] += len(batch) * \
                        layer.diagnostics["gradient_available"].double()
                seen += len(batch)
        train_time += time.perf_counter() - start
        accuracy_per_epoch.append(_accuracy(model, x_test, y_test, 256))
        progress.update(epoch + 1, accuracy_per_epoch[-1])
    for layer in layers:
        layer.record_diagnostics = False
    firing_rate = [(f / seen).tolist() for f in firing]
    gradient_available_t = [(g / seen).tolist() for g in available]
    return {
        "label": method.label,
        "description": method.note,
        "test_accuracy": accuracy_per_epoch[-1],
        "test_accuracy_per_epoch": accuracy_per_epoch,
        "firing_rate": firing_rate,                                  # [layer][t]
        "gradient_available": [sum(g) / len(g) for g in gradient_available_t],  # [layer]
        "gradient_available_per_timestep": gradient_available_t,     # [layer][t]
        "train_time_s": train_time,
    }


# ---------------------------------------------------------------------------------------
# Output: results.json, results.md, figures.png
# ---------------------------------------------------------------------------------------

def write_markdown(results: dict, path: str) -> None:
    methods = results["methods"]
    config = results["config"]
    lines = [
        f"# spikegrad demo: handwritten digits ({config['train_size']} train / "
        f"{config['test_size']} test), T = {config['T']}, H = {config['hidden']}, "
        f"{config['epochs']} epochs, seed {results['seed']}",
        "",
        "Firing rate and gradient-available proportion: per spiking layer (1 / 2 / ...), over the "
        "last epoch's training windows; firing rate averaged over the timesteps.",
        "",
        "| method | test accuracy | firing rate per layer | gradient available per layer "
        "| training time (s) |",
        "|---|---:|---:|---:|---:|",
    ]
    for entry in methods.values():
        rates = " / ".join(f"{100 * sum(r) / len(r):.1f}%" for r in entry["firing_rate"])
        grads = " / ".join(f"{100 * g:.1f}%" for g in entry["gradient_available"])
        lines.append(f"| {entry['label']} | {100 * entry['test_accuracy']:.1f}% | {rates} | "
                     f"{grads} | {entry['train_time_s']:.1f} |")
    with open(path, "w") as f:
        f.write("\n".join(lines) + "\n")


def write_figures(results: dict, path: str) -> None:
    """Three panels, like the MPD-AGL paper's Fig. 5 and the DS-ATGO paper's Figs. 8 and 11: test accuracy per
    epoch; firing rate per layer and timestep; gradient-available proportion per layer."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    methods = results["methods"]
    fig, (acc_ax, rate_ax, grad_ax) = plt.subplots(1, 3, figsize=(15, 4.4))
    colors = plt.get_cmap("tab10").colors
    n_methods = len(methods)
    for m, entry in enumerate(methods.values()):
        color = colors[m % len(colors)]
        epochs = range(1, len(entry["test_accuracy_per_epoch"]) + 1)
        acc_ax.plot(epochs, [100 * a for a in entry["test_accuracy_per_epoch"]],
                    marker="o", ms=3, color=color, label=entry["label"])
        # firing rate: layer by layer, t = 0..T-1 within each layer
        xs, ys = [], []
        for k, rates in enumerate(entry["firing_rate"]):
            T = len(rates)
            xs.append([k * (T + 1) + t for t in range(T)])
            ys.append([100 * r for r in rates])
        for k, (x, y) in enumerate(zip(xs, ys)):
            rate_ax.plot(x, y, marker="o", ms=3, color=color,
                         label=entry["label"] if k == 0 else None)
        layers = len(entry["gradient_available"])
        width = 0.8 / n_methods
        grad_ax.bar([k + (m - (n_methods - 1) / 2) * width for k in range(layers)],
                    [100 * g for g in entry["gradient_available"]], width=width,
                    color=color, label=entry["label"])
    acc_ax.set(title="test accuracy per epoch", xlabel="epoch", ylabel="accuracy (%)")
    acc_ax.legend(fontsize=8)
    first = next(iter(methods.values()))
    T = len(first["firing_rate"][0])
    layers = len(first["firing_rate"])
    rate_ax.set_xticks([k * (T + 1) + t for k in range(layers) for t in range(T)])
    rate_ax.set_xticklabels([f"t{t}" for k in range(layers) for t in range(T)], fontsize=7)
    for k in range(layers):
        rate_ax.annotate(f"layer {k + 1}", xy=(k * (T + 1) + (T - 1) / 2, 0),
                         xycoords=("data", "axes fraction"), xytext=(0, -24),
                         textcoords="offset points", ha="center", fontsize=9)
    rate_ax.set(title="firing rate per layer and timestep", ylabel="firing rate (%)")
    grad_ax.set_xticks(range(layers))
    grad_ax.set_xticklabels([f"layer {k + 1}" for k in range(layers)])
    grad_ax.set(title="neurons inside the gradient window",
                ylabel="gradient-available proportion (%)")
    for ax in (acc_ax, rate_ax, grad_ax):
        ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)


def run_demo(methods, out: str, *, quick: bool = False, seed: int = 0,
             epochs: Optional[int] = None, stream=None) -> dict:
    """Train every method in `methods` (names of METHODS), write results.json, results.md
    and figures.png into `out` (created if needed) and return the results."""
    _require_extras()
    import torch

    if isinstance(methods, str) or not isinstance(methods, (list, tuple)):
        raise TypeError(f"methods must be a list of method names, got "
                        f"{type(methods).__name__}")
    unknown = [m for m in methods if m not in METHODS]
    if not methods or unknown:
        raise ValueError(f"methods must be a non-empty list of {list(METHODS)}, got "
                         f"{unknown or methods}")
    if len(set(methods)) != len(methods):
        raise ValueError(f"methods must not repeat a method, got {methods}")
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise TypeError(f"seed must be an int, got {type(seed).__name__}")
    config = DemoConfig.quick() if quick else DemoConfig.full()
    if epochs is not None:
        if isinstance(epochs, bool) or not isinstance(epochs, int) or epochs < 1:
            raise ValueError(f"epochs must be an int >= 1, got {epochs!r}")
        config = dataclasses.replace(config, epochs=epochs)
    stream = stream if stream is not None else sys.stderr
    data = load_digits_split(seed, config.test_fraction)
    stream.write(f"spikegrad demo: {len(methods)} methods, digits {len(data[0])} train / "
                 f"{len(data[2])} test, T = {config.T}, H = {config.hidden}, "
                 f"{config.epochs} epochs, seed {seed}\n")
    from .. import __version__
    results = {
        "spikegrad_version": __version__,
        "seed": seed,
        "quick": quick,
        "config": {"T": config.T, "hidden": config.hidden, "epochs": config.epochs,
                   "batch_size": config.batch_size, "lr": config.lr,
                   "train_size": len(data[0]), "test_size": len(data[2]),
                   "layers": config.layers, "pnb_weight": config.pnb_weight},
        "methods": {},
    }
    threads = torch.get_num_threads()
    torch.set_num_threads(1)      # a light demo: torch's own ops on one thread
    try:
        for name in methods:
            results["methods"][name] = train_method(name, config, data, seed, stream)
    finally:
        torch.set_num_threads(threads)
    os.makedirs(out, exist_ok=True)
    with open(os.path.join(out, "results.json"), "w") as f:
        json.dump(results, f, indent=2)
    write_markdown(results, os.path.join(out, "results.md"))
    write_figures(results, os.path.join(out, "figures.png"))
    stream.write(f"wrote {out}/results.json, results.md, figures.png\n")
    return results


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--quick", action="store_true",
                        help=f"H = {DemoConfig.quick().hidden} neurons per layer and "
                             f"{DemoConfig.quick().epochs} epochs instead of "
                             f"{DemoConfig.full().hidden} and {DemoConfig.full().epochs} "
                             f"(about 20 s instead of 2 minutes on 2 cores)")
    parser.add_argument("--out", default="spikegrad-demo", metavar="DIR",
                        help="output folder (default spikegrad-demo)")
    parser.add_argument("--methods", nargs="+", default=list(METHODS), metavar="METHOD",
                        help=f"methods to train (default all): {', '.join(METHODS)}")
    parser.add_argument("--seed", type=int, default=0, metavar="N",
                        help="seed of the split, the initial weights and the batch order "
                             "(default 0)")
    parser.add_argument("--epochs", type=int, default=None, metavar="N",
                        help="override the number of epochs")


def main(args) -> int:
    """`spikegrad demo` (args from add_arguments)."""
    unknown = [m for m in args.methods if m not in METHODS]
    if unknown:
        print(f"spikegrad demo: --methods: unknown {', '.join(unknown)}; choose from "
              f"{', '.join(METHODS)}", file=sys.stderr)
        return 2
    if args.epochs is not None and args.epochs < 1:
        print(f"spikegrad demo: --epochs must be >= 1, got {args.epochs}", file=sys.stderr)
        return 2
    try:
        run_demo(args.methods, args.out, quick=args.quick, seed=args.seed,
                 epochs=args.epochs)
    except ImportError as error:
        print(f"spikegrad demo: {error}", file=sys.stderr)
        return 2
    return 0

