#!/usr/bin/env bash
# `make fuzz-random`: every bolero target of tests/fuzz.rs for FUZZ_SECONDS each (default 60), in the
# build the tests use, printing the executions per target. An input that crashes a target is
# kept in tests/fuzz/<target>/ as crash-* (a panic is saved by the test itself; an abort,
# such as running out of memory, is saved here from the last input the test wrote).
set -uo pipefail
cd "$(dirname "$0")/.."
secs=${FUZZ_SECONDS:-60}
cargo test -p glassbox-cli --test fuzz --no-run
status=0
for t in safetensors pth-zip pth-legacy image model; do
  rm -f "target/fuzz-current-$t"
  BOLERO_RANDOM_TEST_TIME_MS=$((secs * 1000)) FUZZ_ITERATIONS=1000000000 GLASSBOX_FUZZ_SAVE=1 \
    cargo test -p glassbox-cli --test fuzz "fuzz_${t//-/_}" -- --exact --nocapture 2>&1 \
    | grep -E "^fuzz |crash saved|panicked|Input:|BOLERO_RANDOM_SEED"
  rc=${PIPESTATUS[0]}
  if [ "$rc" -ne 0 ]; then
    status=1
    if [ -f "target/fuzz-current-$t" ]; then
      keep="tests/fuzz/$t/crash-$(sha256sum "target/fuzz-current-$t" | cut -c1-16)"
      cp "target/fuzz-current-$t" "$keep"
      echo "fuzz $t: the process died (exit $rc); its last input is kept as $keep"
    fi
  fi
done
exit $status
