#!/usr/bin/env python3
"""Imputation error and time of `vpfb inpaint` against the imputers people use, in one run.

Protocol per table: shuffle (seed 0), keep 80 % of the rows complete for fitting, and remove cells of
the other 20 % completely at random (each cell independently with probability p = 10 %, 30 %, 50 %;
a row may lose every cell). Every method sees the same complete fitting rows and the same holed test
rows:
  - vpfb: `vpfb-train fit` on the fitting rows (raw units; the trainer standardises), exported, then
    `vpfb inpaint --input holes.csv` (empty cells mark each row's missing values), once per variant;
  - mean imputation (fitting-row means);
  - scikit-learn KNNImputer (k = 5) and IterativeImputer (BayesianRidge, 10 rounds), fitted on the
    fitting rows stacked above the holed test rows, so they may also use the test rows' known cells.
The error is the RMSE over the removed cells in standardised units (fitting-row mean and standard
deviation). Times are wall seconds of the imputation alone (vpfb: the `vpfb inpaint` process, load
included; training time is listed separately).

Tables ship with scikit-learn and statsmodels (nothing is downloaded):
    cargo build --release -p vpfb-trainer -p vpfb-cli
    python3 -m pip install numpy scikit-learn statsmodels
    python3 scripts/bench_impute.py [--steps 4000] [--variants 'langevin;langevin --draws 8'] [--out target/bench-impute]
A variant is the `vpfb inpaint` options after --conditioning, variants separated by `;`.
"""
import argparse, os, subprocess, sys, time

import numpy as np
from sklearn.datasets import load_breast_cancer, load_diabetes, load_digits, load_iris, load_wine
from sklearn.experimental import enable_iterative_imputer  # noqa: F401
from sklearn.impute import IterativeImputer, KNNImputer


def tables():
    yield "iris", load_iris().data
    yield "wine", load_wine().data
    yield "breast-cancer", load_breast_cancer().data
    yield "diabetes", load_diabetes(scaled=False).data
    yield "digits-8x8", load_digits().data
    try:
        import statsmodels.api as sm
        yield "macrodata", sm.datasets.macrodata.load_pandas().data.drop(columns=["year", "quarter"]).values
        yield "randhie", sm.datasets.randhie.load_pandas().data.values
        yield "star98", sm.datasets.star98.load_pandas().data.values
    except ImportError:
        print("(statsmodels not installed: its tables are skipped)", file=sys.stderr)


def run(cmd):
    t = time.perf_counter()
    r = subprocess.run(cmd, capture_output=True, text=True)
    if r.returncode != 0:
        sys.exit(f"{' '.join(cmd)} failed:\n{r.stderr}")
    return time.perf_counter() - t


def varied(col):
    """Columns (nearly) constant on the fitting rows carry nothing and cannot be standardised."""
    _, counts = np.unique(col, return_counts=True)
    return len(col) - counts.max() >= 10


