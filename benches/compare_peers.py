#!/usr/bin/env python3
"""Side-by-side timing of normflow and its peers (nflows, zuko, FlowJAX).

Run through `benches/compare_peers.sh`, which creates a virtual environment
with torch, nflows, zuko, jax and flowjax first. Every peer builds the same
flow, `maf(5, hidden = H)`: 5 masked affine autoregressive layers whose MADE
has two hidden ReLU layers of width H, permutations between the layers, and a
standard normal base, in float32:

- normflow: `maf(5, hidden = H)` (the `normflow bench` command, one process
  per measurement);
- nflows: `MaskedAffineAutoregressiveTransform(hidden_features=H,
  num_blocks=2)` ×5 with `ReversePermutation` (its MADE has one H × H
  product more than the others);
- zuko: `zuko.flows.MAF(D, transforms=5, hidden_features=(H, H))`;
- FlowJAX: `masked_autoregressive_flow(flow_layers=5, nn_width=H,
  nn_depth=2)`, every operation jit-compiled (`equinox.filter_jit`) and
  timed after compilation.

Each round times every side back to back, rotating which goes first; the
table gives the median over rounds of each side's per-call median, and the
ratio of the fastest peer's time to ours. `--fit` adds the end-to-end fit of
two moons (20 000 points, 100 epochs, batch 256, Adam 1e-3) with each
library's own training loop (ours: `normflow fit` with its defaults, f32
with a tenth held out to keep the best epoch, as FlowJAX's `fit_to_data`;
`--fit-who` adds our other settings) and the test log-likelihood of the
result on 5 000 fresh points.

`--isa avx2` (with `compare_peers.sh --isa avx2`, which sets the variables
and builds normflow without its AVX-512 kernels) measures what a CPU without
AVX-512 would run, on one that has it: every side is capped at AVX2 and FMA
(PyTorch by `ATEN_CPU_CAPABILITY`, MKL by `MKL_ENABLE_INSTRUCTIONS`, oneDNN
by `ONEDNN_MAX_CPU_ISA`, XLA by `--xla_cpu_max_isa`). The script checks the
caps it can read back (PyTorch's capability, normflow's kernels) and prints
them with the machine.
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

import numpy as np

# The same nflows flow and timing loop as the PyTorch-only comparison.
from compare_nflows import time_calls

PEERS = ["nflows", "zuko", "flowjax"]

# The kernels normflow reported for its dense products (one entry expected).
KERNELS = set()

# (D, hidden, batch, operation): the cells of docs/benchmarks.md.
CELLS = [
    (2, 64, 1, "log-prob"),
    (2, 64, 256, "log-prob"),
    (8, 64, 256, "log-prob"),
    (8, 256, 4096, "log-prob"),
    (64, 256, 256, "log-prob"),
    (8, 64, 256, "train-step"),
    (64, 256, 256, "train-step"),
    (8, 64, 256, "sample"),
    (64, 64, 256, "sample"),
]


# ---------------------------------------------------------------- torch peers


def build_nflows(d, hidden):
    from compare_nflows import build_nflows as nflows_flow

    flow = nflows_flow(d, hidden)
    return flow, flow.log_prob, flow.sample


def build_zuko(d, hidden):
    import zuko

    flow = zuko.flows.MAF(d, transforms=5, hidden_features=(hidden, hidden))
    return flow, (lambda x: flow().log_prob(x)), (lambda n: flow().sample((n,)))


def time_torch(peer, d, hidden, batch, op, warmup, repeat):
    import torch

    torch.manual_seed(0)
    module, log_prob, sample = (build_nflows if peer == "nflows" else build_zuko)(d, hidden)
    x = torch.randn(batch, d)
    if op == "log-prob":

        def call():
            with torch.no_grad():
                log_prob(x)

    elif op == "sample":

        def call():
            with torch.no_grad():
                sample(batch)

    else:
        opt = torch.optim.Adam(module.parameters(), lr=1e-3)

        def call():
            opt.zero_grad()
            loss = -log_prob(x).mean()
            loss.backward()
            opt.step()

    return time_calls(call, warmup, repeat)


def fit_torch(peer, x, test, epochs, batch, seed):
    import torch

    torch.manual_seed(seed)
    module, log_prob, _ = (build_nflows if peer == "nflows" else build_zuko)(2, 128)
    data = torch.tensor(x, dtype=torch.float32)
    opt = torch.optim.Adam(module.parameters(), lr=1e-3)
    start = time.perf_counter()
    for _ in range(epochs):
        perm = torch.randperm(len(data))
        for i in range(0, len(data), batch):
            opt.zero_grad()
            loss = -log_prob(data[perm[i : i + batch]]).mean()
            loss.backward()
            opt.step()
    wall = time.perf_counter() - start
    with torch.no_grad():
        ll = log_prob(torch.tensor(test, dtype=torch.float32)).mean().item()
    return wall, ll


# ---------------------------------------------------------------- FlowJAX


def build_flowjax(d, hidden, seed=0):
    import jax.numpy as jnp
    import jax.random as jr
    from flowjax.distributions import Normal
    from flowjax.flows import masked_autoregressive_flow

    return masked_autoregressive_flow(
        jr.key(seed),
        base_dist=Normal(jnp.zeros(d)),
        flow_layers=5,
        nn_width=hidden,
        nn_depth=2,
    )


def time_flowjax(d, hidden, batch, op, warmup, repeat):
    import equinox as eqx
    import jax.random as jr
    import optax
    import paramax
    from flowjax.train.losses import MaximumLikelihoodLoss
    from flowjax.train.train_utils import step

    flow = build_flowjax(d, hidden)
    x = jr.normal(jr.key(1), (batch, d))
    if op == "log-prob":
        f = eqx.filter_jit(lambda dist, x: paramax.unwrap(dist).log_prob(x))

        def call():
            f(flow, x).block_until_ready()

    elif op == "sample":
        f = eqx.filter_jit(lambda dist, k: paramax.unwrap(dist).sample(k, (batch,)))
        key = jr.key(2)

        def call():
            f(flow, key).block_until_ready()

    else:
        params, static = eqx.partition(
            flow, eqx.is_inexact_array, is_leaf=lambda l: isinstance(l, paramax.NonTrainable)
        )
        opt = optax.adam(1e-3)
        state = {"params": params, "opt": opt.init(params)}
        loss_fn = MaximumLikelihoodLoss()

        def call():
            p, s, loss = step(
                state["params"], static, x, optimizer=opt, opt_state=state["opt"], loss_fn=loss_fn
            )
            loss.block_until_ready()
            state["params"], state["opt"] = p, s

    # Compile outside the timing.
    call()
    return time_calls(call, warmup, repeat)


def fit_flowjax(x, test, epochs, batch, seed):
    import jax.numpy as jnp
    import jax.random as jr
    import paramax
    from flowjax.train import fit_to_data

    flow = build_flowjax(2, 128, seed)
    start = time.perf_counter()
    flow, _ = fit_to_data(
        jr.key(seed),
        flow,
        jnp.asarray(x, dtype=jnp.float32),
        learning_rate=1e-3,
        max_epochs=epochs,
        max_patience=epochs,
        batch_size=batch,
        show_progress=False,
    )
    wall = time.perf_counter() - start
    ll = float(paramax.unwrap(flow).log_prob(jnp.asarray(test, dtype=jnp.float32)).mean())
    return wall, ll


# ---------------------------------------------------------------- normflow


def time_ours(binary, d, hidden, batch, op, warmup, repeat):
    out = subprocess.run(
        [binary, "bench", "--flow", f"maf(5, hidden = {hidden})", "--dim", str(d),
         "--batch", str(batch), "--op", op, "--warmup", str(warmup), "--repeat", str(repeat),
         "--json"],
        check=True, capture_output=True, text=True,
    )
    result = json.loads(out.stdout)
    KERNELS.add(result.get("kernels", "unknown"))
    return result["median_s"]


def gemm_peak(threads, n=2048, repeat=10):
    """The machine's single-precision gemm rate: the best of `repeat` calls of
    PyTorch's `torch.mm` (MKL or oneDNN) on `n × n` matrices, in GFLOP/s."""
    import torch

    torch.set_num_threads(threads)
    a, b = torch.randn(n, n), torch.randn(n, n)
    for _ in range(3):
        torch.mm(a, b)
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        torch.mm(a, b)
        best = min(best, time.perf_counter() - start)
    return 2.0 * n**3 / best / 1e9


