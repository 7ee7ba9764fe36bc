#!/usr/bin/env bash
# Times the same `vpfb` jobs on x86-64 (native) and on aarch64 under qemu-user, both built with the `pi`
# profile, one thread, and prints aarch64/x86 ratios. Emulation dominates these ratios: they do not
# predict a Raspberry Pi's speed (run `vpfb bench` on the Pi for that); scripts/pi-build.sh checks that
# the numbers agree.
#
#   scripts/pi-build.sh        # once: installs the cross tools and qemu, builds the aarch64 binary
#   scripts/qemu_ratio.sh      # needs the Debian Fashion-MNIST package for the UNet jobs
set -euo pipefail
cd "$(dirname "$0")/.."
target=aarch64-unknown-linux-gnu
export CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_LINKER=aarch64-linux-gnu-gcc
cargo build -q --profile pi --target "$target" -p vpfb-cli --bin vpfb
cargo build -q --profile pi -p vpfb-cli --bin vpfb
x86=(target/pi/vpfb)
arm=(qemu-aarch64-static -L /usr/aarch64-linux-gnu "target/$target/pi/vpfb")
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
images=/usr/share/datasets/fashion-mnist/t10k-images-idx3-ubyte.gz
python3 - "$images" "$work/fm64.csv" <<'PY'
import gzip, sys
px = gzip.open(sys.argv[1]).read()[16:16 + 64 * 784]
with open(sys.argv[2], "w") as f:
    for i in range(64):
        f.write(",".join(str(v) for v in px[i * 784:(i + 1) * 784]) + "\n")
PY
seconds() {
  local start end
  start=$(date +%s.%N)
  "$@" >/dev/null 2>&1
  end=$(date +%s.%N)
  python3 -c "print(f'{$end - $start:.2f}')"
}
jobs=(
  "mlp-rk4-256x100|sample --model models/moons.onnx -n 256 --steps 100 --out $work/o.csv --threads 1"
  "unet-euler-8x8|sample --model models/fashion-mnist.onnx -n 8 --solver euler --steps 8 --out $work/o.csv --threads 1"
  "unet-detector-64|score --model models/fashion-mnist.onnx --input $work/fm64.csv --out $work/o.csv --threads 1"
)
for job in "${jobs[@]}"; do
  name=${job%%|*}
  read -r -a args <<<"${job#*|}"
  a=$(seconds "${x86[@]}" "${args[@]}")
  b=$(seconds "${arm[@]}" "${args[@]}")
  echo "$name: x86-64 ${a} s, aarch64 under qemu ${b} s, ratio $(python3 -c "print(f'{$b / $a:.1f}')")"
done
