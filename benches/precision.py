#!/usr/bin/env python3
"""Does fitting in f32 lose accuracy against f64? `normflow fit` with its
default settings (100 epochs, batch 256, Adam 1e-3) of `maf(5, hidden = 128)`
in both precisions, three seeds, on three toy sets (20 000 training points,
5 000 test points from another seed) and on the 8×8 digits (64-D; the first
1 500 rows to train, the last 297 to test; pixels dequantised as
(v + u)/17 with u uniform on [0, 1), fixed seed). Prints the test
log-likelihood (mean and spread over seeds) and the wall time of each.

    python3 benches/precision.py --normflow target/release/normflow

Needs numpy only.
"""

import argparse
import json
import os
import statistics
import subprocess
import tempfile
import time

import numpy as np


def run(cmd):
    return subprocess.run(cmd, check=True, capture_output=True, text=True).stdout


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--normflow", required=True)
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--sets", default="moons,checkerboard,8gaussians,digits")
    args = ap.parse_args()
    here = os.path.dirname(os.path.abspath(__file__))
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.sets.split(","):
            train, test = os.path.join(tmp, f"{name}-train.csv"), os.path.join(tmp, f"{name}-test.csv")
            if name == "digits":
                x = np.loadtxt(os.path.join(here, "..", "data", "digits.csv"), delimiter=",", skiprows=1)
                x = (x + np.random.default_rng(0).random(x.shape)) / 17.0
                np.savetxt(train, x[:1500], delimiter=",")
                np.savetxt(test, x[1500:], delimiter=",")
            else:
                run([args.normflow, "datasets", name, "--n", "20000", "--seed", "0", "--out", train])
                run([args.normflow, "datasets", name, "--n", "5000", "--seed", "1", "--out", test])
            for dtype in ["f64", "f32"]:
                lls, walls = [], []
                for seed in range(args.seeds):
                    model = os.path.join(tmp, f"{name}-{dtype}-{seed}.json")
                    t0 = time.perf_counter()
                    run([args.normflow, "fit", "--data", train, "--flow", "maf(5, hidden = 128)",
                         "--out", model, "--seed", str(seed), "--dtype", dtype, "--force"])
                    walls.append(time.perf_counter() - t0)
                    out = run([args.normflow, "eval", "--model", model, "--data", test, "--json"])
                    lls.append(json.loads(out.strip().splitlines()[-1])["mean_log_prob"])
                rows.append((name, dtype, lls, walls))
                print(f"{name} {dtype}: test log-likelihood {statistics.mean(lls):.4f} "
                      f"(seeds {', '.join(f'{v:.4f}' for v in lls)}), "
                      f"median wall {statistics.median(walls):.1f} s", flush=True)
    print()
    print("| data | precision | test log-likelihood, 3-seed mean | per seed | fit wall time (median) |")
    print("|---|---|---|---|---|")
    for name, dtype, lls, walls in rows:
        print(f"| {name} | {dtype} | {statistics.mean(lls):.4f} | "
              f"{' / '.join(f'{v:.4f}' for v in lls)} | {statistics.median(walls):.1f} s |")


if __name__ == "__main__":
    main()