def kept_rate(binary, d, hidden, batch, repeat):
    """Our log-density's rate over the multiply-adds the masks keep (best of
    `repeat` calls), in GFLOP/s: products that skip masked blocks count only
    the work they must do, so this is at most the products' own rate."""
    out = subprocess.run(
        [binary, "bench", "--flow", f"maf(5, hidden = {hidden})", "--dim", str(d),
         "--batch", str(batch), "--op", "log-prob", "--repeat", str(repeat), "--json"],
        check=True, capture_output=True, text=True,
    )
    result = json.loads(out.stdout)
    return result["kept_flops"] / result["min_s"] / 1e9


def fit_ours(binary, train_csv, test_csv, workdir, epochs, batch, seed, extra, tag="ours"):
    model = os.path.join(workdir, f"{tag}-{seed}.json")
    start = time.perf_counter()
    subprocess.run(
        [binary, "fit", "--data", train_csv, "--flow", "maf(5, hidden = 128)", "--out", model,
         "--epochs", str(epochs), "--batch-size", str(batch), "--seed", str(seed), "--force"]
        + extra,
        check=True, capture_output=True, text=True,
    )
    wall = time.perf_counter() - start
    out = subprocess.run(
        [binary, "eval", "--model", model, "--data", test_csv, "--json"],
        check=True, capture_output=True, text=True,
    )
    return wall, json.loads(out.stdout.strip().splitlines()[-1])["mean_log_prob"]


