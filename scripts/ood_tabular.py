#!/usr/bin/env python3
"""OOD / anomaly AUROC of vpfb's three scores on public tabular data, with IsolationForest as baseline.

For each table: train on part of the normal class, score held-out normals (label 0) and the other
class(es) (label 1) with `vpfb score --score S --labels`, and fit IsolationForest on the same rows.

Needs scikit-learn (the tables ship inside its wheel) and release builds of both binaries:
    cargo build --release -p vpfb-trainer -p vpfb-runtime
    python3 -m pip install scikit-learn
    python3 scripts/ood_tabular.py [--steps 3000] [--out target/ood-tabular]
"""
import argparse, os, subprocess, sys

import numpy as np
from sklearn.datasets import load_breast_cancer, load_digits, load_wine
from sklearn.ensemble import IsolationForest
from sklearn.metrics import roc_auc_score


def tables():
    bc = load_breast_cancer()  # target 1 = benign
    yield "breast-cancer (benign vs malignant)", bc.data[bc.target == 1], bc.data[bc.target == 0]
    w = load_wine()
    yield "wine (class 0 vs 1, 2)", w.data[w.target == 0], w.data[w.target != 0]
    d = load_digits()
    yield "digits 8x8 (1 vs rest)", d.data[d.target == 1], d.data[d.target != 1]


def run(cmd):
    r = subprocess.run(cmd, capture_output=True, text=True)
    if r.returncode != 0:
        sys.exit(f"{' '.join(cmd)} failed:\n{r.stderr}")
    return r.stdout + r.stderr


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=3000)
    ap.add_argument("--out", default="target/ood-tabular")
    ap.add_argument("--bin", default="target/release")
    a = ap.parse_args()
    os.makedirs(a.out, exist_ok=True)
    rng = np.random.default_rng(0)
    scores = ["grad-norm", "paper", "recon"]
    print(f"{'table':<38} " + " ".join(f"{s:>10}" for s in scores) + f" {'IsoForest':>10}")
    means = {s: [] for s in scores + ["iforest"]}
    for name, normal, anomalous in tables():
        # Drop constant columns (digits has some): they carry no information and cannot be standardised.
        keep = normal.std(axis=0) > 0
        normal, anomalous = normal[:, keep], anomalous[:, keep]
        idx = rng.permutation(len(normal))
        n_train = int(0.7 * len(normal))
        train, test_in = normal[idx[:n_train]], normal[idx[n_train:]]
        if len(anomalous) > len(test_in) * 3:
            anomalous = anomalous[rng.choice(len(anomalous), len(test_in) * 3, replace=False)]
        test = np.vstack([test_in, anomalous])
        labels = np.r_[np.zeros(len(test_in)), np.ones(len(anomalous))].astype(int)
        tag = name.split(" ")[0]
        np.savetxt(f"{a.out}/{tag}-train.csv", train, delimiter=",")
        np.savetxt(f"{a.out}/{tag}-test.csv", test, delimiter=",")
        np.savetxt(f"{a.out}/{tag}-labels.csv", labels, fmt="%d")
        runp = f"{a.out}/{tag}-run"
        subprocess.run(["rm", "-rf", runp])
        run([f"{a.bin}/vpfb-train", "fit", "--data", f"csv:{a.out}/{tag}-train.csv", "--steps", str(a.steps),
             "--batch", "128", "--out", runp, "--no-eval"])
        run([f"{a.bin}/vpfb-train", "export", "--run", runp, "--out", f"{a.out}/{tag}.onnx"])
        row = []
        for s in scores:
            out = run([f"{a.bin}/vpfb", "score", "--model", f"{a.out}/{tag}.onnx", "--input", f"{a.out}/{tag}-test.csv",
                       "--score", s, "--labels", f"{a.out}/{tag}-labels.csv", "--out", f"{a.out}/{tag}-{s}.csv"])
            auc = float(out.split("AUROC")[1].split()[0])
            row.append(auc)
            means[s].append(auc)
        iso = IsolationForest(random_state=0).fit(train)
        iso_auc = roc_auc_score(labels, -iso.score_samples(test))
        means["iforest"].append(iso_auc)
        print(f"{name:<38} " + " ".join(f"{v:10.3f}" for v in row) + f" {iso_auc:10.3f}")
    print(f"{'mean':<38} " + " ".join(f"{np.mean(means[s]):10.3f}" for s in scores) + f" {np.mean(means['iforest']):10.3f}")


if __name__ == "__main__":
    main()
