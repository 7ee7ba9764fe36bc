#!/usr/bin/env bash
# Builds `vpfb-train` with the `cuda` feature on a machine without a CUDA toolkit, from NVIDIA's
# PyPI wheels (no root, no system packages, nothing outside the package registries).
#
#   bash scripts/build-cuda.sh            # toolkit in target/cuda-toolkit, binary in target/cuda/release
#   bash scripts/build-cuda.sh --bundle   # also target/cuda/dist: binary + the CUDA libraries it loads
#
# CUDA version: 13.0. PyPI ships the `nvcc` compiler only in the CUDA 13 wheels (the *-cu12 nvcc wheels
# hold ptxas and libnvvm but neither nvcc nor cicc), so the toolkit is 13.0 throughout; running the result needs an
# NVIDIA driver of the R580 series or newer. GPU architecture: CUDA_COMPUTE_CAP (default 90, H100/H200).
#
# Linking: Candle links the CUDA driver library (libcuda.so.1) directly. The wheels do not carry the
# driver, so the script generates a link-time stub from cuda.h, as the toolkit's lib64/stubs does; the
# real driver is loaded at run time. cuBLAS, cuRAND and NVRTC come from their wheels.
set -euo pipefail
cd "$(dirname "$0")/.."

BUNDLE=0
[[ "${1:-}" == "--bundle" ]] && BUNDLE=1
TOOLKIT="${VPFB_CUDA_TOOLKIT:-$PWD/target/cuda-toolkit}"
export CUDA_COMPUTE_CAP="${CUDA_COMPUTE_CAP:-90}"
PY="${PYTHON:-python3}"

WHEELS=(
  nvidia-cuda-nvcc==13.0.88
  nvidia-cuda-crt==13.0.88
  nvidia-nvvm==13.0.88
  nvidia-cuda-runtime==13.0.96
  nvidia-cuda-cccl==13.0.85
  nvidia-cuda-nvrtc==13.0.88
  nvidia-cublas==13.0.0.19
  nvidia-curand==10.4.0.35
)

if [[ ! -e "$TOOLKIT/py/nvidia/cu13/bin/nvcc" || ! -e "$TOOLKIT/py/nvidia/cu13/nvvm/bin/cicc" ]]; then
  echo "== installing the CUDA 13.0 toolkit wheels into $TOOLKIT/py"
  "$PY" -m pip install --quiet --no-deps --upgrade --target "$TOOLKIT/py" "${WHEELS[@]}"
fi
ROOT="$TOOLKIT/py/nvidia/cu13"
chmod +x "$ROOT"/bin/* "$ROOT"/nvvm/bin/* 2>/dev/null || true

# Unversioned names for the linker, and the driver stub.
LIB="$TOOLKIT/lib"
mkdir -p "$LIB"
for so in "$ROOT"/lib/lib*.so.*; do
  base="$(basename "$so")"
  ln -sf "$so" "$LIB/${base%%.so.*}.so"
done
if [[ ! -f "$LIB/libcuda.so" || "$ROOT/include/cuda.h" -nt "$LIB/libcuda.so" ]]; then
  echo "== generating the libcuda.so link stub from cuda.h"
  # Every driver entry point cuda.h declares, after its version macros (cuMemAlloc → cuMemAlloc_v2).
  gcc -E -P -I "$ROOT/include" "$ROOT/include/cuda.h" \
    | grep -oE '\bcu[A-Z][A-Za-z0-9_]*[[:space:]]*\(' | tr -d '( \t' | sort -u \
    | awk '{ printf "int %s(void) { return 100; }\n", $1 }' > "$TOOLKIT/cuda_stub.c"
  # 100 = CUDA_ERROR_NO_DEVICE: a program that runs against the stub sees "no GPU", not garbage.
  gcc -shared -fPIC -Wl,-soname,libcuda.so.1 -o "$LIB/libcuda.so" "$TOOLKIT/cuda_stub.c"
  ln -sf "$LIB/libcuda.so" "$LIB/libcuda.so.1"
fi

export CUDA_ROOT="$ROOT" CUDA_PATH="$ROOT" CUDA_HOME="$ROOT"
export PATH="$ROOT/bin:$PATH"
export LIBRARY_PATH="$LIB${LIBRARY_PATH:+:$LIBRARY_PATH}"
export CUDARC_CUDA_VERSION=13000
nvcc --version | tail -2

echo "== cargo build --release -p vpfb-trainer --features cuda (compute capability $CUDA_COMPUTE_CAP)"
RUSTFLAGS="${RUSTFLAGS:-} -L native=$LIB" \
  cargo build --release -p vpfb-trainer --features cuda --target-dir target/cuda
BIN="target/cuda/release/vpfb-train"
echo "built $BIN"
echo "run it with the CUDA libraries on the loader path, e.g.:"
echo "  LD_LIBRARY_PATH=$ROOT/lib $BIN fit --device cuda ..."

if [[ $BUNDLE == 1 ]]; then
  DIST="target/cuda/dist"
  rm -rf "$DIST" && mkdir -p "$DIST/lib"
  cp "$BIN" "$DIST/"
  # What the binary links (ldd: libcudart, libcublas → libcublasLt, libcurand), not the driver.
  cp -L "$ROOT"/lib/libcudart.so.13 "$ROOT"/lib/libcublas.so.13 "$ROOT"/lib/libcublasLt.so.13 \
    "$ROOT"/lib/libcurand.so.10 "$DIST/lib/"
  cp scripts/gpu-verify.sh "$DIST/"
  FM=/usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz
  if [[ -f $FM ]]; then mkdir -p "$DIST/data" && cp "$FM" "$DIST/data/"; fi
  echo "bundle in $DIST ($(du -sh "$DIST" | cut -f1)): vpfb-train, lib/, gpu-verify.sh"
fi
