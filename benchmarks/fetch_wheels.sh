#!/usr/bin/env bash
# Downloads into .whl/ the pure-Python wheels that benchmarks/gpu.sh needs and the device image lacks (Python
# 3.12): clu (tinynet_jax.train.steps) and ml_collections (tinynet_jax.train.config). Their own requirements
# (absl-py, etils, flax, jax, numpy, packaging, typing-extensions, wrapt, PyYAML) are in the image; TensorFlow,
# tfds and tinygp are not needed on the benchmark path. .whl/ is git-ignored; carry it: run(carry=[".whl"]).
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
DEST=${1:-$REPO/.whl}
WHEELS=(clu==0.0.12 ml_collections==1.1.0)

mkdir -p "$DEST"
python3 -m pip download --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
  --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 --platform manylinux_2_17_x86_64 \
  --platform manylinux2014_x86_64 --platform manylinux1_x86_64 -d "$DEST" "${WHEELS[@]}"
ls -l "$DEST"
du -sh "$DEST"
