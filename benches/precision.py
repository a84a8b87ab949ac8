#!/usr/bin/env python3
"""Does fitting in f32 lose accuracy against f64? `normflow fit` with its
default settings (100 epochs, batch 256, Adam 1e-3, a tenth of the rows held
out to keep the best epoch) of `maf(5, hidden = 128)` in both precisions,
three seeds, on three toy sets (20 000 training points, 5 000 test points
from another seed) and on the 8×8 digits (64-D, the label column left out;
the first 1 500 rows to train, the last 297 to test; pixels dequantised as
(v + u)/17 with u uniform on [0, 1), fixed seed). Prints the test
log-likelihood (mean and spread over seeds), the mean paired difference
f32 − f64 with its standard error, and the wall time of each.

    python3 benches/precision.py --normflow target/release/normflow

`--valid-fraction 0` trains on every row and keeps the last epoch instead.

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
    ap.add_argument("--valid-fraction", help="passed on to `normflow fit` (default: its own)")
    args = ap.parse_args()
    here = os.path.dirname(os.path.abspath(__file__))
    rows = []
    extra = [] if args.valid_fraction is None else ["--valid-fraction", args.valid_fraction]
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.sets.split(","):
            train, test = os.path.join(tmp, f"{name}-train.csv"), os.path.join(tmp, f"{name}-test.csv")
            if name == "digits":
                x = np.loadtxt(os.path.join(here, "..", "data", "digits.csv"), delimiter=",",
                               skiprows=1)[:, :64]
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
                         "--out", model, "--seed", str(seed), "--dtype", dtype, "--force"] + extra)
                    walls.append(time.perf_counter() - t0)
                    out = run([args.normflow, "eval", "--model", model, "--data", test, "--json"])
                    lls.append(json.loads(out.strip().splitlines()[-1])["mean_log_prob"])
                rows.append((name, dtype, lls, walls))
                print(f"{name} {dtype}: test log-likelihood {statistics.mean(lls):.4f} "
                      f"(seeds {', '.join(f'{v:.4f}' for v in lls)}), "
                      f"median wall {statistics.median(walls):.1f} s", flush=True)
    print()
    for name in dict.fromkeys(r[0] for r in rows):
        by = {r[1]: r[2] for r in rows if r[0] == name}
        if len(by.get("f32", [])) > 1 and len(by["f32"]) == len(by.get("f64", [])):
            diff = [a - b for a, b in zip(by["f32"], by["f64"])]
            se = statistics.stdev(diff) / len(diff) ** 0.5
            print(f"{name}: f32 - f64 = {statistics.mean(diff):+.4f} ± {se:.4f} "
                  f"(paired by seed; f32 worse in {sum(d < 0 for d in diff)} of {len(diff)})")
    print()
    print("| data | precision | test log-likelihood, 3-seed mean | per seed | fit wall time (median) |")
    print("|---|---|---|---|---|")
    for name, dtype, lls, walls in rows:
        print(f"| {name} | {dtype} | {statistics.mean(lls):.4f} | "
              f"{' / '.join(f'{v:.4f}' for v in lls)} | {statistics.median(walls):.1f} s |")


if __name__ == "__main__":
    main()
