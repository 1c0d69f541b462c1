#!/usr/bin/env bash
# Install portanet with its test extra into a fresh virtual environment, then run the README's
# test command (every CPU backend, numpy, jax and strict, in one pytest invocation) and the
# benchmark's quick mode.
set -euo pipefail
cd "$(dirname "$0")/.."
start=$(date +%s)
# Real Fashion-MNIST for the dataset tests and the flagship example (Debian package).
if [ ! -d /usr/share/datasets/fashion-mnist ] && command -v apt-get >/dev/null; then
    (apt-get update -qq && apt-get install -y -qq dataset-fashion-mnist >/dev/null) \
        || echo "ci: dataset-fashion-mnist not installed; tests that need it will skip"
fi
venv=${PORTANET_CI_VENV:-$(mktemp -d)/venv}
python3 -m venv "$venv"
. "$venv/bin/activate"
python -m pip install -q --upgrade pip
python -m pip install -q -e ".[test]"
# PyTorch: the torch backend and an oracle; 2.13.0 is the CPU build this machine keeps on disk (a plain
# `torch` would fetch a multi-GB CUDA build). Tests that need it skip where it is missing.
python -m pip install -q "torch==2.13.0" || echo "ci: torch not installed; torch oracle tests will skip"
python -m portanet info
set +e
python -m pytest -q -p no:cacheprovider
code=$?
# The benchmark's regression guard: prints its table (peers that are installed), never fails on time.
python ci/bench.py --quick
bench=$?
set -e
echo "ci: wall time $(( $(date +%s) - start )) s"
if [ "$code" -eq 5 ]; then
    echo "ci: pytest collected no tests" >&2
    exit 1
fi
if [ "$code" -eq 0 ] && [ "$bench" -ne 0 ]; then
    echo "ci: ci/bench.py --quick crashed" >&2
    exit "$bench"
fi
exit "$code"
