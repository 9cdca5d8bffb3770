#!/usr/bin/env bash
# `make fuzz`: coverage-guided fuzzing (cargo-fuzz, libFuzzer, nightly toolchain) of every
# parser a user's file or text reaches: the unpickler, the weights loader (safetensors, zip
# and legacy .pth), model validation, image headers, lesson files, the edit language and the
# remembered app settings (fuzz/fuzz_targets/). Each target runs FUZZ_SECONDS (default 60),
# FUZZ_JOBS targets at a time (default 1), from the committed seeds and the bolero corpus of
# tests/fuzz/ plus what earlier runs found (fuzz/corpus/, not committed). An input that
# crashes a target is kept in fuzz/artifacts/<target>/ and the script exits 1; the fix gets
# a regression test in `make test` (TESTING.md, "Coverage-guided fuzzing").
set -uo pipefail
cd "$(dirname "$0")/.."
secs=${FUZZ_SECONDS:-60}
jobs=${FUZZ_JOBS:-1}
targets=${FUZZ_TARGETS:-"unpickle weights model image lesson edit_op settings"}

rustup toolchain list | grep -q '^nightly' || rustup toolchain install nightly --profile minimal
command -v cargo-fuzz >/dev/null || cargo install --locked cargo-fuzz@0.13.2
# No sanitizer: the code under test is safe Rust, and AddressSanitizer would need an
# instrumented libtorch; debug assertions and overflow checks are on.
cargo +nightly fuzz build -O -a -s none --codegen-units 16 || exit 1

seeds() {
  case $1 in
    unpickle) echo fuzz/seeds/unpickle tests/fuzz/pth-legacy ;;
    weights) echo tests/fuzz/safetensors tests/fuzz/pth-zip tests/fuzz/pth-legacy ;;
    image) echo tests/fuzz/image ;;
    *) echo "fuzz/seeds/$1" ;;
  esac
}

# libtorch for the fuzz binaries (the app's binary carries an rpath; these do not).
export LD_LIBRARY_PATH="$PWD/.venv/libtorch/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
bin=fuzz/target/x86_64-unknown-linux-gnu/release
run() {
  local t=$1 log="fuzz/artifacts/$1.log"
  mkdir -p "fuzz/corpus/$t" "fuzz/artifacts/$t"
  local start=$SECONDS
  # -rss_limit_mb: a hostile input that makes the process hold 4 GiB is a crash too.
  "$bin/$t" "fuzz/corpus/$t" $(seeds "$t") -max_total_time="$secs" -timeout=30 -rss_limit_mb=4096 \
    -artifact_prefix="fuzz/artifacts/$t/" -print_final_stats=1 >"$log" 2>&1
  local rc=$? took=$((SECONDS - start))
  local execs speed cov rss
  execs=$(grep -oP 'stat::number_of_executed_units:\s*\K\d+' "$log")
  speed=$(grep -oP 'stat::average_exec_per_sec:\s*\K\d+' "$log")
  cov=$(grep -oP '(#\d+\s+(DONE|pulse|NEW|REDUCE)\s+cov: )\K\d+' "$log" | tail -1)
  rss=$(grep -oP 'stat::peak_rss_mb:\s*\K\d+' "$log")
  local verdict="no crash"
  [ "$rc" -ne 0 ] && verdict="CRASH (exit $rc): $(ls "fuzz/artifacts/$t" | head -3 | tr '\n' ' ') see $log"
  echo "fuzz $t: ${execs:-?} executions in ${took} s, ${speed:-?}/s, coverage ${cov:-?} edges, corpus $(ls "fuzz/corpus/$t" | wc -l) inputs, peak ${rss:-?} MiB, $verdict"
  return $rc
}

status=0
running=0
for t in $targets; do
  run "$t" &
  running=$((running + 1))
  if [ "$running" -ge "$jobs" ]; then
    wait -n || status=1
    running=$((running - 1))
  fi
done
while [ "$running" -gt 0 ]; do
  wait -n || status=1
  running=$((running - 1))
done
exit $status
