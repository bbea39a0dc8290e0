#!/usr/bin/env bash
# tools/gpu_check.sh WHEELDIR OUTDIR — the one command a GPU machine runs (docs/cuda.md), with no
# network and no compiler: install the wheels that tools/gpu_wheel.sh built (spikegrad with its
# CUDA module, SpikingJelly, loguru) into a fresh folder, check that spikegrad._cuda loads and
# sees the GPU, run the GPU tests, then `spikegrad bench --device cuda` and a profile.
# Needs: python3 with a CUDA build of torch, pytest, hypothesis (pytest-xdist used when present).
# Writes at most 8 files to OUTDIR:
#   environment.txt  pytest.log  junit.xml  bench.txt  bench.json  profile.txt  summary.txt
#   kernel_designs.txt (when a build of tools/cuda_kernel_designs.cu is at KERNEL_DESIGNS)
# Every step has its own timeout (the sum stays under 6 minutes) and later steps run when one
# fails; the exit status is non-zero if any step failed. The last lines printed are the summary
# and the bench table.
set -uo pipefail
shopt -s nullglob

# ---- what runs: edit here ------------------------------------------------------------------
# GPU test files (globs; missing ones are left out) and an optional -k expression
GPU_TESTS=("tests/cuda/test_*.py" "tests/nn/test_nn_ddp.py")
GPU_TESTS_K=""
XDIST_WORKERS=8
# skip reasons that are expected on a GPU machine (regex); any other skip of a GPU test fails.
# A GPU test is one in tests/cuda (a test_cuda*.py file) or one with "cuda" in its name.
ALLOWED_SKIPS="no-GPU message"
BENCH_ARGS=(--T 8 --N 16777216 1048576 65536)   # the goal size first: a timeout loses the smallest
PROFILE_ARGS=(--T 8 --N 65536 16777216)
# the stand-alone timing of the kernels' designs (tools/cuda_kernel_designs.cu, built on a CPU
# machine with nvcc and carried along; the step is left out when the file is missing)
KERNEL_DESIGNS=${KERNEL_DESIGNS:-.gpu/bin/kernel_designs}
# timeouts in seconds (sum 370, plus at most 5 s grace per step)
T_INSTALL=15 T_ENV=15 T_IMPORT=30 T_DESIGNS=20 T_PYTEST=120 T_JUNIT=5 T_BENCH=140 T_PROFILE=25
# ---------------------------------------------------------------------------------------------

self=$(cd "$(dirname "$0")" && pwd)/$(basename "$0")
if [[ ${1:-} != --step ]]; then   # the main run (below, after the steps' functions)
  wheeldir=${1:?usage: tools/gpu_check.sh WHEELDIR OUTDIR}
  outdir=${2:?usage: tools/gpu_check.sh WHEELDIR OUTDIR}
  mkdir -p "$outdir"
  export SG_OUTDIR=$(cd "$outdir" && pwd)
  SG_WHEELDIR=$(cd "$wheeldir" 2>/dev/null && pwd) || { echo "gpu_check: no folder $wheeldir" >&2; exit 2; }
  export SG_WHEELDIR
  export SG_REPO=$(cd "$(dirname "$0")/.." && pwd)
  export SG_PYTHON=${PYTHON:-python3}
  export SG_WORK=$(mktemp -d "${TMPDIR:-/tmp}/spikegrad-gpu.XXXXXX")
fi
outdir=$SG_OUTDIR wheeldir=$SG_WHEELDIR repo=$SG_REPO python=$SG_PYTHON work=$SG_WORK
site=$work/site
export PYTHONPATH=$site PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1
summary=$outdir/summary.txt

step() {  # step NAME TIMEOUT [SIGNAL]: run this script's function FUNC under `timeout`
  local name=$1 limit=$2 func=$3 signal=${4:-TERM}
  local start=$SECONDS rc note=""
  timeout -s "$signal" -k 5 "$limit" bash "$self" --step "$func"
  rc=$?
  if ((rc == 124 || rc == 137)); then note=", timed out after $limit s"; fi
  if ((rc == 0)); then
    printf '[ok]   %-52s %4d s\n' "$name" $((SECONDS - start)) >>"$summary"
  else
    printf '[FAIL] %-52s %4d s (exit %d%s)\n' "$name" $((SECONDS - start)) "$rc" "$note" >>"$summary"
    status=1
  fi
  echo "== $(tail -n 1 "$summary")"
}

