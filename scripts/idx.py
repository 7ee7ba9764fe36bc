"""IDX image files (the MNIST format, gzipped or not) for the OOD scripts."""
import gzip
import sys

import numpy as np


def read_idx(path):
    raw = open(path, "rb").read()
    if raw[:2] == b"\x1f\x8b":
        raw = gzip.decompress(raw)
    if raw[2] != 0x08:
        sys.exit(f"{path}: not an unsigned-byte IDX file")
    rank = raw[3]
    dims = [int.from_bytes(raw[4 + 4 * i: 8 + 4 * i], "big") for i in range(rank)]
    return np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * rank).reshape(dims)


def write_idx(path, images):
    images = np.ascontiguousarray(images, dtype=np.uint8)
    with open(path, "wb") as f:
        f.write(bytes([0, 0, 0x08, images.ndim]))
        for d in images.shape:
            f.write(int(d).to_bytes(4, "big"))
        f.write(images.tobytes())
