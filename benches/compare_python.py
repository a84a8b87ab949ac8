#!/usr/bin/env python3
"""normflow's Python package against nflows and zuko, end to end.

Needs a virtual environment with torch, nflows, zuko and the normflow wheel
(`pip install torch nflows zuko ./python`), not the CI's. Times, on the same
machine in one run:

1. fitting `maf(5, hidden = 128)` to two moons (20 000 points, batch 256,
   Adam at 1e-3, no validation) for `--epochs` epochs: normflow (float32 and
   float64) against nflows' and zuko's MAF of the same shape in their own
   training loops (float32, `torch.set_num_threads(--threads)`);
2. the Python call overhead of `Flow.log_prob` on one point: the median time
   of the Python call against the median of the same call in Rust
   (`normflow bench --batch 1 --op log-prob`).

    python benches/compare_python.py --epochs 100 --normflow target/release/normflow

The shapes: normflow's `maf(5, hidden = H)` is 5 MAF layers with reversals
between them, each with a MADE `D → H → relu → H → relu → 2D`; nflows'
`MaskedAffineAutoregressiveTransform(hidden_features=H, num_blocks=2)` has one
`H × H` product more (see compare_nflows.py); zuko's `MAF(transforms=5,
hidden_features=[H, H])` is the same shape as ours.
"""

import argparse
import re
import statistics
import subprocess
import time

import numpy as np
import torch

import normflow


def moons(n, seed=0, noise=0.05):
    """Two interleaved half circles (as scikit-learn's make_moons)."""
    rng = np.random.default_rng(seed)
    t = rng.uniform(0, np.pi, n)
    upper = rng.uniform(size=n) < 0.5
    x = np.where(upper, np.cos(t), 1 - np.cos(t))
    y = np.where(upper, np.sin(t), 0.5 - np.sin(t))
    return np.stack([x, y], axis=1) + noise * rng.normal(size=(n, 2))


def torch_loop(log_prob, params, X, epochs, batch, lr, seed):
    """The usual PyTorch loop: shuffle, batches, Adam on the mean NLL."""
    g = torch.Generator().manual_seed(seed)
    opt = torch.optim.Adam(params, lr=lr)
    Xt = torch.tensor(X, dtype=torch.float32)
    n = Xt.shape[0]
    for _ in range(epochs):
        perm = torch.randperm(n, generator=g)
        for i in range(0, n, batch):
            xb = Xt[perm[i : i + batch]]
            loss = -log_prob(xb).mean()
            opt.zero_grad()
            loss.backward()
            opt.step()


def fit_nflows(X, epochs, hidden):
    import torch.nn.functional as F
    from nflows.distributions.normal import StandardNormal
    from nflows.flows.base import Flow
    from nflows.transforms.autoregressive import MaskedAffineAutoregressiveTransform
    from nflows.transforms.base import CompositeTransform
    from nflows.transforms.permutations import ReversePermutation

    torch.manual_seed(0)
    layers = []
    for i in range(5):
        if i > 0:
            layers.append(ReversePermutation(features=2))
        layers.append(
            MaskedAffineAutoregressiveTransform(
                features=2, hidden_features=hidden, num_blocks=2, activation=F.relu
            )
        )
    flow = Flow(CompositeTransform(layers), StandardNormal([2]))
    torch_loop(flow.log_prob, flow.parameters(), X, epochs, 256, 1e-3, 0)
    with torch.no_grad():
        return flow.log_prob(torch.tensor(X, dtype=torch.float32)).mean().item()


def fit_zuko(X, epochs, hidden):
    import zuko

    torch.manual_seed(0)
    flow = zuko.flows.MAF(features=2, transforms=5, hidden_features=[hidden, hidden])
    torch_loop(lambda x: flow().log_prob(x), flow.parameters(), X, epochs, 256, 1e-3, 0)
    with torch.no_grad():
        return flow().log_prob(torch.tensor(X, dtype=torch.float32)).mean().item()


def fit_normflow(X, epochs, hidden, dtype):
    flow = normflow.Flow(f"maf(5, hidden = {hidden})", dtype=dtype, seed=0)
    flow.fit(X, epochs=epochs, batch_size=256, lr=1e-3, validation=0, patience=None,
             standardize=False)
    return flow.score(X)


def timed(f, *args):
    t0 = time.perf_counter()
    ll = f(*args)
    return time.perf_counter() - t0, ll


def call_overhead(cli, hidden, dtype, calls):
    X = moons(2000)
    flow = normflow.Flow(f"maf(5, hidden = {hidden})", dtype=dtype).fit(
        X, epochs=1, validation=0
    )
    x = X[:1].copy()
    for _ in range(100):
        flow.log_prob(x)
    times = []
    for _ in range(calls):
        t0 = time.perf_counter()
        flow.log_prob(x)
        times.append(time.perf_counter() - t0)
    py = statistics.median(times)
    out = subprocess.run(
        [cli, "bench", "--flow", f"maf(5, hidden = {hidden})", "--dim", "2", "--batch", "1",
         "--op", "log-prob", "--dtype", "f32" if dtype == "float32" else "f64"],
        check=True, capture_output=True, text=True,
    ).stdout
    m = re.search(r"median ([0-9.]+) (µs|ms|ns)", out)
    scale = {"ns": 1e-9, "µs": 1e-6, "ms": 1e-3}[m.group(2)]
    return py, float(m.group(1)) * scale


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--epochs", type=int, default=100)
    ap.add_argument("--hidden", type=int, default=128)
    ap.add_argument("--n", type=int, default=20000)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--calls", type=int, default=2000)
    ap.add_argument("--normflow", default="target/release/normflow",
                    help="the command-line tool, for the Rust-side call time")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    X = moons(args.n, seed=0)
    rows = []
    for name, f, extra in [
        ("normflow float32", fit_normflow, ("float32",)),
        ("normflow float64", fit_normflow, ("float64",)),
        ("nflows", fit_nflows, ()),
        ("zuko", fit_zuko, ()),
    ]:
        t, ll = timed(f, X, args.epochs, args.hidden, *extra)
        rows.append((name, t, ll))
        print(f"{name:18s} {t:8.1f} s   train log-likelihood {ll:.4f}", flush=True)
    best_peer = min(t for name, t, _ in rows if not name.startswith("normflow"))
    print()
    print(f"| fit, {args.epochs} epochs | time | train log-lik. | fastest peer / this |")
    print("|---|---|---|---|")
    for name, t, ll in rows:
        print(f"| {name} | {t:.1f} s | {ll:.4f} | {best_peer / t:.2f}× |")
    print()
    for dtype in ["float32", "float64"]:
        py, rust = call_overhead(args.normflow, args.hidden, dtype, args.calls)
        print(f"log_prob of one point, {dtype}: Python {py * 1e6:.1f} µs, Rust {rust * 1e6:.1f} µs, "
              f"overhead {(py - rust) * 1e6:.1f} µs")


if __name__ == "__main__":
    main()
