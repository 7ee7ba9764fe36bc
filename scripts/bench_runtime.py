#!/usr/bin/env python3
"""vpfb's runtime against onnxruntime-python on the shipped models, each pair timed in the same run
(this machine is shared and noisy: the ratios mean something, the absolute times less so).

    cargo build --release -p vpfb-cli                      # the native evaluator
    cargo build -p vpfb-cli --features ort                 # optional: the ort backend too (its
                                                           # time is spent in libonnxruntime)
    python3 -m pip install onnx onnxruntime numpy
    ORT_DYLIB_PATH=.../onnxruntime/capi/libonnxruntime.so.1.x \\
    python3 scripts/bench_runtime.py [--repeats 5] [--ort-vpfb target/debug/vpfb]

Measures, one thread each unless stated:
  - MLP (models/moons.onnx): RK4, 4 096 points x 100 steps: `vpfb sample` vs the same RK4 loop
    over an onnxruntime session (400 runs of batch 4 096);
  - UNet (models/fashion-mnist.onnx): 32 images x 8 Euler steps: `vpfb sample` vs the same loop;
    evaluation throughput at batch 1 and 32 (`vpfb bench`) vs onnxruntime, and 2 threads vs 1;
  - the size of the stripped release binary.
Both sides compute the same outputs: the flows the velocity alone (vpfb's samplers ask for
nothing else), the throughput rows the contract evaluation (psi, velocity, dpsi_dt).
A ratio above 1 means vpfb is faster. Each row alternates the two sides `--repeats` times and
prints the medians of each side and the median of the per-pair ratios (the ratio printed): on a
shared machine whose speed drifts by tens of percent within a minute, pairs taken seconds apart
compare like with like.
"""
import argparse, os, re, shutil, statistics, subprocess, sys, tempfile, time

import numpy as np
import onnx
import onnx.utils
import onnxruntime as ort

CONTRACT = ["psi", "velocity", "dpsi_dt"]
FETCHES_ONLY = ort.RunOptions()
FETCHES_ONLY.only_execute_path_to_fetches = True


def subgraph(path, outputs):
    """The file's subgraph from x and t to `outputs`. onnxruntime runs every node of a session
    whatever outputs a call asks for (the in-graph detector and the Hessian-vector product cost it
    ~10x on the moons file), so it gets only what is asked: its best case, and what vpfb's own ort
    backend does too."""
    return onnx.utils.Extractor(onnx.load(path)).extract_model(["x", "t"], outputs).SerializeToString()
T0, T1 = 1e-5, 1.0 - 1e-5


def session(path, threads, outputs=CONTRACT):
    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    so.inter_op_num_threads = 1
    return ort.InferenceSession(subgraph(path, outputs), so, providers=["CPUExecutionProvider"])


def ort_flow(path, shape, n, steps, solver):
    """Seconds for one flow integration of n records over `steps` steps, like `vpfb sample`
    (which loads the model too, so the session is created inside the timing)."""
    rng = np.random.default_rng(0)
    x = rng.standard_normal((n, *shape)).astype(np.float32)
    h = (T1 - T0) / steps
    start = time.perf_counter()
    sess = session(path, 1, ["velocity"])

    def v(x, t):
        return sess.run(["velocity"], {"x": x, "t": np.full(n, t, np.float32)}, FETCHES_ONLY)[0]

    for i in range(steps):
        t = T0 + i * h
        if solver == "euler":
            x = x + np.float32(h) * v(x, t)
        else:
            k1 = v(x, t)
            k2 = v(x + np.float32(h / 2) * k1, t + h / 2)
            k3 = v(x + np.float32(h / 2) * k2, t + h / 2)
            k4 = v(x + np.float32(h) * k3, t + h)
            x = x + np.float32(h / 6) * (k1 + 2 * k2 + 2 * k3 + k4)
    return time.perf_counter() - start


def vpfb_flow(binary, model, n, steps, solver, backend="tract", threads=1):
    out = os.path.join(tempfile.mkdtemp(), "s.npy")
    cmd = [binary, "sample", "--model", model, "-n", str(n), "--solver", solver, "--steps", str(steps),
           "--threads", str(threads), "--backend", backend, "--out", out]
    start = time.perf_counter()
    subprocess.run(cmd, check=True, capture_output=True)
    return time.perf_counter() - start


