#!/usr/bin/env bash
# tools/gpu_check.sh LOGDIR — the one command a GPU machine runs (docs/cuda.md): build and install
# spikegrad with its CUDA module, check that the module loads and sees the GPU, run the whole test
# suite (tests/test_cuda.py runs instead of skipping), then `spikegrad bench --device cuda` for the
# issue's case (float32, T = 8, N = 2^20 and 2^24). Everything is logged under LOGDIR:
#   environment.txt  build.log  pytest.log  junit.xml  bench.txt  bench.json  summary.txt
# Needs: nvcc, a CUDA build of torch, pybind11, scikit-build-core, pytest, hypothesis (no network);
# pytest-xdist is used when present. `python` must be the interpreter that has torch.
# Exits non-zero if any step fails; later steps still run so that one run reports everything.
set -uo pipefail
cd "$(dirname "$0")/.."
logdir=${1:?usage: tools/gpu_check.sh LOGDIR}
mkdir -p "$logdir"
logdir=$(cd "$logdir" && pwd)
status=0
summary="$logdir/summary.txt"
: >"$summary"
step() {  # step NAME COMMAND...: run, log, record pass/fail
  local name=$1
  shift
  local start=$SECONDS
  if "$@"; then
    echo "[ok]   $name ($((SECONDS - start)) s)" | tee -a "$summary"
  else
    echo "[FAIL] $name ($((SECONDS - start)) s)" | tee -a "$summary"
    status=1
  fi
}

{
  nvidia-smi || true
  nvcc --version || true
  python -c "import torch; print('torch', torch.__version__, 'cuda', torch.version.cuda, torch.cuda.is_available())"
} >"$logdir/environment.txt" 2>&1

# the GPU's own architecture is added to sm_80 and sm_90 (e.g. 90 on an H100/H200: no change)
step "build and install (with the CUDA module)" bash -c \
  "python -m pip install --no-build-isolation --no-deps -v . -C cmake.define.SPIKEGRAD_CUDA=ON >'$logdir/build.log' 2>&1"
step "spikegrad._cuda loads and a GPU is visible" python -c "
import torch, spikegrad, spikegrad._cuda
assert torch.cuda.is_available(), 'torch sees no GPU'
print(torch.cuda.get_device_name())"
# from a directory outside the checkout, so that the installed package is the one imported.
# With pytest-xdist there (the GPU image has it), 8 workers of 2 OpenMP threads each: the suite
# run one test at a time took over 6 minutes on a 16-core H100 machine.
parallel=""
if python -c "import xdist" 2>/dev/null; then parallel="-n 8"; fi
step "pytest (whole suite, CUDA tests included)" bash -c \
  "cd tests && OMP_NUM_THREADS=2 python -m pytest -q -ra -p no:cacheprovider $parallel --junitxml='$logdir/junit.xml' . >'$logdir/pytest.log' 2>&1; rc=\$?; tail -n 30 '$logdir/pytest.log'; exit \$rc"
# from the JUnit report: test_cuda.py's tests were collected, and none of them was skipped
step "CUDA tests ran (not skipped)" python -c "
import sys, xml.etree.ElementTree as ET
cases = [c for c in ET.parse(sys.argv[1]).iter('testcase')
         if 'test_cuda' in c.get('classname', '').split('.')]
skipped = [c for c in cases if c.find('skipped') is not None]
print(len(cases), 'CUDA tests,', len(skipped), 'skipped')
sys.exit(0 if cases and not skipped else 1)" "$logdir/junit.xml"
step "spikegrad bench --device cuda (T = 8, N = 2^20, 2^24)" bash -c \
  "spikegrad bench --device cuda --T 8 --N 1048576 16777216 --no-progress --json '$logdir/bench.json' >'$logdir/bench.txt' 2>&1; rc=\$?; cat '$logdir/bench.txt'; exit \$rc"
echo "logs: $logdir" | tee -a "$summary"
exit $status
