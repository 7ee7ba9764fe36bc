#!/usr/bin/env bash
# GPU verification of a CUDA build of vpfb-train, for an x86-64 machine with an NVIDIA GPU (H200) and
# no network. Run from the bundle that `scripts/build-cuda.sh --bundle` writes (target/cuda/dist):
#
#   bash gpu-verify.sh [--data PATH/train-images-idx3-ubyte.gz] [--out DIR]
#
# It needs: vpfb-train (next to this script), the CUDA libraries it loads (lib/ next to it, or a
# PyTorch installation's nvidia/*/lib folders, found through python3 if present), the NVIDIA driver
# (R580+ for this CUDA 13.0 build), and Fashion-MNIST training images (data/ next to it by default).
#
# In one run of a few minutes it reports:
#  (a) CPU/GPU parity of the loss and the θ-gradient of one fixed batch (relative, must be ≤ 1e-3),
#      for the CPU-sized and the paper-sized UNet;
#  (b) steps/s of the CPU-sized Fashion-MNIST UNet, GPU against this machine's CPUs;
#  (c) steps/s and peak GPU memory of the paper-sized UNet at batch 64;
#  (d) a GPU-trained checkpoint resuming on the CPU and exporting (same file format either way).
set -euo pipefail
HERE="$(cd "$(dirname "$0")" && pwd)"
DATA="$HERE/data/train-images-idx3-ubyte.gz"
OUT="${TMPDIR:-/tmp}/vpfb-gpu-verify"
# A dry run of the whole flow on a machine without a GPU: VPFB_VERIFY_DEVICE=cpu GPU_STEPS=3 CPU_STEPS=2
# PAPER_STEPS=1 PAPER_BATCH=2 bash gpu-verify.sh (the "GPU" figures are then CPU figures).
DEVICE="${VPFB_VERIFY_DEVICE:-cuda:0}"
GPU_STEPS="${GPU_STEPS:-300}"
CPU_STEPS="${CPU_STEPS:-20}"
PAPER_STEPS="${PAPER_STEPS:-50}"
PAPER_BATCH="${PAPER_BATCH:-64}"
while [[ $# -gt 0 ]]; do
  case "$1" in
    --data) DATA="$2"; shift 2 ;;
    --out) OUT="$2"; shift 2 ;;
    *) echo "unknown argument $1" >&2; exit 2 ;;
  esac
done
BIN="$HERE/vpfb-train"
[[ -x "$BIN" ]] || { echo "no vpfb-train next to $0" >&2; exit 1; }
[[ -f "$DATA" ]] || { echo "no Fashion-MNIST training images at $DATA (pass --data)" >&2; exit 1; }

LIBS="$HERE/lib"
if command -v python3 >/dev/null; then
  # A PyTorch installation's CUDA libraries, as a fallback for any the bundle lacks.
  TORCH_LIBS="$(python3 - <<'PY' 2>/dev/null || true
import glob, os, site
dirs = []
for sp in site.getsitepackages() + [site.getusersitepackages()]:
    dirs += glob.glob(os.path.join(sp, "nvidia", "*", "lib"))
print(":".join(sorted(set(dirs))))
PY
)"
  [[ -n "$TORCH_LIBS" ]] && LIBS="$LIBS:$TORCH_LIBS"
fi
export LD_LIBRARY_PATH="$LIBS${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
rm -rf "$OUT" && mkdir -p "$OUT"
REPORT="$OUT/report.txt"
say() { echo "$*" | tee -a "$REPORT"; }

say "== machine"
HAVE_SMI=0
if command -v nvidia-smi >/dev/null; then
  HAVE_SMI=1
  nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader | tee -a "$REPORT"
else
  say "nvidia-smi not found: no GPU memory figures"
fi
say "CPU: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)"

say "== (a) CPU/GPU parity of one training step (loss and θ-gradient, f32)"
"$BIN" device-check --device "$DEVICE" --preset cpu --batch 16 2>&1 | tee -a "$REPORT"
"$BIN" device-check --device "$DEVICE" --preset paper --batch 4 2>&1 | tee -a "$REPORT"

rate() { grep -oE '\(([0-9.]+) steps/s\)' "$1" | tail -1 | tr -d '()' | cut -d' ' -f1; }
fit() { # name device preset batch steps
  local name=$1 dev=$2 preset=$3 batch=$4 steps=$5
  "$BIN" fit --data "idx:$DATA" --arch unet --preset "$preset" --batch "$batch" --steps "$steps" \
    --device "$dev" --lr 2e-4 --warmup 50 --checkpoint-every 1000000 --no-eval \
    --out "$OUT/$name" > "$OUT/$name.log" 2>&1 || { tail -3 "$OUT/$name.log" >&2; return 1; }
}

say "== (b) CPU-sized UNet on Fashion-MNIST, batch 32"
fit cpu-preset-gpu "$DEVICE" cpu 32 "$GPU_STEPS"
fit cpu-preset-cpu cpu cpu 32 "$CPU_STEPS"
say "GPU: $(rate "$OUT/cpu-preset-gpu.log") steps/s over $GPU_STEPS steps"
say "CPU ($(nproc) cores): $(rate "$OUT/cpu-preset-cpu.log") steps/s over $CPU_STEPS steps"

say "== (c) paper-sized UNet, batch $PAPER_BATCH"
PEAK="n/a"
if [[ $HAVE_SMI == 1 ]]; then
  nvidia-smi --query-gpu=memory.used --format=csv,noheader,nounits -lms 500 > "$OUT/memory.log" &
  SMI=$!
fi
fit paper-gpu "$DEVICE" paper "$PAPER_BATCH" "$PAPER_STEPS"
if [[ $HAVE_SMI == 1 ]]; then
  kill $SMI 2>/dev/null || true
  PEAK="$(sort -n "$OUT/memory.log" | tail -1) MiB (nvidia-smi, whole device)"
fi
say "GPU: $(rate "$OUT/paper-gpu.log") steps/s over $PAPER_STEPS steps; peak GPU memory $PEAK"

say "== (d) a GPU checkpoint resumes on the CPU and exports"
"$BIN" fit --resume --out "$OUT/cpu-preset-gpu" --steps $((GPU_STEPS + 2)) --device cpu --no-eval > "$OUT/resume.log" 2>&1
tail -1 "$OUT/resume.log" | tee -a "$REPORT"
"$BIN" export --run "$OUT/cpu-preset-gpu" --out "$OUT/gpu-trained.onnx" 2>&1 | head -1 | tee -a "$REPORT"
say "report: $REPORT"
