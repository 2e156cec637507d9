#!/usr/bin/env bash
# Checks gradscope against PyTorch on two small CSV files it writes (256 rows, 4 features; a real
# target and a 3-class one): `gradscope probe` of 12 networks (4 activations × 3 losses, the init
# and the depth taken in turn; f32 gradients) and of a 20-layer sigmoid network (f64 gradients),
# recomputed by PyTorch autograd (scripts/torch_probe_check.py); then the remedies (residual
# blocks, batch and layer norm, clipping; scripts/torch_remedies.py).
#
#   scripts/check-pytorch.sh [GRADSCOPE]
#
# GRADSCOPE: the binary (default: `gradscope` on PATH; in a checkout, target/release/gradscope).
# PYTHON: a Python with torch, numpy and safetensors (default: python3).
# Exits 0 when every comparison is within its tolerance, 1 when one is not, and 77 (the usual
# "skipped" code) when PYTHON cannot import torch: gradscope's side has run, PyTorch's has not.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
gradscope=${1:-${GRADSCOPE:-gradscope}}
python=${PYTHON:-python3}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# Inputs from the Park–Miller generator (exact in awk's doubles, so every awk writes the same
# file); y = sin(2 x0) + x1 x2 − x3 / 2, and c ∈ {0, 1, 2} from the sign pattern of x0 and x1.
awk -v regression="$work/regression.csv" -v classes="$work/classes.csv" 'BEGIN {
  s = 42
  print "x0,x1,x2,x3,y" > regression
  print "x0,x1,x2,x3,c" > classes
  for (i = 0; i < 256; i++) {
    for (j = 0; j < 4; j++) { s = (s * 16807) % 2147483647; x[j] = 4 * s / 2147483647 - 2 }
    row = sprintf("%.6f,%.6f,%.6f,%.6f", x[0], x[1], x[2], x[3])
    printf "%s,%.6f\n", row, sin(2 * x[0]) + x[1] * x[2] - x[3] / 2 > regression
    printf "%s,%d\n", row, (x[0] > 0) + (x[1] > 0) * (x[0] <= 0) * 2 > classes
  }
}'

# gradscope's side: every probe the comparison needs
cases=()
inits=(pytorch xavier_normal kaiming_uniform)
n=0
for act in tanh sigmoid relu gelu; do
  for loss in mse sse cross_entropy; do
    init=${inits[$((n % 3))]}
    n=$((n + 1))
    if [ "$loss" = cross_entropy ]; then csv=$work/classes.csv target=c; else csv=$work/regression.csv target=y; fi
    depth=$((1 + 4 * (n % 3)))
    "$gradscope" probe --data "csv:$csv" --target "$target" --test-fraction 0 --depth "$depth" --width 16 \
      --activation "$act" --init "$init" --loss "$loss" --seed "$n" --out "$work/p$n" >/dev/null
    cases+=("$work/p$n $csv $target $act $loss")
  done
done
"$gradscope" probe --data "csv:$work/regression.csv" --target y --test-fraction 0 --depth 20 --width 32 \
  --activation sigmoid --loss mse --dtype f64 --out "$work/p-f64" >/dev/null
cases+=("$work/p-f64 $work/regression.csv y sigmoid mse")
echo "gradscope probed ${#cases[@]} networks"

if ! "$python" -c 'import torch, numpy, safetensors' 2>/dev/null; then
  echo "SKIPPED: $python cannot import torch, numpy and safetensors (set PYTHON to one that can):"
  echo "gradscope's probes ran, the comparison with PyTorch did not"
  exit 77
fi
"$python" -c 'import torch; print("PyTorch", torch.__version__)'

worst=0
printf '%s\n' "${cases[@]}" > "$work/cases"
"$python" "$here/torch_probe_check.py" --cases "$work/cases" || worst=1
echo "== remedies"
"$python" "$here/torch_remedies.py" "$gradscope" "$work/regression.csv" y || worst=1
if [ "$worst" = 0 ]; then echo "every comparison within its tolerance"; else echo "FAILED: see above"; fi
exit "$worst"
