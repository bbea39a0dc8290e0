#!/usr/bin/env bash
# tools/gpu_wheel.sh OUTDIR — build, on a CPU machine with nvcc, the wheels that a GPU machine
# without network or compiler installs and checks with `tools/gpu_check.sh OUTDIR LOGDIR`:
#   spikegrad-*-cp312-cp312-linux_x86_64.whl  CPython 3.12, with spikegrad._cuda for sm_90 only,
#                                             portable CPU code (no -march=native); <= 64 MiB
#   spikingjelly-2.0.0-py3-none-any.whl       pure Python: the bench's SpikingJelly rows
#   loguru-0.7.3-py3-none-any.whl             pure Python: SpikingJelly's logger
# Environment (all optional):
#   SPIKEGRAD_CUDA_ARCHITECTURES  CMAKE_CUDA_ARCHITECTURES, default 90 (H100/H200); e.g. "80;90"
#   SPIKEGRAD_WHEEL_PYTHON        the CPython 3.12 interpreter to build for (default: python3.12
#                                 on PATH, else pyenv's newest 3.12)
#   CMAKE_BUILD_PARALLEL_LEVEL    parallel compile jobs (default: the number of cores)
# The build runs in a build venv (.gpu/build-venv-cp312: scikit-build-core, pybind11, cmake,
# ninja from PyPI, made once) without build isolation, in build/gpu-wheel, so a rebuild after a
# change recompiles only what changed. Needs nvcc on PATH and PyPI the first time.
set -euo pipefail
outdir=${1:?usage: tools/gpu_wheel.sh OUTDIR}
cd "$(dirname "$0")/.."
root=$(pwd)
mkdir -p "$outdir"
outdir=$(cd "$outdir" && pwd)
archs=${SPIKEGRAD_CUDA_ARCHITECTURES:-90}
max_mib=64
start=$SECONDS

python=${SPIKEGRAD_WHEEL_PYTHON:-}
if [[ -z $python ]]; then
  if command -v python3.12 >/dev/null 2>&1 && python3.12 -c 'import sys' 2>/dev/null; then
    python=$(command -v python3.12)
  elif command -v pyenv >/dev/null 2>&1; then
    version=$(pyenv versions --bare | grep -E '^3\.12(\.[0-9]+)?$' | sort -V | tail -n 1 || true)
    [[ -n $version ]] && python="$(pyenv root)/versions/$version/bin/python3.12"
  fi
fi
if [[ -z $python ]] || ! "$python" -c 'import sys; assert sys.version_info[:2] == (3, 12)'; then
  echo "gpu_wheel: no CPython 3.12 found (set SPIKEGRAD_WHEEL_PYTHON)" >&2
  exit 2
fi
command -v nvcc >/dev/null || { echo "gpu_wheel: nvcc is not on PATH" >&2; exit 2; }

venv=$root/.gpu/build-venv-cp312
if ! "$venv/bin/python" -c 'import scikit_build_core, pybind11, cmake, ninja' 2>/dev/null; then
  echo "== build venv $venv ($("$python" --version))"
  "$python" -m venv "$venv"
  "$venv/bin/python" -m pip install -q --upgrade pip
  "$venv/bin/python" -m pip install -q "scikit-build-core>=0.10" "pybind11>=2.12" \
    "cmake>=3.18" ninja
fi
export PATH="$venv/bin:$PATH"   # its cmake and ninja

echo "== spikegrad wheel: CPython 3.12, CUDA architectures '$archs', SPIKEGRAD_NATIVE=OFF"
rm -f "$outdir"/spikegrad-*.whl
export CMAKE_BUILD_PARALLEL_LEVEL=${CMAKE_BUILD_PARALLEL_LEVEL:-$(nproc)}
"$venv/bin/python" -m pip wheel --no-build-isolation --no-deps -w "$outdir" . \
  -C build-dir=build/gpu-wheel \
  -C cmake.define.SPIKEGRAD_NATIVE=OFF \
  -C cmake.define.SPIKEGRAD_CUDA=ON \
  -C "cmake.define.CMAKE_CUDA_ARCHITECTURES=$archs"

wheels=("$outdir"/spikegrad-*.whl)
[[ ${#wheels[@]} -eq 1 && -f ${wheels[0]} ]] || { echo "gpu_wheel: expected one spikegrad wheel in $outdir" >&2; exit 1; }
wheel=${wheels[0]}
case $(basename "$wheel") in
  *-cp312-cp312-linux_x86_64.whl | *-cp312-cp312-manylinux*_x86_64.whl) ;;
  *) echo "gpu_wheel: unexpected wheel tag: $(basename "$wheel")" >&2; exit 1 ;;
esac

# the wheel installs the way gpu_check.sh installs it (no index, no deps, --target), and holds
# both modules
check=$(mktemp -d)
trap 'rm -rf "$check"' EXIT
"$venv/bin/python" -m pip install -q --no-index --no-deps --no-compile --target "$check/site" "$wheel"
for module in _core _cuda; do
  ls "$check/site/spikegrad/$module".cpython-312-*.so >/dev/null 2>&1 \
    || { echo "gpu_wheel: spikegrad/$module is not in the wheel" >&2; exit 1; }
done
echo "== device code (nvcc -gencode flags of the build): $(grep -ohE 'arch=compute_[0-9a-z]+,code=\[?[a-z_0-9,]+\]?' \
  build/gpu-wheel/build.ninja 2>/dev/null | sort -u | tr '\n' ' ')"
echo "== newest glibc / libstdc++ symbol versions the modules need (the GPU machine must have them):"
objdump -T "$check"/site/spikegrad/*.so 2>/dev/null | grep -oE '(GLIBC|GLIBCXX|CXXABI)_[0-9.]+' \
  | sort -t_ -k1,1 -k2,2V | awk -F_ '{v[$1]=$0} END {for (k in v) print "  " v[k]}' || true

# SpikingJelly imports loguru (its logger) and nothing else outside torch, triton and numpy for
# the LIF node; its other dependencies (matplotlib, scipy, ...) are not needed by the bench
echo "== SpikingJelly 2.0.0 and loguru (pure Python)"
rm -f "$outdir"/spikingjelly-*.whl "$outdir"/loguru-*.whl
"$venv/bin/python" -m pip download -q --no-deps --only-binary=:all: -d "$outdir" \
  spikingjelly==2.0.0 loguru==0.7.3

{   # what was built, for tools/gpu_check.sh's log (read-only git queries)
  echo "built $(date -u '+%Y-%m-%d %H:%M UTC') from $(git rev-parse --short HEAD 2>/dev/null || echo '?')" \
       "with $(git status --porcelain 2>/dev/null | wc -l) changed files;" \
       "CUDA architectures $archs; $(nvcc --version | tail -n 1)"
} >"$outdir/BUILD_INFO.txt"

bytes=$(stat -c %s "$wheel")
echo "== $(basename "$wheel"): $((bytes / 1024)) KiB ($(awk -v b="$bytes" 'BEGIN {printf "%.1f", b / 1048576}') MiB)"
ls -l "$outdir"
echo "== built in $((SECONDS - start)) s"
if ((bytes > max_mib * 1024 * 1024)); then
  echo "gpu_wheel: the wheel is over $max_mib MiB" >&2
  exit 1
fi