# ---------------------------------------------------------------- fits

# The command-line flags of our fits, by the name `--fit-who` gives them.
# "ours" is `normflow fit` as a user runs it (f32, a tenth held out to keep
# the best epoch); "-f64" trains in double precision, "-last" trains on every
# row and keeps the last epoch, as the PyTorch loops here do.
OUR_FLAGS = {
    "ours": [],
    "ours-f64": ["--dtype", "f64"],
    "ours-last": ["--valid-fraction", "0"],
    "ours-f64-last": ["--dtype", "f64", "--valid-fraction", "0"],
}

# What `--fit-who` may name, and how the table calls it: ours by their flags.
FITS = {
    **{who: " ".join(["normflow"] + flags) if flags else "normflow (defaults)"
       for who, flags in OUR_FLAGS.items()},
    "nflows": "nflows",
    "zuko": "zuko",
    "flowjax": "FlowJAX fit_to_data",
}


def fit_one(job):
    """One end-to-end fit of two moons: (wall seconds, test log-likelihood).
    A top-level function, so that `--fit-jobs` can run it in other processes."""
    who, seed, ctx = job
    threads = str(ctx["threads"])
    os.environ["MATMUL_NUM_THREADS"] = threads
    if who in OUR_FLAGS:
        extra = OUR_FLAGS[who]
        return fit_ours(ctx["normflow"], ctx["train"], ctx["test"], ctx["tmp"], 100, 256, seed,
                        extra, tag=who)
    import torch

    torch.set_num_threads(ctx["threads"])
    x = np.loadtxt(ctx["train"], delimiter=",", skiprows=1)
    test = np.loadtxt(ctx["test"], delimiter=",", skiprows=1)
    if who == "flowjax":
        return fit_flowjax(x, test, 100, 256, seed)
    return fit_torch(who, x, test, 100, 256, seed)


# ---------------------------------------------------------------- report


