#!/usr/bin/env bash
# Times normflow against PyTorch/nflows on the shapes of docs/benchmarks.md.
# Creates a virtual environment with torch and nflows (outside the repository
# unless VENV says otherwise), builds the normflow binary, then runs
# benches/compare_nflows.py. Extra arguments go to the Python script
# (--rounds, --repeat, --threads, --json FILE).
#
#   bash benches/compare_nflows.sh --rounds 3
#
# torch comes from its CPU-only index when that is reachable, else from PyPI
# (the CUDA build, about 6 GB; it runs on the CPU all the same).
set -euo pipefail
here="$(cd "$(dirname "$0")/.." && pwd)"
venv="${VENV:-$here/../venv-nflows}"
if [ ! -x "$venv/bin/python" ]; then
    python3 -m venv "$venv"
fi
if ! "$venv/bin/python" -c "import torch, nflows" 2>/dev/null; then
    "$venv/bin/pip" install torch --index-url https://download.pytorch.org/whl/cpu \
        || "$venv/bin/pip" install torch
    "$venv/bin/pip" install nflows
fi
(cd "$here" && cargo build --release -p normflow-cli)
target="${CARGO_TARGET_DIR:-$here/target}"
exec "$venv/bin/python" "$here/benches/compare_nflows.py" --normflow "$target/release/normflow" "$@"
