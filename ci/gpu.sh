#!/usr/bin/env bash
# The whole GPU check in one command (GPU time is scarce: it is sized to run in a few minutes).
#
#   bash ci/gpu.sh --prepare                 # here, with network: fill .gpu/ (wheels, Fashion-MNIST)
#   bash ci/gpu.sh RESULTS [STAGE...]        # on the GPU machine, .gpu/ carried beside the checkout
#   bash ci/gpu.sh --dry-run RESULTS         # on a CPU: every stage, its GPU parts swapped for CPU ones
#
# Stages, in order (default: all): setup, versions, lenet, tests, profile, bench.
#   setup     install the wheels the GPU machine lacks (.gpu/wheels, or $PORTANET_GPU_WHEELS; it may
#             reach no package registry) into a folder on PYTHONPATH, and this project with
#             `pip install --no-deps --no-build-isolation -e .`
#   versions  GPU, driver, CUDA, CuPy, JAX, PyTorch and NumPy versions, and `python -m portanet info`
#   lenet     examples/lenet.py for 2 epochs ($PORTANET_GPU_LENET_EPOCHS) on cupy, jax and torch (full
#             Fashion-MNIST from .gpu/data), all in RESULTS/lenet.log
#   tests     the GPU selection ($PORTANET_GPU_TESTS, default -k "cupy or jax or torch or gpu": the tests
#             parametrized over backends, on cupy, jax and torch (CUDA), and the GPU-only ones), TF32 off
#   profile   ci/gpu_profile.py: ms per CuPy step, eager and as a CUDA graph, fast paths on and off
#   bench     ci/bench.py --device gpu --json RESULTS/bench.json
# Each stage writes RESULTS/<stage>.log; RESULTS/summary.txt lists each stage's exit code and
# seconds (8 files in all: the most a device run brings back). The exit code is the first failing
# stage's.
# --dry-run swaps the GPU parts for CPU ones: versions say no GPU was found, the test selection
# runs `-k gpu` (every GPU test must skip cleanly), lenet runs --quick on numpy and jax, and the
# benchmark runs --quick --device cpu; the profile is only compiled.
set -uo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
gpu_dir=${PORTANET_GPU_DIR:-$root/.gpu}
wheels=${PORTANET_GPU_WHEELS:-$gpu_dir/wheels}
# the wheels the GPU machine's image lacks (KINDS.md of the device tool lists what it has)
WHEELS=("array-api-compat==1.16.0" "array-api-strict==2.6.1")

