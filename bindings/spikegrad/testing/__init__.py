"""Tools to test neurons against the spikegrad reference.

    spikegrad.testing.strategies   hypothesis strategies: option combinations, shapes,
                                   inputs (with values exactly at the threshold)
    spikegrad.testing.compare      the one comparison helper and its stated tolerances
    spikegrad.testing.assert_neuron_matches(fn, **options)
                                   check your own neuron (forward exactly, gradients
                                   within the bound) and name the path of a difference

`compare` needs NumPy only; `strategies` needs hypothesis (pip install 'spikegrad[test]');
`assert_neuron_matches` needs hypothesis and PyTorch.
"""

__all__ = ["compare", "strategies", "checker", "assert_neuron_matches"]


def __getattr__(name):
    if name == "assert_neuron_matches":
        from .checker import assert_neuron_matches

        return assert_neuron_matches
    if name in __all__:
        from importlib import import_module

        return import_module(f".{name}", __name__)
    raise AttributeError(f"module 'spikegrad.testing' has no attribute {name!r}")