install_wheels() {
  local wheels=("$wheeldir"/*.whl)
  if ((${#wheels[@]} == 0)); then echo "no wheels in $wheeldir"; return 1; fi
  printf '%s\n' "${wheels[@]##*/}"
  [[ -f $wheeldir/BUILD_INFO.txt ]] && cat "$wheeldir/BUILD_INFO.txt"
  if "$python" -m pip --version >/dev/null 2>&1; then
    "$python" -m pip install -q --no-index --no-deps --no-compile --target "$site" "${wheels[@]}" || return 1
  else   # no pip: a wheel is a zip of the files to install (these have no scripts to wrap)
    echo "no pip for $python: unpacking the wheels"
    local wheel
    for wheel in "${wheels[@]}"; do "$python" -m zipfile -e "$wheel" "$site" || return 1; done
  fi
  # the wheel's Python files against the checkout's: a wheel built before the last edit
  local stale
  stale=$(cd "$repo/bindings/spikegrad" && find . -name '*.py' | while read -r f; do
            cmp -s "$f" "$site/spikegrad/$f" || echo "${f#./}"; done | tr '\n' ' ')
  if [[ -n $stale ]]; then
    echo "the wheel's Python files differ from the checkout's (rebuild it?): $stale" | tee "$work/stale"
  fi
  # spikegrad._core needs libgomp.so.1; where the system has none, use the one torch ships
  local core
  core=$(ls "$site"/spikegrad/_core.*.so 2>/dev/null | head -n 1)
  if [[ -n $core ]] && ldd "$core" 2>/dev/null | grep -q 'libgomp.so.1 => not found'; then
    local gomp
    gomp=$("$python" -c 'import glob, os, torch; print((glob.glob(os.path.join(os.path.dirname(torch.__file__), "lib", "libgomp*.so*")) or [""])[0])')
    if [[ -n $gomp ]]; then
      mkdir -p "$work/lib" && ln -sf "$gomp" "$work/lib/libgomp.so.1"
      echo "libgomp.so.1 not on the system: using torch's $gomp" | tee "$work/gomp-note"
    fi
  fi
}

environment() {
  {
    echo "date: $(date -u '+%Y-%m-%d %H:%M:%S UTC')   host cores: $(nproc)   $(ldd --version 2>&1 | head -n 1)"
    echo "wheels: $(cd "$wheeldir" && ls *.whl 2>/dev/null | tr '\n' ' ')"
    [[ -f $work/gomp-note ]] && cat "$work/gomp-note"
    echo "C compiler (Triton builds its launcher with it: torch.compile, SpikingJelly's triton):" \
         "$(command -v cc || command -v gcc || echo none)"
    nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm,clocks.max.mem,power.limit --format=csv 2>&1
    nvidia-smi 2>&1 | head -n 20
    "$python" -c "
import platform, sys, torch
print('python', sys.version.split()[0], platform.platform())
print('torch', torch.__version__, 'cuda', torch.version.cuda, 'available', torch.cuda.is_available(),
      'devices', torch.cuda.device_count())
from importlib.metadata import version
for name, dist in (('triton', 'triton'), ('cupy', 'cupy-cuda13x'), ('numpy', 'numpy'),
                   ('pytest', 'pytest'), ('xdist', 'pytest-xdist'), ('hypothesis', 'hypothesis'),
                   ('spikingjelly', 'spikingjelly'), ('loguru', 'loguru')):
    try:
        module = __import__(name)
        try:
            print(name, getattr(module, '__version__', None) or version(dist))
        except Exception:
            print(name, 'imported')
    except Exception as error:
        print(name, 'not importable:', type(error).__name__, error)"
  } >"$outdir/environment.txt" 2>&1
  tail -n 12 "$outdir/environment.txt"
}