if [ "${1:-}" = "--prepare" ]; then
    set -e
    mkdir -p "$wheels" "$gpu_dir/data/fashion-mnist"
    python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 -d "$wheels" "${WHEELS[@]}"
    # Fashion-MNIST from Debian's dataset-fashion-mnist (apt-get install -y dataset-fashion-mnist)
    cp -n /usr/share/datasets/fashion-mnist/*-ubyte.gz "$gpu_dir/data/fashion-mnist/"
    ls -l "$wheels" "$gpu_dir/data/fashion-mnist"
    exit 0
fi

dry=0
if [ "${1:-}" = "--dry-run" ]; then dry=1; shift; fi
if [ $# -lt 1 ]; then
    echo "usage: bash ci/gpu.sh [--dry-run] RESULTS [setup|versions|lenet|tests|profile|bench ...] | --prepare" >&2
    exit 2
fi
results=$(mkdir -p "$1" && cd "$1" && pwd)
shift
stages=("$@")
[ ${#stages[@]} -eq 0 ] && stages=(setup versions lenet tests profile bench)
: >"$results/summary.txt"

export PYTHONUNBUFFERED=1
export XLA_PYTHON_CLIENT_PREALLOCATE=false   # JAX, CuPy and the test workers share the GPU
[ -d "$gpu_dir/data" ] && export PORTANET_DATA=$gpu_dir/data
site=${PORTANET_GPU_SITE:-/tmp/portanet-gpu-site}   # where setup installs the carried wheels
export PYTHONPATH=$site${PYTHONPATH:+:$PYTHONPATH}
python=${PYTHON:-python3}
status=0

stage_setup() {
    if [ -d "$wheels" ] && compgen -G "$wheels/*.whl" >/dev/null; then
        "$python" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
            --target "$site" "$wheels"/*.whl || return
    else
        echo "no wheels in $wheels (bash ci/gpu.sh --prepare fills it); using what is installed"
    fi
    if [ "$dry" -eq 1 ] && "$python" -c "import portanet" 2>/dev/null; then
        echo "dry run: portanet is importable; not reinstalling it"
    else
        "$python" -m pip install -q --no-deps --no-build-isolation -e . || return
    fi
    "$python" -c "import array_api_compat, portanet; print('portanet', portanet.__version__, 'from', portanet.__file__)"
}

stage_versions() {
    command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv
    "$python" - <<'EOF'
import importlib.metadata as m
import platform
for name in ("numpy", "array-api-compat", "array-api-strict", "jax", "jaxlib", "torch", "cupy-cuda13x", "cupy-cuda12x"):
    try:
        print(f"{name} {m.version(name)}")
    except m.PackageNotFoundError:
        pass
print("python", platform.python_version())
try:
    import cupy
    print("CuPy", cupy.__version__, "CUDA runtime", cupy.cuda.runtime.runtimeGetVersion(),
          "driver", cupy.cuda.runtime.driverGetVersion(),
          "GPU", cupy.cuda.runtime.getDeviceProperties(0)["name"].decode())
except Exception as error:
    print("CuPy: no GPU:", type(error).__name__, error)
try:
    import jax
    print("JAX", jax.__version__, "devices", jax.devices())
except Exception as error:
    print("JAX:", type(error).__name__, error)
try:
    import torch
    print("PyTorch", torch.__version__, "CUDA", torch.version.cuda,
          "GPU", torch.cuda.get_device_name() if torch.cuda.is_available() else "none")
except Exception as error:
    print("PyTorch:", type(error).__name__, error)
EOF
    "$python" -m portanet info
}

stage_lenet() {
    local backends=(cupy jax torch) extra=(--epochs "${PORTANET_GPU_LENET_EPOCHS:-2}") code=0
    [ "$dry" -eq 1 ] && backends=(numpy jax torch) && extra=(--quick)
    for b in "${backends[@]}"; do
        echo "== PORTANET_BACKEND=$b python examples/lenet.py ${extra[*]}"
        PORTANET_BACKEND=$b "$python" examples/lenet.py "${extra[@]}" --out "/tmp/portanet-gpu-lenet-$b" || code=$?
    done
    return "$code"
}

stage_tests() {
    local select=${PORTANET_GPU_TESTS:-"cupy or jax or torch or gpu"} parallel=()
    [ "$dry" -eq 1 ] && select="gpu"
    if "$python" -c "import xdist" 2>/dev/null; then
        parallel=(-n "${PORTANET_GPU_TEST_WORKERS:-8}" --dist loadgroup)
    else
        parallel=(-o addopts=)   # pyproject's addopts name pytest-xdist's -n
    fi
    if "$python" -c "import pytest_timeout" 2>/dev/null; then
        parallel+=(--timeout 300)   # a hung test fails alone instead of eating the GPU lease
    fi
    # TF32 off for the parity tests: cuBLAS/cuDNN (CuPy, PyTorch) and XLA's float32 matmuls
    NVIDIA_TF32_OVERRIDE=0 JAX_DEFAULT_MATMUL_PRECISION=float32 \
        "$python" -m pytest -q -p no:cacheprovider -p no:benchmark -rfE "${parallel[@]}" -k "$select" --durations=15 tests
}

stage_profile() {
    if [ "$dry" -eq 1 ]; then
        "$python" -m py_compile ci/gpu_profile.py && echo "dry run: ci/gpu_profile.py compiles (it needs CuPy on a GPU)"
    else
        "$python" ci/gpu_profile.py
    fi
}

stage_bench() {
    if [ "$dry" -eq 1 ]; then
        "$python" ci/bench.py --quick --device cpu --models lenet,mlp-wide --backends numpy,jax --peers torch \
            --json "$results/bench.json"
    else
        # PORTANET_GPU_BENCH_ARGS: more options, e.g. "--models lenet --limit 4096 --repeats 1" for a rehearsal
        # shellcheck disable=SC2086
        "$python" ci/bench.py --device gpu --json "$results/bench.json" ${PORTANET_GPU_BENCH_ARGS:-}
    fi
}

for stage in "${stages[@]}"; do
    case "$stage" in setup|versions|lenet|tests|profile|bench) ;;
        *) echo "unknown stage $stage" >&2; exit 2 ;;
    esac
    echo "===== $stage ($(date -u +%H:%M:%S))"
    started=$(date +%s)
    "stage_$stage" 2>&1 | tee "$results/$stage.log"
    code=${PIPESTATUS[0]}
    echo "$stage: exit $code, $(( $(date +%s) - started )) s" | tee -a "$results/summary.txt"
    [ "$status" -eq 0 ] && status=$code
done
exit "$status"
