"""Repack all of MNIST per digit, as deepmle's embedded data (src/deepmle/data/).

    python experiments/repack_mnist.py [../shared/data/mnist.npz]

Reads a uint8 mnist.npz (train_images [60000, 28, 28], train_labels [60000], test_images
[10000, 28, 28], test_labels [10000]; provenance in data/PROVENANCE.md), checks it against
the published array checksums (data/checksums_mnist.txt), and writes
``mnist_by_digit.npz``: for each split and digit d, ``<split>_images_<d>`` [n_d, 28, 28]
uint8 and ``<split>_index_<d>`` [n_d] int32, the examples' indices in MNIST order. A pair of
digits then loads by reading only its four arrays of each split. The sha256 of every
repacked array goes to ``checksums.txt``, which deepmle verifies at every load.
"""

import argparse
import sys
from pathlib import Path

import numpy as np

from deepmle import data

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "src" / "deepmle" / "data"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("source", nargs="?", type=Path, default=ROOT.parent / "shared/data/mnist.npz")
    args = ap.parse_args()
    with np.load(args.source, allow_pickle=False) as f:
        mnist = {k: f[k] for k in f.files}
    published = data.read_checksums(OUT / "checksums_mnist.txt")
    for name, digest in published.items():
        if data.array_sha256(mnist[name]) != digest:
            sys.exit(f"{args.source}: {name} does not match checksums_mnist.txt")
    arrays = data.repack_by_digit(mnist)
    np.savez_compressed(OUT / data.EMBEDDED_FILE, **arrays)
    lines = [
        f"{data.array_sha256(a)}  {name}  {a.shape} {a.dtype}" for name, a in sorted(arrays.items())
    ]
    (OUT / "checksums.txt").write_text("\n".join(lines) + "\n")
    print(f"wrote {OUT / data.EMBEDDED_FILE} and checksums.txt ({len(arrays)} arrays)")


if __name__ == "__main__":
    main()
