"""spikegrad's tools: the `spikegrad` command line and what it runs. The library never
imports them.

    cli                 the `spikegrad` command (also `python -m spikegrad`)
    verify              `spikegrad verify`: the single-level neuron's kernels against the
                        reference, then verify_adaptive (DS-ATGO), verify_multilevel (the CF
                        neuron, the PNB sums) and verify_layers (spikegrad.nn, in a child
                        process, with PyTorch)
    bench, bench_cuda   `spikegrad bench`: timings on the CPU and on CUDA GPUs
    demo                `spikegrad demo`: the seed methods trained side by side on digits
"""
