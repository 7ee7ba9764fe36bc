#!/usr/bin/env python3
"""Composition of separately trained 2-D models: do composed samples land where both densities are high?

Models: the shipped moons model, the shipped checkerboard model, and two circles models trained here
(one with its own normalisation, one with `--normalization-from models/moons.onnx`, so it shares the
moons model's space exactly). For each pair, `vpfb compose` (weights 1, 1 unless --weights; the
first model's space; --sampler langevin unless --sampler flow) draws samples, and so does `vpfb sample` for each model alone. A sample is "in" a
model when its score is below that model's calibrated threshold (the 95 % quantile on held-out training
data): `recon` is ψ(x, 1) itself, `detector` the model's fitted multi-time OOD detector (docs/ood.md),
which separates in from out much more sharply. The table gives the fraction of samples in both models.

    cargo build --release -p vpfb-trainer -p vpfb-cli
    python3 scripts/compose_demo.py [--n 4000] [--steps 4000] [--out target/compose-demo]
Only the Python standard library is needed.
"""
import argparse, os, subprocess, sys


def run(cmd):
    r = subprocess.run(cmd, capture_output=True, text=True)
    if r.returncode != 0:
        sys.exit(f"{' '.join(cmd)} failed:\n{r.stderr}")
    return r.stderr


def outlier_flags(vpfb, model, samples, out, score):
    run([vpfb, "score", "--model", model, "--score", score, "--input", samples, "--out", out])
    with open(out) as f:
        next(f)
        return [line.strip().split(",")[1] == "1" for line in f if line.strip()]


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=4000)
    ap.add_argument("--steps", type=int, default=4000)
    ap.add_argument("--weights", default="1,1")
    ap.add_argument("--sampler", default="langevin", help="vpfb compose --sampler: langevin or flow")
    ap.add_argument("--out", default="target/compose-demo")
    ap.add_argument("--bin", default="target/release")
    a = ap.parse_args()
    os.makedirs(a.out, exist_ok=True)
    vpfb, train = f"{a.bin}/vpfb", f"{a.bin}/vpfb-train"
    models = {"moons": "models/moons.onnx", "checkerboard": "models/checkerboard.onnx"}
    for name, extra in [("circles", []), ("circles-in-moons-space", ["--normalization-from", "models/moons.onnx"])]:
        path = f"{a.out}/{name}.onnx"
        if not os.path.exists(path):
            run_dir = f"{a.out}/{name}-run"
            subprocess.run(["rm", "-rf", run_dir])
            run([train, "fit", "--data", "circles", "--steps", str(a.steps), "--batch", "512", "--lr", "1e-3", "--lr-schedule", "constant", "--out", run_dir, "--no-eval"] + extra)
            run([train, "export", "--run", run_dir, "--out", path])
        models[name] = path
    pairs = [("moons", "checkerboard"), ("moons", "circles"), ("moons", "circles-in-moons-space")]
    w = a.weights.split(",")
    print(f"Fraction of {a.n} samples inside both models (score below each model's 95 % quantile); "
          f"composition weights {w[0]}, {w[1]}, sampler {a.sampler}\n")
    print("| pair | normalisations | score | composed | first alone | second alone |")
    print("|---|---|---|---|---|---|")
    for first, second in pairs:
        fracs, mapped = {"recon": [], "detector": []}, False
        for label, cmd in [
            ("composed", ["compose", "--model", models[first], "--model", models[second],
                          "--weight", w[0], "--weight", w[1], "--sampler", a.sampler]),
            ("first", ["sample", "--model", models[first]]),
            ("second", ["sample", "--model", models[second]]),
        ]:
            samples = f"{a.out}/{first}+{second}-{label}.csv"
            log = run([vpfb] + cmd + ["-n", str(a.n), "--seed", "1", "--out", samples])
            mapped |= "normalises its data differently" in log
            for score in fracs:
                flags = [outlier_flags(vpfb, models[m], samples, f"{a.out}/scores.csv", score)
                         for m in (first, second)]
                fracs[score].append(sum(1 for p, q in zip(*flags) if not p and not q) / a.n)
        norms = "differ (mapped)" if mapped else "shared"
        for score, f in fracs.items():
            print(f"| {first} × {second} | {norms} | {score} | **{f[0]:.3f}** | {f[1]:.3f} | {f[2]:.3f} |", flush=True)


if __name__ == "__main__":
    main()
