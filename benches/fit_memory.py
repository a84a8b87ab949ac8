#!/usr/bin/env python3
"""Peak memory of fitting the 64-dimensional MAF, PyTorch/nflows side.

Fits the same model as `normflow fit --flow "maf(5, hidden = 256)"` (see
compare_nflows.py for the two architectures) to a data file, float32, batch
256, Adam(1e-3), for a few epochs. Run it under `/usr/bin/time -v` and read
"Maximum resident set size"; docs/benchmarks.md gives the commands.

    python benches/fit_memory.py DATA.npy EPOCHS
"""

import sys

import numpy as np
import torch

from compare_nflows import build_nflows

torch.set_num_threads(2)
data = torch.from_numpy(np.load(sys.argv[1]).astype(np.float32))
epochs = int(sys.argv[2])
flow = build_nflows(data.shape[1], 256)
opt = torch.optim.Adam(flow.parameters(), lr=1e-3)
g = torch.Generator().manual_seed(0)
for _ in range(epochs):
    for batch in torch.randperm(len(data), generator=g).split(256):
        opt.zero_grad()
        loss = -flow.log_prob(data[batch]).mean()
        loss.backward()
        opt.step()
print(f"final batch loss {loss.item():.3f}")
