"""The `spikegrad` command line.

    spikegrad verify      check every compiled kernel variant (the single-level neuron, then
                          DS-ATGO's adaptive threshold) and the spikegrad.nn layers (with
                          PyTorch) against the NumPy reference
    spikegrad verify --against package.module:function --options '{"charge": "mul"}'
                          check your own neuron (spikegrad.testing.assert_neuron_matches)
    spikegrad demo [--quick] [--out DIR] [--methods ...] [--seed N]
                          train the seed methods side by side on scikit-learn's digits
                          (needs 'spikegrad[torch,demo]'); see spikegrad.tools.demo
    spikegrad bench       time the kernels against the memory-bandwidth floor, the PyTorch
                          loop and torch.compile of it (--quick, --json PATH, --plot PATH)
"""

from __future__ import annotations

import argparse
import sys

from . import verify as verify_module


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="spikegrad", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    verify = sub.add_parser("verify", help="check the compiled kernels against the reference")
    verify.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    verify.add_argument("--cases", type=int, default=2,
                        help="random cases per variant, dtype and mode (default 2)")
    verify.add_argument("--failures-only", action="store_true",
                        help="print only the variants that fail")
    verify.add_argument("--against", metavar="MODULE:FUNCTION",
                        help="check this neuron function fn(x, **options) instead of the "
                             "compiled kernels (needs torch and hypothesis)")
    verify.add_argument("--options", default="{}",
                        help="with --against: the spikegrad.neuron keywords it claims, as "
                             "JSON (default {})")
    verify.add_argument("--grad", default="",
                        help="with --against: comma-separated parameters (decay, threshold, "
                             "sg_param, v_init) to pass as tensors and check gradients of")
    verify.add_argument("--dtype", choices=("float32", "float64"), default="float64",
                        help="with --against: the dtype of x (default float64)")
    verify.add_argument("--max-examples", type=int, default=200,
                        help="with --against: hypothesis examples (default 200)")
    verify.set_defaults(func=verify_module.cmd_verify_any)
    demo = sub.add_parser("demo", help="train the seed methods side by side on digits")
    from . import demo as demo_module   # imports torch only when run
    demo_module.add_arguments(demo)
    demo.set_defaults(func=demo_module.main)
    bench = sub.add_parser("bench", help="time the kernels against the memory-bandwidth floor "
                                         "and the PyTorch loops (docs/performance.md)")
    from . import bench as bench_module
    bench_module.add_arguments(bench)
    bench.set_defaults(func=bench_module.cmd_bench)
    args = parser.parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
