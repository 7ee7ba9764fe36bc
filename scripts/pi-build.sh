#!/usr/bin/env bash
# Cross-builds `vpfb` for aarch64-unknown-linux-gnu (Raspberry Pi 3/4/5 with a 64-bit OS), runs its sample
# and score commands under qemu-user, and compares the results with the x86-64 build (samples and the
# grad-norm score within 1e-4, the detector's scores within 1e-2 of 1 + |score|).
#
#   scripts/pi-build.sh            install the target and tools (root, Debian), build, compare
#   scripts/pi-build.sh --optional as above, but if the target or tools cannot be installed, say so and exit 0
#
# The binary lands in target/aarch64-unknown-linux-gnu/pi/vpfb: copy it to the Pi, it needs nothing else.
set -euo pipefail
cd "$(dirname "$0")/.."
optional=false
[ "${1:-}" = "--optional" ] && optional=true
target=aarch64-unknown-linux-gnu

skip() {
  echo "pi-build: SKIPPED — $1 (the aarch64 build was NOT checked)"
  if $optional; then exit 0; else exit 1; fi
}

if ! command -v aarch64-linux-gnu-gcc >/dev/null || ! command -v qemu-aarch64-static >/dev/null; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    (apt-get update -qq && apt-get install -y -qq gcc-aarch64-linux-gnu libc6-dev-arm64-cross qemu-user-static) >/tmp/pi-build-apt.log 2>&1 \
      || skip "apt-get could not install gcc-aarch64-linux-gnu / qemu-user-static (see /tmp/pi-build-apt.log)"
  else
    skip "aarch64-linux-gnu-gcc and qemu-aarch64-static are missing and cannot be installed here (need root + apt-get)"
  fi
fi
rustup target list --installed 2>/dev/null | grep -qx "$target" || rustup target add "$target" >/tmp/pi-build-rustup.log 2>&1 \
  || skip "rustup could not add $target (see /tmp/pi-build-rustup.log)"

export CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_LINKER=aarch64-linux-gnu-gcc
echo "pi-build: cross-compiling vpfb for $target (profile pi)"
cargo build --profile pi --target "$target" -p vpfb-cli --bin vpfb
arm="target/$target/pi/vpfb"
file "$arm" 2>/dev/null || true
ls -l "$arm"

# The host reference: the test build if present, else a host build of the same profile.
host=target/debug/vpfb
[ -x "$host" ] || { cargo build --profile pi -p vpfb-cli --bin vpfb; host=target/pi/vpfb; }

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
qemu() { qemu-aarch64-static -L /usr/aarch64-linux-gnu "$arm" "$@"; }
for m in moons checkerboard; do
  "$host" sample --model "models/$m.onnx" -n 64 --steps 25 --seed 7 --out "$work/$m-x86.csv" 2>/dev/null
  qemu sample --model "models/$m.onnx" -n 64 --steps 25 --seed 7 --out "$work/$m-arm.csv"
  for s in grad-norm detector; do
    "$host" score --model "models/$m.onnx" --score $s --input cli/tests/golden/moons-points.csv --out "$work/$m-$s-x86.csv" 2>/dev/null
    qemu score --model "models/$m.onnx" --score $s --input cli/tests/golden/moons-points.csv --out "$work/$m-$s-arm.csv"
  done
done
python3 - "$work" <<'PY'
import sys
work = sys.argv[1]

def worst(m, kind, rel):
    a = [l.split(",") for l in open(f"{work}/{m}-{kind}x86.csv").read().split("\n")[1:] if l]
    b = [l.split(",") for l in open(f"{work}/{m}-{kind}arm.csv").read().split("\n")[1:] if l]
    assert len(a) == len(b) and a, f"{m} {kind}: row counts differ"
    w = 0.0
    for ra, rb in zip(a, b):
        for x, y in zip(ra[:1] if kind == "detector-" else ra, rb):
            x, y = float(x), float(y)
            w = max(w, rel(x, y))
    return w

# Samples and the single-evaluation score: within 1e-4 relative.
first = max(worst(m, k, lambda x, y: abs(x - y) / max(abs(x), 1.0))
            for m in ("moons", "checkerboard") for k in ("", "grad-norm-"))
print(f"pi-build: samples and grad-norm scores, x86 vs aarch64 (qemu): max relative difference {first:.2e}")
# The detector takes logs of residual norms that can be small, which amplifies float32 differences
# (the same bound as tract vs ONNX Runtime in runtime/tests/ort_parity.rs): within 1e-2 of 1 + |score|.
det = max(worst(m, "detector-", lambda x, y: abs(x - y) / (1.0 + abs(x))) for m in ("moons", "checkerboard"))
print(f"pi-build: detector scores, x86 vs aarch64 (qemu): max difference / (1 + |score|) {det:.2e}")
if first > 1e-4 or det > 1e-2:
    sys.exit(f"pi-build: FAILED — aarch64 differs from x86 ({first:.2e} > 1e-4 or {det:.2e} > 1e-2)")
print("pi-build: OK — aarch64 matches x86 (samples and grad-norm within 1e-4, detector within 1e-2)")
PY
