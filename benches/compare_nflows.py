#!/usr/bin/env python3
"""Side-by-side timing of normflow and PyTorch/nflows on the same MAF.

Run through `benches/compare_nflows.sh`, which creates a virtual environment
with torch and nflows first. For every shape of the table in
docs/benchmarks.md and every operation, each round times PyTorch (in this
process) and normflow (the `normflow bench` command, one process per
measurement) back to back, alternating which goes first; the report gives the
median over rounds of each side's per-call median and the ratio.

The two flows:

- normflow: `maf(5, hidden = H)` from the DSL: 5 MAF layers with reverse
  permutations between them, each conditioned by a MADE
  `D → H → relu → H → relu → 2D` (3 masked linear layers), standard normal base.
- nflows: `MaskedAffineAutoregressiveTransform(features=D, hidden_features=H,
  num_blocks=2, use_residual_blocks=False, activation=F.relu)` ×5 with
  `ReversePermutation` between, `StandardNormal` base. Its non-residual MADE is
  `D → H` (no activation), then 2 blocks `H → H → relu`, then `H → 2D`: 4
  masked linear layers, one `H × H` product more than ours.

Both in float32, PyTorch with `torch.set_num_threads(THREADS)`.
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

import torch
import torch.nn.functional as F
from nflows.distributions.normal import StandardNormal
from nflows.flows.base import Flow
from nflows.transforms.autoregressive import MaskedAffineAutoregressiveTransform
from nflows.transforms.base import CompositeTransform
from nflows.transforms.permutations import ReversePermutation

# (D, hidden, batch, operations): the table of docs/benchmarks.md.
SHAPES = [
    (2, 64, 1, ["log-prob"]),
    (2, 64, 256, ["log-prob", "train-step", "sample"]),
    (8, 64, 256, ["log-prob", "train-step", "sample"]),
    (8, 256, 256, ["log-prob", "train-step", "sample"]),
    (8, 256, 4096, ["log-prob"]),
    (64, 64, 256, ["log-prob", "train-step", "sample"]),
    (64, 256, 256, ["log-prob", "train-step", "sample"]),
]


def build_nflows(d, hidden):
    layers = []
    for i in range(5):
        if i > 0:
            layers.append(ReversePermutation(features=d))
        layers.append(
            MaskedAffineAutoregressiveTransform(
                features=d,
                hidden_features=hidden,
                num_blocks=2,
                use_residual_blocks=False,
                activation=F.relu,
            )
        )
    return Flow(CompositeTransform(layers), StandardNormal([d]))


def time_calls(call, warmup, repeat):
    for _ in range(warmup):
        call()
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        call()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def time_torch(d, hidden, batch, op, warmup, repeat):
    torch.manual_seed(0)
    flow = build_nflows(d, hidden)
    x = torch.randn(batch, d)
    if op == "log-prob":
        flow.eval()

        def call():
            with torch.no_grad():
                flow.log_prob(x)

    elif op == "sample":
        flow.eval()

        def call():
            with torch.no_grad():
                flow.sample(batch)

    elif op == "train-step":
        flow.train()
        opt = torch.optim.Adam(flow.parameters(), lr=1e-3)

        def call():
            opt.zero_grad()
            loss = -flow.log_prob(x).mean()
            loss.backward()
            opt.step()

    else:
        raise ValueError(op)
    return time_calls(call, warmup, repeat)


def time_ours(binary, d, hidden, batch, op, warmup, repeat):
    out = subprocess.run(
        [
            binary,
            "bench",
            "--flow",
            f"maf(5, hidden = {hidden})",
            "--dim",
            str(d),
            "--batch",
            str(batch),
            "--op",
            op,
            "--warmup",
            str(warmup),
            "--repeat",
            str(repeat),
            "--json",
        ],
        check=True,
        capture_output=True,
        text=True,
    )
    return json.loads(out.stdout)["median_s"]


def time_torch_gemm(d, hidden, batch, warmup, repeat):
    """torch.mm of the dense products of our flow's log_prob (5 MADEs of
    D → H → H → 2D on a batch), for reference."""
    shapes = [(hidden, d), (hidden, hidden), (2 * d, hidden)]
    ws = [torch.randn(o, i) for o, i in shapes]
    xs = [torch.randn(i, batch) for _, i in shapes]

    def call():
        for _ in range(5):
            for w, x in zip(ws, xs):
                torch.mm(w, x)

    return time_calls(call, warmup, repeat)


def fmt(s):
    return f"{s * 1e3:.3f} ms" if s >= 1e-3 else f"{s * 1e6:.1f} µs"


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--normflow", required=True, help="path to the normflow binary")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--repeat", type=int, default=15)
    ap.add_argument("--json", help="also write all measurements to this file")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    print(
        f"torch {torch.__version__}, {torch.get_num_threads()} threads; "
        f"{os.cpu_count()} CPUs; load {os.getloadavg()}",
        file=sys.stderr,
    )

    results = {}
    for r in range(args.rounds):
        for d, hidden, batch, ops in SHAPES:
            for op in ops:
                # Sampling at D = 64 is slow in Python: fewer calls.
                rep = args.repeat if not (op == "sample" and d >= 64) else 5
                key = (d, hidden, batch, op)
                sides = ["torch", "ours"] if r % 2 == 0 else ["ours", "torch"]
                for side in sides:
                    if side == "torch":
                        t = time_torch(d, hidden, batch, op, args.warmup, rep)
                    else:
                        t = time_ours(args.normflow, d, hidden, batch, op, args.warmup, rep)
                    results.setdefault(key, {"torch": [], "ours": []})[side].append(t)
                m = results[key]
                print(
                    f"round {r + 1}: D={d} H={hidden} B={batch} {op}: "
                    f"torch {fmt(m['torch'][-1])}, ours {fmt(m['ours'][-1])}",
                    file=sys.stderr,
                )
    # Efficiency: the bare gemms of our flow's dense layers against its
    # log_prob, alternating, and torch.mm of the same products for reference.
    gemm = {}
    for d, hidden, batch in [(8, 256, 4096), (64, 256, 256)]:
        g, lp = [], []
        for _ in range(args.rounds):
            g.append(time_ours(args.normflow, d, hidden, batch, "gemm", args.warmup, args.repeat))
            lp.append(time_ours(args.normflow, d, hidden, batch, "log-prob", args.warmup, args.repeat))
        tg = time_torch_gemm(d, hidden, batch, args.warmup, args.repeat)
        gemm[(d, hidden, batch)] = {
            "ours_gemm_s": statistics.median(g),
            "ours_log_prob_s": statistics.median(lp),
            "torch_mm_s": tg,
        }

    print("| D | hidden | batch | operation | normflow | PyTorch/nflows | speed-up |")
    print("|---|---|---|---|---|---|---|")
    rows = []
    for (d, hidden, batch, op), m in results.items():
        ours = statistics.median(m["ours"])
        theirs = statistics.median(m["torch"])
        print(
            f"| {d} | {hidden} | {batch} | {op} | {fmt(ours)} | {fmt(theirs)} | "
            f"{theirs / ours:.1f}× |"
        )
        rows.append(
            {
                "dim": d,
                "hidden": hidden,
                "batch": batch,
                "op": op,
                "ours_s": m["ours"],
                "torch_s": m["torch"],
                "ours_median_s": ours,
                "torch_median_s": theirs,
                "speedup": theirs / ours,
            }
        )
    for (d, hidden, batch), t in gemm.items():
        print(
            f"D={d} H={hidden} B={batch}: bare gemm of our dense layers "
            f"{fmt(t['ours_gemm_s'])}, our log_prob {fmt(t['ours_log_prob_s'])} "
            f"(efficiency {t['ours_gemm_s'] / t['ours_log_prob_s']:.0%}); "
            f"torch.mm of the same products {fmt(t['torch_mm_s'])}"
        )
    if args.json:
        with open(args.json, "w") as f:
            json.dump(
                {
                    "rows": rows,
                    "gemm": {f"{k[0]}x{k[1]}x{k[2]}": v for k, v in gemm.items()},
                    "torch": torch.__version__,
                    "threads": args.threads,
                },
                f,
                indent=1,
            )


if __name__ == "__main__":
    main()
