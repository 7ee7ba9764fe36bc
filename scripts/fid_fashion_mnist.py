#!/usr/bin/env python3
"""Sample quality of a Fashion-MNIST model as a Fréchet distance on a small classifier's features.

The Fréchet Inception Distance needs Inception weights downloaded from the internet; this is the same
measure on features everyone can recompute offline. A scikit-learn MLP classifier (784 → 256 → 64 → 10,
ReLU, Adam, fixed seed) is trained here on the 60 000 Fashion-MNIST training images (pixels / 255); its
64 second-hidden-layer activations are the features. For each sample file the script prints

    FD = ‖μ_s − μ_r‖² + Tr(Σ_s + Σ_r − 2 (Σ_s Σ_r)^½)

between the samples' features and those of the 10 000 test images (the reference), and, as the floor
at the same sample count, the distance of as many *training* images (the first N) to the same reference.
Lower is better; a model cannot be expected to go below the floor. The classifier's test accuracy is
printed as a sanity check of the features.

Samples are `.npy` files of raw pixels (0–255, [n, 784] or [n, 28, 28]), as written by
    vpfb sample --model models/fashion-mnist.onnx -n 1000 --solver dopri5 --out samples.npy

Needs: the Debian package dataset-fashion-mnist, numpy, scikit-learn.
    python3 scripts/fid_fashion_mnist.py samples-old.npy samples-new.npy
"""
import argparse, os, sys, time, warnings

import numpy as np
from sklearn.exceptions import ConvergenceWarning
from sklearn.neural_network import MLPClassifier

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from idx import read_idx


def features(clf, images):
    """Activations of the classifier's last hidden layer for uint8-range images [n, 28, 28]."""
    h = np.asarray(images, dtype=np.float64).reshape(len(images), -1) / 255.0
    for w, b in zip(clf.coefs_[:-1], clf.intercepts_[:-1]):
        h = np.maximum(h @ w + b, 0.0)
    return h


def psd_sqrt(c):
    w, v = np.linalg.eigh((c + c.T) / 2)
    return (v * np.sqrt(np.clip(w, 0, None))) @ v.T


def frechet(a, b):
    """Fréchet distance of two Gaussians fitted to feature rows. Tr((Σa Σb)^½) is computed as
    Tr((Σa^½ Σb Σa^½)^½) from symmetric eigen-decompositions, which stays exact when ReLU units
    that never fire make a covariance singular."""
    mu_a, mu_b = a.mean(0), b.mean(0)
    cov_a, cov_b = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    s = psd_sqrt(cov_a)
    m = s @ cov_b @ s
    root_trace = np.sqrt(np.clip(np.linalg.eigvalsh((m + m.T) / 2), 0, None)).sum()
    return float(((mu_a - mu_b) ** 2).sum() + np.trace(cov_a) + np.trace(cov_b) - 2.0 * root_trace)


def load_samples(path):
    x = np.load(path)
    if x.ndim < 2 or int(np.prod(x.shape[1:])) != 784:
        sys.exit(f"{path}: expected 784 pixel values per sample ([n, 784] as `vpfb sample` writes, "
                 f"or [n, 28, 28]), got shape {list(x.shape)}")
    x = x.reshape(len(x), 28, 28)
    if not np.isfinite(x).all():
        sys.exit(f"{path}: holds non-finite values")
    return np.clip(x, 0, 255)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("samples", nargs="+", help=".npy files of generated images (raw 0–255 pixels)")
    ap.add_argument("--fashion", default="/usr/share/datasets/fashion-mnist")
    ap.add_argument("--seed", type=int, default=0, help="classifier seed")
    ap.add_argument("--epochs", type=int, default=30, help="classifier training epochs")
    args = ap.parse_args()

    samples = {p: load_samples(p) for p in args.samples}
    train = read_idx(os.path.join(args.fashion, "train-images-idx3-ubyte.gz"))
    train_y = read_idx(os.path.join(args.fashion, "train-labels-idx1-ubyte.gz"))
    test = read_idx(os.path.join(args.fashion, "t10k-images-idx3-ubyte.gz"))
    test_y = read_idx(os.path.join(args.fashion, "t10k-labels-idx1-ubyte.gz"))

    t0 = time.time()
    clf = MLPClassifier(hidden_layer_sizes=(256, 64), max_iter=args.epochs, batch_size=256,
                        learning_rate_init=1e-3, random_state=args.seed)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        clf.fit(train.reshape(len(train), -1) / 255.0, train_y)
    acc = clf.score(test.reshape(len(test), -1) / 255.0, test_y)
    print(f"classifier 784-256-64-10, seed {args.seed}, {args.epochs} epochs: test accuracy {acc:.4f} "
          f"({time.time() - t0:.0f} s)")

    ref = features(clf, test)
    floors = {}
    for path, x in samples.items():
        n = len(x)
        if n < 65:
            sys.exit(f"{path}: {n} samples; the 64-feature covariance needs at least 65")
        if n not in floors:
            floors[n] = frechet(features(clf, train[:n]), ref)
            print(f"floor: {n} training images vs the 10 000 test images: FD {floors[n]:.3f}")
        print(f"{path}: {n} samples: FD {frechet(features(clf, x), ref):.3f}")


if __name__ == "__main__":
    main()
