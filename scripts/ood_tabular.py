#!/usr/bin/env python3
"""Anomaly-detection AUROC of vpfb on real tabular data, against classical detectors in the same run.

Each table is one class (in) against the others (out). Protocol: train `vpfb-train fit` on 60 % of
the normal rows (the trainer holds 10 % of those out for calibration and the detector), export (which
fits the multi-time detector), then score the other 40 % of the normal rows (label 0) and the
anomalies (label 1, at most 3x the normal test rows) with `vpfb score --score all --labels`. The
baselines are fitted on the same 60 %: IsolationForest, LOF (novelty), a Ledoit-Wolf Mahalanobis
distance on the standardised raw features, and the squared norm of the standardised features.

The tables ship inside the scikit-learn wheel (nothing is downloaded):
    cargo build --release -p vpfb-trainer -p vpfb-cli
    python3 -m pip install scikit-learn numpy
    python3 scripts/ood_tabular.py [--steps 2000] [--out target/ood-tabular]
"""
import argparse, os, subprocess, sys, time

import numpy as np
from sklearn.covariance import LedoitWolf
from sklearn.datasets import load_breast_cancer, load_digits, load_iris, load_wine
from sklearn.ensemble import IsolationForest
from sklearn.metrics import roc_auc_score
from sklearn.neighbors import LocalOutlierFactor


def tables():
    bc = load_breast_cancer()  # target 1 = benign
    yield "breast-cancer benign", bc.data[bc.target == 1], bc.data[bc.target == 0]
    for name, data in [("wine", load_wine()), ("iris", load_iris())]:
        for c, label in enumerate(data.target_names):
            yield f"{name} {label}", data.data[data.target == c], data.data[data.target != c]
    d = load_digits()
    for c in (0, 1, 7):
        yield f"digits-8x8 {c}", d.data[d.target == c], d.data[d.target != c]


def run(cmd):
    r = subprocess.run(cmd, capture_output=True, text=True)
    if r.returncode != 0:
        sys.exit(f"{' '.join(cmd)} failed:\n{r.stderr}")
    return r.stdout + r.stderr


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--steps", type=int, default=2000)
    ap.add_argument("--out", default="target/ood-tabular")
    ap.add_argument("--bin", default="target/release")
    a = ap.parse_args()
    os.makedirs(a.out, exist_ok=True)
    rng = np.random.default_rng(0)
    cols = ["detector", "grad-norm", "recon", "paper", "IsoForest", "LOF", "Mahalanobis", "norm2"]
    print("| table | rows in / out | " + " | ".join(cols) + " |")
    print("|---|---|" + "---|" * len(cols))
    results = []
    per_stat = {}
    for name, normal, anomalous in tables():
        idx = rng.permutation(len(normal))
        n_train = int(0.6 * len(normal))
        train, test_in = normal[idx[:n_train]], normal[idx[n_train:]]
        # Columns (nearly) constant on the training rows carry nothing and cannot be standardised once
        # the trainer holds out its validation rows: keep those where at least 10 rows differ from
        # the most common value.
        def varied(col):
            _, counts = np.unique(col, return_counts=True)
            return len(col) - counts.max() >= 10
        keep = np.array([varied(train[:, j]) for j in range(train.shape[1])])
        train, test_in, anomalous = train[:, keep], test_in[:, keep], anomalous[:, keep]
        if len(anomalous) > len(test_in) * 3:
            anomalous = anomalous[rng.choice(len(anomalous), len(test_in) * 3, replace=False)]
        test = np.vstack([test_in, anomalous])
        labels = np.r_[np.zeros(len(test_in)), np.ones(len(anomalous))].astype(int)
        tag = name.replace(" ", "-")
        np.savetxt(f"{a.out}/{tag}-train.csv", train, delimiter=",")
        np.savetxt(f"{a.out}/{tag}-test.csv", test, delimiter=",")
        np.savetxt(f"{a.out}/{tag}-labels.csv", labels, fmt="%d")
        runp = f"{a.out}/{tag}-run"
        subprocess.run(["rm", "-rf", runp])
        run([f"{a.bin}/vpfb-train", "fit", "--data", f"csv:{a.out}/{tag}-train.csv", "--steps", str(a.steps),
             "--batch", "128", "--lr", "1e-3", "--lr-schedule", "constant", "--out", runp, "--no-eval"])
        run([f"{a.bin}/vpfb-train", "export", "--run", runp, "--out", f"{a.out}/{tag}.onnx"])
        out = run([f"{a.bin}/vpfb", "score", "--model", f"{a.out}/{tag}.onnx", "--input", f"{a.out}/{tag}-test.csv",
                   "--score", "all", "--labels", f"{a.out}/{tag}-labels.csv", "--out", f"{a.out}/{tag}-all.csv"])
        aurocs = {}
        for line in out.splitlines():
            parts = line.split()
            if len(parts) == 3 and parts[0] != "column":
                try:
                    aurocs[parts[0]] = float(parts[1])
                except ValueError:
                    pass
        row = {c: aurocs[c] for c in ["detector", "grad-norm", "recon", "paper"]}
        for k, v in aurocs.items():
            if "@" in k or k == "x_norm2":
                per_stat.setdefault(k.split("@")[0], []).append(v)
        mu, sd = train.mean(0), train.std(0)
        z_tr, z_te = (train - mu) / sd, (test - mu) / sd
        row["IsoForest"] = roc_auc_score(labels, -IsolationForest(random_state=0).fit(train).score_samples(test))
        k = min(20, len(train) - 1)
        row["LOF"] = roc_auc_score(labels, -LocalOutlierFactor(n_neighbors=k, novelty=True).fit(z_tr).score_samples(z_te))
        row["Mahalanobis"] = roc_auc_score(labels, LedoitWolf().fit(z_tr).mahalanobis(z_te))
        row["norm2"] = roc_auc_score(labels, (z_te ** 2).sum(1))
        results.append(row)
        print(f"| {name} | {len(train)}+{len(test_in)} / {len(anomalous)} | "
              + " | ".join(f"{row[c]:.3f}" for c in cols) + " |", flush=True)
    print("| **mean** | | " + " | ".join(f"**{np.mean([r[c] for r in results]):.3f}**" for c in cols) + " |")
    print("\nMean AUROC of each flow statistic over the tables (either direction shown; the detector"
          " uses all of them, fitted on in-distribution data only):")
    for k, v in sorted(per_stat.items()):
        print(f"  {k:<14} {np.mean(v):.3f}")


if __name__ == "__main__":
    main()