import_check() {
  (cd "$work" && "$python" -c "
import os, sys, torch, spikegrad
site, repo = sys.argv[1], sys.argv[2]
where = os.path.realpath(spikegrad.__file__)
print('spikegrad from', where)
assert where.startswith(os.path.realpath(site) + os.sep), 'spikegrad is not the installed wheel'
assert not where.startswith(os.path.realpath(repo) + os.sep), 'spikegrad comes from the checkout'
import spikegrad._cuda
print('spikegrad._cuda', spikegrad._cuda.__file__)
assert torch.cuda.is_available(), 'no GPU: torch.cuda.is_available() is False'
print('GPU:', torch.cuda.get_device_name(), 'capability', torch.cuda.get_device_capability())
x = torch.randn(8, 1000, device='cuda', requires_grad=True)
out = spikegrad.neuron(x, surrogate='rect').output
out.sum().backward()
torch.cuda.synchronize()
print('a CUDA forward+backward ran: spikes', int(out.sum()), 'grad norm', float(x.grad.norm()))
" "$site" "$repo") 2>&1 | tee "$work/import.log"
  return "${PIPESTATUS[0]}"
}

run_pytest() {
  # a copy of the tests outside the checkout, so that the installed spikegrad is imported
  cp -r "$repo/tests" "$work/tests"
  local files=() f pattern
  cd "$work" || return 1
  for pattern in "${GPU_TESTS[@]}"; do
    for f in $pattern; do   # unquoted: the glob expands here, in the copy
      [[ -f $f ]] && [[ " ${files[*]} " != *" $f "* ]] && files+=("$f")
    done
  done
  ((${#files[@]})) || { echo "no GPU test files"; return 1; }
  local extra=()
  if "$python" -c "import xdist" 2>/dev/null; then extra+=(-n "$XDIST_WORKERS"); fi
  [[ -n $GPU_TESTS_K ]] && extra+=(-k "$GPU_TESTS_K")
  local where
  where=$("$python" -c "import os, spikegrad; print(os.path.realpath(spikegrad.__file__))") || return 1
  echo "spikegrad for the tests: $where"
  [[ $where == "$(realpath "$site")"/* ]] || { echo "not the installed wheel"; return 1; }
  echo "pytest ${files[*]} ${extra[*]}"
  (OMP_NUM_THREADS=2 "$python" -m pytest -q -ra -p no:cacheprovider \
     --rootdir "$work" --junitxml="$outdir/junit.xml" "${extra[@]}" "${files[@]}") \
     >"$outdir/pytest.log" 2>&1
  local rc=$?
  tail -n 25 "$outdir/pytest.log"
  return $rc
}

junit_check() {
  "$python" - "$outdir/junit.xml" "$ALLOWED_SKIPS" <<'EOF'
import re, sys, xml.etree.ElementTree as ET
path, allowed = sys.argv[1], sys.argv[2]
try:
    cases = list(ET.parse(path).iter("testcase"))
except (OSError, ET.ParseError) as error:
    sys.exit(f"no JUnit report: {error}")
def is_gpu(case):
    module = case.get("classname", "").split(".")
    return (any(part == "cuda" or part.startswith("test_cuda") for part in module)
            or "cuda" in case.get("name", ""))
gpu = [c for c in cases if is_gpu(c)]
bad, fine = [], 0
for case in gpu:
    skip = case.find("skipped")
    if skip is None:
        continue
    reason = skip.get("message") or skip.text or ""
    if allowed and re.search(allowed, reason):
        fine += 1
    else:
        bad.append(f"{case.get('classname')}::{case.get('name')}: {reason.strip()[:120]}")
failed = sum(c.find("failure") is not None or c.find("error") is not None for c in gpu)
print(f"{len(cases)} tests in the report, {len(gpu)} GPU tests: {failed} failed, "
      f"{len(bad)} skipped unexpectedly, {fine} skipped as expected")
for line in bad[:8]:
    print("  skipped:", line)
sys.exit(0 if gpu and not bad else 1)
EOF
}

bench() {
  (cd "$work" && "$python" -c "import sys; from spikegrad.tools.cli import main; sys.exit(main(sys.argv[1:]))" \
     bench --device cuda "${BENCH_ARGS[@]}" --no-progress --json "$outdir/bench.json") \
     >"$outdir/bench.txt" 2>&1
}

kernel_designs() {
  "$repo/$KERNEL_DESIGNS" >"$outdir/kernel_designs.txt" 2>&1
  local rc=$?
  cat "$outdir/kernel_designs.txt"
  return $rc
}

profile() {
  (cd "$work" && "$python" -c "import sys; from spikegrad.tools.cli import main; sys.exit(main(sys.argv[1:]))" \
     bench --device cuda --profile "${PROFILE_ARGS[@]}") >"$outdir/profile.txt" 2>&1
  local rc=$?
  head -c 6000 "$outdir/profile.txt"
  return $rc
}

if [[ ${1:-} == --step ]]; then   # one step, run by step() under `timeout`
  # a trap (not an ignore, which children would inherit): on timeout's signal, this shell waits
  # for the step's python (which got the signal too: e.g. the bench prints what it measured)
  trap 'echo "gpu_check: $2 stopped by a signal" >&2' TERM INT
  cd "$repo" && "$2"
  exit $?
fi

: >"$summary"
status=0
begin=$SECONDS
step "install the wheels (no index, no deps)" "$T_INSTALL" install_wheels
[[ -f $work/stale ]] && echo "[note] $(cat "$work/stale")" >>"$summary"
[[ -d $work/lib ]] && export LD_LIBRARY_PATH=$work/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
step "environment" "$T_ENV" environment
step "spikegrad._cuda loads, the GPU is visible, one call" "$T_IMPORT" import_check
if [[ -x $repo/$KERNEL_DESIGNS ]]; then
  step "kernel designs ($KERNEL_DESIGNS)" "$T_DESIGNS" kernel_designs
fi
step "pytest (GPU tests)" "$T_PYTEST" run_pytest INT   # SIGINT: pytest still writes junit.xml
step "GPU tests ran, not skipped (junit.xml)" "$T_JUNIT" junit_check
step "spikegrad bench --device cuda" "$T_BENCH" bench
step "profile (torch.profiler)" "$T_PROFILE" profile

echo "total: $((SECONDS - begin)) s; files in $outdir" >>"$summary"
rm -rf "$work"
echo
echo "================================ summary ================================"
cat "$summary"
echo "================================ bench ================================="
grep -v '^$' "$outdir/bench.txt" 2>/dev/null | tail -n 100
if [[ -f $outdir/kernel_designs.txt ]]; then
  echo "============================ kernel designs ============================"
  cat "$outdir/kernel_designs.txt"
fi
exit $status
