#!/usr/bin/env bash
# Installs dependencies, builds owf, and runs its main job: quantise a real model when one is at
# hand (../shared/models/stories260K.gguf, or the path in $OWF_MODEL), otherwise the built-in demo.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
model="${OWF_MODEL:-../shared/models/stories260K.gguf}"
if [ -e "$model" ]; then
  echo "== owf quantise $model (crd4(t)@64:absmax+search) =="
  build/owf quantise "$model" --format 'crd4(t)@64:absmax+search' -o build/quickstart.owf.safetensors
else
  echo "== no model at $model: running the built-in demo =="
  build/owf demo
fi