def write_holed(path, x):
    with open(path, "w") as f:
        for row in x:
            f.write(",".join("" if np.isnan(v) else repr(float(v)) for v in row) + "\n")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--steps", type=int, default=4000)
    ap.add_argument("--rates", default="0.1,0.3,0.5")
    ap.add_argument("--variants", default="langevin;langevin --draws 8;path;masked")
    ap.add_argument("--tables", default="", help="comma-separated subset of table names")
    ap.add_argument("--keep-models", action="store_true", help="reuse models already in --out")
    ap.add_argument("--max-test", type=int, default=1000, help="at most this many test rows")
    ap.add_argument("--out", default="target/bench-impute")
    ap.add_argument("--bin", default="target/release")
    a = ap.parse_args()
    os.makedirs(a.out, exist_ok=True)
    rates = [float(r) for r in a.rates.split(",")]
    variants = [v.split() for v in a.variants.split(";")]
    wanted = set(filter(None, a.tables.split(",")))
    vcols = ["vpfb " + " ".join(v).replace("--", "") for v in variants]
    cols = vcols + ["mean", "KNN", "Iterative"]
    print("RMSE over removed cells (standardised units); time in seconds below each table\n")
    print("| table | rows fit / test × cols | missing | " + " | ".join(cols) + " |")
    print("|---|---|---|" + "---|" * len(cols))
    wins, total = 0, 0
    for name, data in tables():
        if wanted and name not in wanted:
            continue
        rng = np.random.default_rng(0)
        data = data[rng.permutation(len(data))].astype(float)
        n_fit = int(0.8 * len(data))
        fit, test = data[:n_fit], data[n_fit:][: a.max_test]
        keep = np.array([varied(fit[:, j]) for j in range(fit.shape[1])])
        fit, test = fit[:, keep], test[:, keep]
        mu, sd = fit.mean(0), fit.std(0)
        tag = f"{a.out}/{name}"
        np.savetxt(f"{tag}-fit.csv", fit, delimiter=",")
        t_train = 0.0
        if not (a.keep_models and os.path.exists(f"{tag}.onnx")):
            subprocess.run(["rm", "-rf", f"{tag}-run"])
            t_train = run([f"{a.bin}/vpfb-train", "fit", "--data", f"csv:{tag}-fit.csv", "--steps", str(a.steps),
                           "--batch", "256", "--lr", "1e-3", "--lr-schedule", "constant", "--out", f"{tag}-run", "--no-eval"])
            t_train += run([f"{a.bin}/vpfb-train", "export", "--run", f"{tag}-run", "--out", f"{tag}.onnx"])
        times_rows = []
        for p in rates:
            holes = rng.random(test.shape) < p
            holed = np.where(holes, np.nan, test)
            write_holed(f"{tag}-holes.csv", holed)
            rmse, secs = {}, {}
            for v, label in zip(variants, vcols):
                args = ["--conditioning"] + v
                secs[label] = run([f"{a.bin}/vpfb", "inpaint", "--model", f"{tag}.onnx", "--input",
                                   f"{tag}-holes.csv", "--out", f"{tag}-filled.csv"] + args)
                filled = np.loadtxt(f"{tag}-filled.csv", delimiter=",", skiprows=1, ndmin=2)
                if not np.array_equal(filled[~holes], test[~holes]):
                    sys.exit(f"{name}: vpfb changed known cells")
                rmse[label] = filled
            t = time.perf_counter()
            rmse["mean"] = np.where(holes, mu, test)
            secs["mean"] = time.perf_counter() - t
            stacked = np.vstack([fit, holed])
            for label, imp in [("KNN", KNNImputer(n_neighbors=5)),
                               ("Iterative", IterativeImputer(max_iter=10, random_state=0))]:
                t = time.perf_counter()
                rmse[label] = imp.fit_transform(stacked)[len(fit):]
                secs[label] = time.perf_counter() - t
            err = {k: float(np.sqrt(np.mean((((v - test) / sd)[holes]) ** 2))) for k, v in rmse.items()}
            best_vpfb = min(err[c] for c in vcols)
            total += 1
            wins += best_vpfb < err["KNN"]
            best = min(err.values())
            cells = " | ".join(f"**{err[c]:.3f}**" if err[c] == best else f"{err[c]:.3f}" for c in cols)
            print(f"| {name} | {len(fit)} / {len(test)} × {fit.shape[1]} | {p:.0%} | {cells} |", flush=True)
            times_rows.append(" / ".join(f"{secs[c]:.2f}" for c in cols))
        print(f"| ↳ seconds (train {t_train:.0f} s) | | | " + " | ".join(
            " / ".join(r.split(" / ")[i] for r in times_rows) for i in range(len(cols))) + " |", flush=True)
    print(f"\nbest vpfb variant below KNNImputer in {wins} of {total} (table, rate) cases")


if __name__ == "__main__":
    main()
