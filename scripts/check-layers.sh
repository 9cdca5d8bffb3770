#!/usr/bin/env bash
# `make test`: the rules of the house the compiler alone does not check.
# 1. The engine cannot reach the UI: no egui, eframe, winit or wgpu among the engine's
#    dependencies, nor among those of the command line built for cluster nodes
#    (`-p glassbox-cli --no-default-features`).
set -euo pipefail
cd "$(dirname "$0")/.."
ui='^(egui|eframe|winit|wgpu|egui_plot|egui-winit|egui-wgpu|rfd|arboard)( |$)'
fail=0
check_tree() {
  local what=$1; shift
  local found
  found=$(cargo tree "$@" -e normal,build --prefix none --offline | grep -E "$ui" | sort -u || true)
  if [ -n "$found" ]; then
    echo "check-layers: $what depends on the UI stack:" >&2
    echo "$found" | sed 's/^/  /' >&2
    fail=1
  fi
}
check_tree "glassbox-engine" -p glassbox-engine
check_tree "the cluster CLI (glassbox-cli --no-default-features)" -p glassbox-cli --no-default-features
[ "$fail" = 0 ] && echo "check-layers: the engine and the cluster CLI link no UI crate"
exit "$fail"