def cpu_line():
    model, flags = "unknown CPU", set()
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name") and model == "unknown CPU":
                    model = line.split(":", 1)[1].strip()
                if line.startswith("flags"):
                    flags = set(line.split(":", 1)[1].split())
    except OSError:
        pass
    simd = [x for x in ["avx2", "fma", "avx512f", "avx512bw", "avx512vl"] if x in flags]
    return f"{model}, {os.cpu_count()} CPUs, SIMD: {' '.join(simd) or 'none listed'}"


def fmt(s):
    return f"{s * 1e3:.2f} ms" if s >= 1e-3 else f"{s * 1e6:.1f} µs"


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--normflow", required=True, help="path to the normflow binary")
    ap.add_argument("--rounds", type=int, default=3, help="rounds of the timed cells (0: none)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--repeat", type=int, default=15)
    ap.add_argument("--fit", action="store_true", help="also the end-to-end fit of two moons")
    ap.add_argument("--fit-seeds", type=int, default=1)
    ap.add_argument("--fit-who", default="ours,ours-f64,nflows,zuko,flowjax",
                    help=f"which fits to run, comma-separated, of {','.join(FITS)} "
                         "(default: all but the two with --valid-fraction)")
    ap.add_argument("--fit-jobs", type=int, default=1,
                    help="fits at a time, each with --threads / jobs threads (for accuracy runs: "
                         "the seconds are then not those of one fit alone)")
    ap.add_argument("--json", help="also write all measurements to this file")
    ap.add_argument("--isa", choices=["native", "avx2"], default="native",
                    help="avx2: every side capped at AVX2 (set by compare_peers.sh --isa avx2)")
    args = ap.parse_args()

    import torch

    torch.set_num_threads(args.threads)
    torch_isa = torch.backends.cpu.get_cpu_capability()
    if args.isa == "avx2":
        capped = {"ATEN_CPU_CAPABILITY": "avx2", "MKL_ENABLE_INSTRUCTIONS": "AVX2",
                  "ONEDNN_MAX_CPU_ISA": "AVX2"}
        unset = [k for k, v in capped.items() if os.environ.get(k) != v]
        if unset or "--xla_cpu_max_isa=AVX2" not in os.environ.get("XLA_FLAGS", "") \
                or torch_isa != "AVX2":
            sys.exit(f"--isa avx2 needs {', '.join(unset) or 'XLA_FLAGS'} set as "
                     f"compare_peers.sh --isa avx2 sets them (PyTorch reports {torch_isa})")
    print(cpu_line(), file=sys.stderr)
    results = {}
    sides = ["ours"] + PEERS
    for r in range(args.rounds):
        order = sides[r % len(sides):] + sides[: r % len(sides)]
        for d, hidden, batch, op in CELLS:
            rep = args.repeat if not (op == "sample" and d >= 64) else 5
            key = (d, hidden, batch, op)
            for side in order:
                if side == "ours":
                    t = time_ours(args.normflow, d, hidden, batch, op, args.warmup, rep)
                elif side == "flowjax":
                    t = time_flowjax(d, hidden, batch, op, args.warmup, rep)
                else:
                    t = time_torch(side, d, hidden, batch, op, args.warmup, rep)
                results.setdefault(key, {s: [] for s in sides})[side].append(t)
            m = results[key]
            print(f"round {r + 1}: D={d} H={hidden} B={batch} {op}: "
                  + ", ".join(f"{s} {fmt(m[s][-1])}" for s in sides), file=sys.stderr)

    caps = ("every side capped at AVX2 and FMA" if args.isa == "avx2"
            else "every side free to use all of them")
    print(f"Machine: {cpu_line()}; {caps} (PyTorch's kernels: {torch_isa}; "
          f"normflow's: {', '.join(sorted(KERNELS)) or 'not run'}).")
    print()
    if results:
        print("| D | H | batch | operation | nflows | zuko | FlowJAX | normflow | fastest peer | normflow's lead |")
        print("|---|---|---|---|---|---|---|---|---|---|")
    rows = []
    for (d, hidden, batch, op), m in results.items():
        med = {s: statistics.median(v) for s, v in m.items()}
        best = min(PEERS, key=lambda s: med[s])
        lead = med[best] / med["ours"]
        print(f"| {d} | {hidden} | {batch} | {op} | {fmt(med['nflows'])} | {fmt(med['zuko'])} | "
              f"{fmt(med['flowjax'])} | {fmt(med['ours'])} | {best} | {lead:.1f}× |")
        rows.append({"dim": d, "hidden": hidden, "batch": batch, "op": op,
                     "times_s": m, "median_s": med, "fastest_peer": best, "lead": lead})

    peak = ours_rate = None
    if results:
        # The gemm-bound cell against the machine's own gemm, back to back.
        peak = gemm_peak(args.threads)
        ours_rate = kept_rate(args.normflow, 8, 256, 4096, 15)
        print()
        print(f"Single-precision gemm peak of this machine (torch.mm, 2048², {args.threads} "
              f"threads, best of 10): {peak:.1f} GFLOP/s. normflow's log-density at D=8 H=256 "
              f"B=4096 over the multiply-adds its masks keep (best of 15): {ours_rate:.1f} "
              f"GFLOP/s, {100 * ours_rate / peak:.0f} % of that peak.")

    fits = []
    if args.fit:
        who = args.fit_who.split(",")
        unknown = [w for w in who if w not in FITS]
        if unknown:
            sys.exit(f"--fit-who: unknown {', '.join(unknown)}; expected some of {', '.join(FITS)}")
        with tempfile.TemporaryDirectory() as tmp:
            train_csv, test_csv = os.path.join(tmp, "moons.csv"), os.path.join(tmp, "test.csv")
            for path, n, seed in [(train_csv, 20000, 0), (test_csv, 5000, 1)]:
                subprocess.run([args.normflow, "datasets", "moons", "--n", str(n), "--seed",
                                str(seed), "--out", path], check=True, capture_output=True)
            ctx = {"normflow": args.normflow, "train": train_csv, "test": test_csv, "tmp": tmp,
                   "threads": max(1, args.threads // args.fit_jobs)}
            jobs = [(w, seed, ctx) for seed in range(args.fit_seeds) for w in who]
            if args.fit_jobs == 1:
                done = map(fit_one, jobs)
            else:
                import concurrent.futures as cf
                import multiprocessing as mp

                pool = cf.ProcessPoolExecutor(args.fit_jobs, mp_context=mp.get_context("spawn"))
                done = pool.map(fit_one, jobs)
            for (w, seed, _), (wall, ll) in zip(jobs, done):
                fits.append({"who": FITS[w], "seed": seed, "wall_s": wall, "test_ll": ll})
                print(f"fit seed {seed}: {FITS[w]}: {wall:.1f} s, test log-likelihood {ll:.4f}",
                      file=sys.stderr)
        print()
        at_once = f", {args.fit_jobs} fits at a time" if args.fit_jobs > 1 else ""
        print(f"| who | seconds (median over seeds{at_once}) | test log-likelihood "
              f"(mean ± standard error over {args.fit_seeds} seed{'s' if args.fit_seeds > 1 else ''}) |")
        print("|---|---|---|")
        for name in dict.fromkeys(f["who"] for f in fits):
            w = [f["wall_s"] for f in fits if f["who"] == name]
            ll = [f["test_ll"] for f in fits if f["who"] == name]
            se = f" ± {statistics.stdev(ll) / len(ll) ** 0.5:.4f}" if len(ll) > 1 else ""
            print(f"| {name} | {statistics.median(w):.1f} | {statistics.mean(ll):.4f}{se} |")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"cpu": cpu_line(), "cells": [
                {**r, "times_s": r["times_s"], "median_s": r["median_s"]} for r in rows
            ], "fits": fits, "threads": args.threads, "isa": args.isa,
                "gemm_peak_gflop_per_s": peak, "ours_kept_gflop_per_s": ours_rate,
                "kernels": sorted(KERNELS), "torch_isa": torch_isa}, f, indent=1)


if __name__ == "__main__":
    main()
