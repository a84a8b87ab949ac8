#!/usr/bin/env bash
# Times normflow against nflows, zuko and FlowJAX on the cells of
# docs/benchmarks.md (and, with --fit, the end-to-end fit of two moons).
# Creates a virtual environment with torch, nflows, zuko, jax and flowjax
# (outside the repository unless VENV says otherwise), builds the normflow
# binary, then runs benches/compare_peers.py. Extra arguments go to the
# Python script (--rounds, --repeat, --threads, --fit, --fit-seeds,
# --json FILE, --isa).
#
#   bash benches/compare_peers.sh --rounds 3 --fit
#
# `--isa avx2` measures what a CPU without AVX-512 runs, on one that has
# it: PyTorch, MKL, oneDNN and XLA are capped at AVX2 through their
# environment variables, and normflow is built without its AVX-512 kernels
# (`--no-default-features`, into its own target directory).
#
# torch comes from its CPU-only index when that is reachable, else from PyPI.
set -euo pipefail
here="$(cd "$(dirname "$0")/.." && pwd)"
venv="${VENV:-$here/../venv-peers}"
if [ ! -x "$venv/bin/python" ]; then
    python3 -m venv "$venv"
fi
if ! "$venv/bin/python" -c "import torch" 2>/dev/null; then
    "$venv/bin/pip" install torch --index-url https://download.pytorch.org/whl/cpu \
        || "$venv/bin/pip" install torch
fi
if ! "$venv/bin/python" -c "import nflows, zuko, jax, flowjax, optax, paramax" 2>/dev/null; then
    "$venv/bin/pip" install nflows zuko jax flowjax optax numpy
fi
isa=native
prev=
for arg in "$@"; do
    if [ "$prev" = "--isa" ]; then isa="$arg"; fi
    case "$arg" in --isa=*) isa="${arg#--isa=}" ;; esac
    prev="$arg"
done
target="${CARGO_TARGET_DIR:-$here/target}"
case "$isa" in
    native)
        (cd "$here" && cargo build --release -p normflow-cli) ;;
    avx2)
        export ATEN_CPU_CAPABILITY=avx2 MKL_ENABLE_INSTRUCTIONS=AVX2 ONEDNN_MAX_CPU_ISA=AVX2
        export XLA_FLAGS="${XLA_FLAGS:+$XLA_FLAGS }--xla_cpu_max_isa=AVX2"
        target="$target/isa-avx2"
        (cd "$here" && CARGO_TARGET_DIR="$target" cargo build --release -p normflow-cli --no-default-features) ;;
    *)
        echo "compare_peers.sh: --isa must be native or avx2, not \`$isa'" >&2
        exit 2 ;;
esac
exec "$venv/bin/python" "$here/benches/compare_peers.py" --normflow "$target/release/normflow" "$@"
