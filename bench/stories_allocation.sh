#!/usr/bin/env bash
# The README's uniform vs Fisher-allocated table on stories260K: quantise with grid(b)+rANS at
# uniform bits and with --bits allocation from owf sensitivity, then owf eval each (KL, top-1).
set -euo pipefail
cd "$(dirname "$0")/.."
M="${1:-../shared/models/stories260K.gguf}"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
build/owf sensitivity "$M" -o "$work/S.json" >/dev/null
row() {  # label, owf quantise args...
  local label=$1; shift
  local bpp kl
  bpp=$(build/owf quantise "$M" "$@" -o "$work/q.safetensors" --json | python3 -c 'import json,sys; print("%.3f" % json.load(sys.stdin)["bits_per_param"])')
  kl=$(build/owf eval --reference "$M" --candidate "$work/q.safetensors" --generate 8 --json |
       python3 -c 'import json,sys; j=json.load(sys.stdin); print("%.4f +- %.4f  top1 %.1f%%" % (j["kl_full"]["mean"], j["kl_full"]["stderr"], 100*j["same_top1_rate"]))')
  echo "$label  bits/param $bpp  KL $kl"
}
for b in 3.5 4.017 5.0; do
  row "uniform   grid($b)" -f "grid($b)@64:absmax+entropy(rans)"
  row "allocated --bits $b" -f "grid(4)@64:absmax+entropy(rans)" --bits "$b" --sensitivity "$work/S.json"
done
