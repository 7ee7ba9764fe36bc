#!/usr/bin/env python3
"""One-class Fashion-MNIST: each class in, the other nine out, AUROC of vpfb's detector against LOF and
IsolationForest in the same run.

The shipped model was trained on all ten classes, so this measures the detector alone: for each class
c, `vpfb-train detector --data` refits the model file's detector on class-c images only, and the refitted
file scores held-out test images. Fitting images: class c among the first 5 000 Fashion-MNIST test
images (unseen by the model); scored: the next --score-count test images (label 0 = class c). The
baselines are fitted on the same class-c images (pixels scaled to [0, 1]). This is not the classic
one-class protocol, which trains one generative model per class (about 2 h each for this UNet on two
CPU cores).

Needs the Debian package dataset-fashion-mnist, scikit-learn, numpy and release builds:
    cargo build --release -p vpfb-trainer -p vpfb-cli
    python3 scripts/ood_one_class.py [--score-count 1000]
"""
import argparse, os, subprocess, sys, time

import numpy as np
from sklearn.ensemble import IsolationForest
from sklearn.metrics import roc_auc_score
from sklearn.neighbors import LocalOutlierFactor

from idx import read_idx, write_idx


def run(cmd):
    r = subprocess.run(cmd, capture_output=True, text=True)
    if r.returncode != 0:
        sys.exit(f"{' '.join(cmd)} failed:\n{r.stderr}")
    return r.stdout


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="models/fashion-mnist.onnx")
    ap.add_argument("--bin", default="target/release")
    ap.add_argument("--fashion", default="/usr/share/datasets/fashion-mnist")
    ap.add_argument("--out", default="target/ood-one-class")
    ap.add_argument("--score-count", type=int, default=1000)
    a = ap.parse_args()
    os.makedirs(a.out, exist_ok=True)
    x = read_idx(os.path.join(a.fashion, "t10k-images-idx3-ubyte.gz"))
    y = read_idx(os.path.join(a.fashion, "t10k-labels-idx1-ubyte.gz"))
    fit_x, fit_y = x[:5000], y[:5000]
    test_x, test_y = x[5000:5000 + a.score_count], y[5000:5000 + a.score_count]
    test_idx = os.path.join(a.out, "test-idx3-ubyte")
    write_idx(test_idx, test_x)
    flat = lambda v: v.reshape(len(v), -1) / 255.0
    print("| class | fit images | vpfb detector | LOF | IsolationForest |\n|---|---|---|---|---|")
    rows = []
    for c in range(10):
        t0 = time.time()
        own = fit_x[fit_y == c]
        data = os.path.join(a.out, f"class{c}-idx3-ubyte")
        write_idx(data, own)
        model = os.path.join(a.out, f"class{c}.onnx")
        run([f"{a.bin}/vpfb-train", "detector", "--model", a.model, "--data", f"idx:{data}", "--out", model])
        scores = os.path.join(a.out, f"class{c}-scores.csv")
        run([f"{a.bin}/vpfb", "score", "--model", model, "--input", test_idx, "--out", scores])
        s = np.loadtxt(scores, delimiter=",", skiprows=1)[:, 0]
        labels = (test_y != c).astype(int)
        det = roc_auc_score(labels, s)
        lof = LocalOutlierFactor(n_neighbors=20, novelty=True).fit(flat(own))
        lof_auc = roc_auc_score(labels, -lof.score_samples(flat(test_x)))
        iso = IsolationForest(n_estimators=200, random_state=0).fit(flat(own))
        iso_auc = roc_auc_score(labels, -iso.score_samples(flat(test_x)))
        rows.append((det, lof_auc, iso_auc))
        print(f"| {c} | {len(own)} | {det:.3f} | {lof_auc:.3f} | {iso_auc:.3f} |  ({time.time() - t0:.0f} s)", flush=True)
    m = np.mean(rows, axis=0)
    print(f"| **mean** | | **{m[0]:.3f}** | **{m[1]:.3f}** | **{m[2]:.3f}** |")


if __name__ == "__main__":
    main()
