#!/usr/bin/env bash
# Times normflow against nflows, zuko and FlowJAX on the cells of
# docs/benchmarks.md (and, with --fit, the end-to-end fit of two moons).
# Creates a virtual environment with torch, nflows, zuko, jax and flowjax
# (outside the repository unless VENV says otherwise), builds the normflow
# binary, then runs benches/compare_peers.py. Extra arguments go to the
# Python script (--rounds, --repeat, --threads, --fit, --fit-seeds,
# --json FILE).
#
#   bash benches/compare_peers.sh --rounds 3 --fit
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
(cd "$here" && cargo build --release -p normflow-cli)
target="${CARGO_TARGET_DIR:-$here/target}"
exec "$venv/bin/python" "$here/benches/compare_peers.py" --normflow "$target/release/normflow" "$@"
