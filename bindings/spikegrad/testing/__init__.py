"""Tools to test neurons against the spikegrad reference.

    spikegrad.testing.strategies   hypothesis strategies: option combinations, shapes,
                                   inputs (with values exactly at the threshold)
    spikegrad.testing.compare      the one comparison helper and its stated tolerances

`compare` needs NumPy only; `strategies` needs hypothesis (pip install 'spikegrad[test]').
"""

__all__ = ["compare", "strategies"]


def __getattr__(name):
    if name in __all__:
        from importlib import import_module

        return import_module(f".{name}", __name__)
    raise AttributeError(f"module 'spikegrad.testing' has no attribute {name!r}")
