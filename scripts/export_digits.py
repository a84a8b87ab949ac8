#!/usr/bin/env python3
"""Export scikit-learn's 8x8 digits to data/digits.csv, once.

The file is committed in the repository, so `normflow vae` needs neither
Python nor a download at run time (the binary embeds it). Run from the
repository root:

    python3 -m pip install scikit-learn
    python3 scripts/export_digits.py

Output: a header row `p0,...,p63,label`, then one row per image (1 797
rows, in scikit-learn's order): the 64 pixel values, integers 0..16, row by
row from the top-left corner, then the digit 0..9. Source and licence:
data/README.md.
"""

import pathlib

import numpy as np
from sklearn.datasets import load_digits


def main() -> None:
    digits = load_digits()
    pixels = digits.data.astype(np.int64)
    labels = digits.target.astype(np.int64)
    assert pixels.shape == (1797, 64), pixels.shape
    assert pixels.min() >= 0 and pixels.max() <= 16
    assert np.array_equal(pixels, digits.data), "pixel values are not integers"
    out = pathlib.Path(__file__).resolve().parent.parent / "data" / "digits.csv"
    header = ",".join([f"p{i}" for i in range(64)] + ["label"])
    rows = [",".join(map(str, list(p) + [y])) for p, y in zip(pixels, labels)]
    out.write_text(header + "\n" + "\n".join(rows) + "\n", encoding="ascii")
    print(f"wrote {len(rows)} images to {out} ({out.stat().st_size} bytes)")


if __name__ == "__main__":
    main()
