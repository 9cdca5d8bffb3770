#!/usr/bin/env bash
# Regenerates tests/refs/ with the Python reference tools. Needs the package registries;
# CI never runs this: it uses the committed outputs.
set -euo pipefail
cd "$(dirname "$0")/.."
PIP=".venv/bin/pip install -q --disable-pip-version-check"
# --no-deps: keep the venv's torch==2.11.0 exactly as setup installed it.
$PIP --no-deps torchvision==0.26.0 safetensors==0.8.0 efficientnet-lite-pytorch==0.1.0
$PIP --no-deps captum==0.9.0 grad-cam==1.5.7 zennit==0.5.1
$PIP numpy pillow matplotlib opencv-python-headless scikit-learn tqdm ttach packaging
[ "${1:-}" = "--deps-only" ] && exit 0
cargo build -p glassbox-cli
tmp=$(mktemp -d)
target/debug/glassbox predict assets/samples/chelsea.png assets/samples/coffee.png --save-raw "$tmp/raw.safetensors" >/dev/null
.venv/bin/python scripts/references.py tests/refs "$tmp/raw.safetensors"
.venv/bin/python scripts/attribution_refs.py tests/refs "$tmp/raw.safetensors"
.venv/bin/python scripts/preprocess_refs.py tests/refs
.venv/bin/python scripts/edit_refs.py tests/refs
.venv/bin/python scripts/arch_refs.py tests/refs
.venv/bin/python scripts/export_refs.py tests/refs
.venv/bin/python scripts/lrp_refs.py tests/refs
.venv/bin/python scripts/road_refs.py tests/refs
chmod 644 tests/refs/*.* tests/refs/preprocess/*
