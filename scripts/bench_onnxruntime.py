#!/usr/bin/env python3
"""onnxruntime-python throughput on a vpfb model file, for comparison with `vpfb bench`.

    python3 -m pip install onnxruntime numpy
    python3 scripts/bench_onnxruntime.py [models/moons.onnx] [--seconds 1]
"""
import argparse, time

import numpy as np
import onnxruntime as ort


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("model", nargs="?", default="models/moons.onnx")
    ap.add_argument("--seconds", type=float, default=1.0)
    a = ap.parse_args()
    print(f"{'backend':<16} {'threads':>7} {'batch':>7} {'points/s':>14} {'ms/batch':>12}")
    for threads in (1, 2):
        so = ort.SessionOptions()
        so.intra_op_num_threads = threads
        sess = ort.InferenceSession(a.model, so, providers=["CPUExecutionProvider"])
        d = sess.get_inputs()[0].shape[1]
        for n in (1, 4096):
            x = np.sin(np.arange(n * d, dtype=np.float32) * 0.37).reshape(n, d)
            t = np.full(n, 0.5, dtype=np.float32)
            sess.run(None, {"x": x, "t": t})
            calls, start = 0, time.perf_counter()
            while time.perf_counter() - start < a.seconds or calls < 3:
                sess.run(None, {"x": x, "t": t})
                calls += 1
            secs = time.perf_counter() - start
            print(f"{'onnxruntime-py':<16} {threads:>7} {n:>7} {calls * n / secs:>14.0f} {secs * 1e3 / calls:>12.3f}")


if __name__ == "__main__":
    main()
