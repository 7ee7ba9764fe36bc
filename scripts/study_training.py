#!/usr/bin/env python3
"""Training-recipe study: trains every (variant, data set, seed) with `vpfb-train fit` and prints the median
sample-quality ratio per variant and data set (sliced W2 of RK4-100 flow samples to true samples, over
the two-sample floor; lower is better, 1 is perfect). docs/training.md holds the table this produced.

Data sets: the six built-in 2-D sets; `rings`, a held-out 2-D set with thin ring structure in raw,
unstandardised units, written by this script to CSV (no other tool tunes on it); and, where scikit-learn
and statsmodels are installed, two tables (breast-cancer, 30 columns; randhie, 10 columns), scored
against their held-out rows.

    cargo build --release -p vpfb-trainer
    python3 scripts/study_training.py --variants 'old=--temb-weight 0.1;new=' [--seeds 0,1,2] \
        [--steps 8000] [--data moons,rings] [--jobs 2] [--out target/training-study]

Each run gets cores / jobs threads (two runs each spinning on both cores of a 2-core machine ran 25×
slower than one run alone). A variant is NAME=FLAGS (extra `vpfb-train fit` flags); variants are separated by `;`. Runs already
finished in --out are reused, so a study can be extended or resumed.
"""
import argparse, concurrent.futures as cf, csv, json, math, os, random, statistics, subprocess, sys

TOYS = ["moons", "circles", "8gaussians", "checkerboard", "spirals", "pinwheel"]


def write_rings(path, n=20000, seed=7):
    """Three interlocking thin rings (radius 40, width σ = 0.8) around (250, −120): raw units."""
    rng = random.Random(seed)
    centres = [(230.0, -120.0), (270.0, -120.0), (250.0, -85.0)]
    with open(path, "w") as f:
        f.write("x,y\n")
        for _ in range(n):
            cx, cy = rng.choice(centres)
            a = rng.uniform(0, 2 * math.pi)
            r = 40.0 + rng.gauss(0, 0.8)
            f.write(f"{cx + r * math.cos(a):.5f},{cy + r * math.sin(a):.5f}\n")


def write_tables(folder):
    """breast-cancer and randhie as CSV; skipped (with a note) without scikit-learn / statsmodels."""
    out = {}
    try:
        from sklearn.datasets import load_breast_cancer
        import statsmodels.api as sm
    except ImportError:
        print("(scikit-learn or statsmodels missing: the tables are skipped)", file=sys.stderr)
        return out
    for name, rows in [
        ("breast-cancer", load_breast_cancer().data),
        ("randhie", sm.datasets.randhie.load_pandas().data.values),
    ]:
        path = os.path.join(folder, f"{name}.csv")
        with open(path, "w", newline="") as f:
            csv.writer(f).writerows([[f"{v:.6g}" for v in row] for row in rows])
        out[name] = f"csv:{path}"
    return out


def train(binary, out, data, seed, steps, flags, threads):
    metrics = os.path.join(out, "metrics.json")
    if not os.path.exists(metrics):
        subprocess.run(["rm", "-rf", out])
        cmd = [binary, "fit", "--data", data, "--steps", str(steps), "--seed", str(seed),
               "--out", out, "--checkpoint-every", str(steps)] + flags.split()
        with open(out + ".log", "w") as log:
            env = dict(os.environ, RAYON_NUM_THREADS=str(threads))
            r = subprocess.run(cmd, stdout=log, stderr=subprocess.STDOUT, env=env)
        if r.returncode != 0:
            return math.nan, math.nan, -1
    m = json.load(open(metrics))
    q = m["sample_quality"]
    return q["ratio"], m["steps_per_s"], q.get("escaped", -1)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--variants", required=True)
    ap.add_argument("--seeds", default="0,1,2")
    ap.add_argument("--steps", type=int, default=8000)
    ap.add_argument("--data", default=",".join(TOYS + ["rings", "breast-cancer", "randhie"]))
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--out", default="target/training-study")
    ap.add_argument("--binary", default=os.environ.get("VPFB_TRAIN", "target/release/vpfb-train"))
    a = ap.parse_args()
    os.makedirs(a.out, exist_ok=True)
    sources = {t: t for t in TOYS}
    rings = os.path.join(a.out, "rings.csv")
    if not os.path.exists(rings):
        write_rings(rings)
    sources["rings"] = f"csv:{rings}"
    wanted = a.data.split(",")
    if any(d in ("breast-cancer", "randhie") for d in wanted):
        sources.update(write_tables(a.out))
    data = [d for d in wanted if d in sources]
    variants = []
    for v in a.variants.split(";"):
        name, _, flags = v.partition("=")
        variants.append((name.strip(), flags.strip()))
    seeds = [int(s) for s in a.seeds.split(",")]
    jobs = {}
    with cf.ThreadPoolExecutor(a.jobs) as pool:
        for name, flags in variants:
            for d in data:
                for s in seeds:
                    out = os.path.join(a.out, f"{name}--{d}--s{s}")
                    jobs[(name, d, s)] = pool.submit(train, a.binary, out, sources[d], s, a.steps, flags,
                                                   max(1, (os.cpu_count() or 1) // a.jobs))
        results = {k: f.result() for k, f in jobs.items()}
    with open(os.path.join(a.out, "runs.csv"), "w") as f:
        f.write("variant,data,seed,ratio,steps_per_s,escaped\n")
        for (name, d, s), (r, sps, esc) in sorted(results.items()):
            f.write(f"{name},{d},{s},{r:.4f},{sps:.1f},{esc}\n")
    print(f"median sample-quality ratio over seeds {a.seeds}, {a.steps} steps (lower is better)\n")
    print("| variant | flags | " + " | ".join(data) + " | worst | steps/s |")
    print("|---" * (len(data) + 4) + "|")
    for name, flags in variants:
        meds = [statistics.median(results[(name, d, s)][0] for s in seeds) for d in data]
        speed = statistics.median(results[(name, d, s)][1] for d in data for s in seeds)
        cells = " | ".join(f"{m:.2f}" for m in meds)
        print(f"| {name} | `{flags or '(defaults)'}` | {cells} | {max(meds):.2f} | {speed:.0f} |")


if __name__ == "__main__":
    main()