def ort_throughput(sess, shape, n, seconds):
    x = np.sin(np.arange(n * int(np.prod(shape)), dtype=np.float32) * 0.37).reshape(n, *shape)
    t = np.full(n, 0.5, np.float32)
    sess.run(CONTRACT, {"x": x, "t": t}, FETCHES_ONLY)
    calls, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds or calls < 3:
        sess.run(CONTRACT, {"x": x, "t": t}, FETCHES_ONLY)
        calls += 1
    return calls * n / (time.perf_counter() - start)


def vpfb_throughput(binary, model, batches, threads, seconds, backend):
    """records/s per batch size from `vpfb bench`."""
    out = subprocess.run([binary, "bench", "--model", model, "--batches", ",".join(map(str, batches)),
                          "--threads", str(threads), "--seconds", str(seconds), "--samples", "0",
                          "--backends", backend],
                         check=True, capture_output=True, text=True).stdout
    rates = {}
    for line in out.splitlines():
        m = re.match(r"\s*" + backend + r"\s+(\d+)\s+(\d+)\s+([\d.]+)", line)
        if m and int(m.group(1)) == threads:
            rates[int(m.group(2))] = float(m.group(3))
    return rates


def median_pair(f, g, repeats):
    """Medians of f() and g() run in turn `repeats` times (interleaved, so both see the same
    load), and the median of the per-pair ratios f/g, which moves least with the machine's load."""
    a, b = [], []
    for _ in range(repeats):
        a.append(f())
        b.append(g())
    return statistics.median(a), statistics.median(b), statistics.median(x / y for x, y in zip(a, b))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--vpfb", default="target/release/vpfb")
    ap.add_argument("--ort-vpfb", default=None, help="a vpfb built with --features ort (optional)")
    ap.add_argument("--backend", default="native", help="vpfb's backend: native (default) or tract")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--seconds", type=float, default=2.0)
    a = ap.parse_args()
    rows = []

    def row(what, ours, theirs, unit, higher_is_better, pair_ratio):
        ratio = pair_ratio if higher_is_better else 1 / pair_ratio
        rows.append((what, ours, theirs, unit, ratio))
        print(f"{what:<44} vpfb {ours:>10.3f}  onnxruntime {theirs:>10.3f} {unit:<9} ratio {ratio:5.2f}x",
              flush=True)

    moons, fm = "models/moons.onnx", "models/fashion-mnist.onnx"
    b = a.backend
    v, o, r = median_pair(lambda: vpfb_flow(a.vpfb, moons, 4096, 100, "rk4", backend=b),
                          lambda: ort_flow(moons, (2,), 4096, 100, "rk4"), a.repeats)
    row(f"MLP RK4 4096 x 100, 1 thread, {b}", v, o, "s", False, r)
    if a.ort_vpfb:
        v, o, r = median_pair(lambda: vpfb_flow(a.ort_vpfb, moons, 4096, 100, "rk4", backend="ort"),
                              lambda: ort_flow(moons, (2,), 4096, 100, "rk4"), a.repeats)
        row("MLP RK4 4096 x 100, 1 thread, vpfb --backend ort", v, o, "s", False, r)
    u1 = session(fm, 1)
    v, o, r = median_pair(lambda: vpfb_flow(a.vpfb, fm, 32, 8, "euler", backend=b),
                          lambda: ort_flow(fm, (1, 28, 28), 32, 8, "euler"), a.repeats)
    row(f"UNet 32 images x 8 Euler, 1 thread, {b}", v, o, "s", False, r)
    for n in (1, 32):
        ours, theirs, r = median_pair(lambda: vpfb_throughput(a.vpfb, fm, [n], 1, a.seconds, b)[n],
                                      lambda: ort_throughput(u1, (1, 28, 28), n, a.seconds), a.repeats)
        row(f"UNet evaluation, batch {n}, 1 thread, {b}", ours, theirs, "images/s", True, r)
    _, _, r = median_pair(lambda: vpfb_throughput(a.vpfb, fm, [32], 2, a.seconds, b)[32],
                          lambda: vpfb_throughput(a.vpfb, fm, [32], 1, a.seconds, b)[32], a.repeats)
    print(f"{'UNet evaluation, batch 32: 2 threads / 1':<44} {r:5.2f}x ({b})")
    stripped = os.path.join(tempfile.mkdtemp(), "vpfb")
    shutil.copy(a.vpfb, stripped)
    subprocess.run(["strip", stripped], check=True)
    print(f"{'stripped release vpfb':<44} {os.path.getsize(stripped) / 1e6:.1f} MB "
          f"(as built: {os.path.getsize(a.vpfb) / 1e6:.1f} MB)")


if __name__ == "__main__":
    sys.exit(main())
