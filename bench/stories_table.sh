#!/usr/bin/env bash
# The README's KL-vs-bits table on stories260K ("What quantisation costs the model"): for each
# format family at 3-6 element bits, quantise uniformly, with --bits allocation at the same
# all-in bits/param (Fisher from owf sensitivity), and uniformly with --importance (an imatrix),
# then owf eval each against the original. Prints a markdown table.
#
#   bench/stories_table.sh [MODEL]        (OWF=path/to/owf to use another build; default build/owf)
#
# Fixed data, so reruns print the same numbers: the evaluation is 8 sequences of 256 tokens
# sampled from the original model (owf eval --generate 8, seed 1); the imatrix is collected on
# 16 other sampled sequences (seed 2); owf sensitivity uses its defaults (4 sequences of 128).
set -euo pipefail
cd "$(dirname "$0")/.."
M="${1:-../shared/models/stories260K.gguf}"
OWF="${OWF:-build/owf}"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
"$OWF" sensitivity "$M" -o "$work/S.json" >/dev/null
"$OWF" imatrix "$M" --generate 16 --seed 2 -o "$work/I.safetensors" >/dev/null

# quantise ARGS... -> prints "bits_per_param kl stderr top1" (KL: the paper's top-128 + tail).
measure() {
  local bpp
  bpp=$("$OWF" quantise "$M" "$@" -o "$work/q.safetensors" --json 2>/dev/null |
        python3 -c 'import json,sys; print("%.3f" % json.load(sys.stdin)["bits_per_param"])')
  "$OWF" eval --reference "$M" --candidate "$work/q.safetensors" --generate 8 --seed 1 --json |
    python3 -c 'import json,sys; j=json.load(sys.stdin); k=j["kl_top128"]; print("'"$bpp"' %.4f %.4f %.1f" % (k["mean"], k["stderr"], 100*j["same_top1_rate"]))'
}
cell() {  # "bpp kl se top1" -> "| bpp | kl ± se | top1% "
  read -r bpp kl se top1 <<<"$1"
  printf '| %s | %s ± %s | %s%% ' "$bpp" "$kl" "$se" "$top1"
}
# row LABEL SPEC ALLOCATE(yes|no) IMPORTANCE(yes|no)
row() {
  local label=$1 spec=$2 alloc=$3 imp=$4 uni bpp
  uni=$(measure -f "$spec")
  bpp=${uni%% *}
  printf '| %s | `%s` ' "$label" "$spec"
  cell "$uni"
  if [[ $alloc == yes ]]; then cell "$(measure -f "$spec" --bits "$bpp" --sensitivity "$work/S.json")"; else printf '| | – | '; fi
  if [[ $imp == yes ]]; then
    read -r _ kl se top1 <<<"$(measure -f "$spec" --importance "$work/I.safetensors")"
    printf '| %s ± %s | %s%% ' "$kl" "$se" "$top1"
  else
    printf '| – | '
  fi
  printf '|\n'
}

echo '| family | spec (uniform) | bits/param | KL | same top-1 | allocated: bits/param | KL | same top-1 | + importance: KL | same top-1 |'
echo '|---|---|---|---|---|---|---|---|---|---|'
for b in 3 4 5 6; do
  row "int$b" "int$b@64:absmax+search" yes yes
  e=2; m=$((b - 3))
  row "e${e}m$m" "e${e}m$m@64:absmax" no no
  [[ $b == 4 ]] && row "nf4" "nf4@64:absmax" no no
  row "crd$b(normal)" "crd$b(normal)@64:absmax" yes no
  row "crd$b(t)" "crd$b(t)@64:absmax+search" yes yes
  row "lloyd$b" "lloyd$b@64:absmax" yes yes
  row "grid($b)+rANS" "grid($b)@64:absmax+entropy(rans)" yes no
done
