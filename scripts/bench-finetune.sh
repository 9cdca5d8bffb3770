#!/usr/bin/env bash
# Retraining, Glassbox beside PyTorch in one run: the same head on the same features, and
# whole-network fine-tuning throughput on the same model (its logits checked equal first),
# batch and threads. PyTorch runs twice: with glibc's default allocator, as its users run
# it, and with the malloc settings Glassbox makes at start-up (the same through
# GLIBC_TUNABLES), so the table says which part of the lead is the allocator.
# Needs the reference packages (`make refs-deps`). Prints a Markdown table.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${GLASSBOX:-target/release/glassbox}
BENCH=${GLASSBOX_BENCH:-target/release/glassbox-bench}
# What crates/glassbox-cli/src/lib.rs (start_process) sets with mallopt: M_MMAP_THRESHOLD and M_TRIM_THRESHOLD of 1 GiB, M_ARENA_MAX 1.
SAME_MALLOC="glibc.malloc.mmap_threshold=1073741824:glibc.malloc.trim_threshold=1073741824:glibc.malloc.arena_max=1"
dir=$(mktemp -d)
"$BIN" predict assets/samples/chelsea.png assets/samples/coffee.png --save-raw "$dir/raw.safetensors" >/dev/null
"$BENCH" --finetune "$dir" --photos assets/samples/chelsea.png assets/samples/coffee.png --json > "$dir/glassbox.json"
read -r threads epochs lr batch < <(.venv/bin/python -c "import json;g=json.load(open('$dir/glassbox.json'));print(g['threads'],g['epochs'],g['lr'],g['batch'])")
.venv/bin/python scripts/bench_finetune.py "$dir" "$threads" "$epochs" "$lr" "$batch" "$dir/raw.safetensors" | tail -1 > "$dir/torch.json"
GLIBC_TUNABLES=$SAME_MALLOC .venv/bin/python scripts/bench_finetune.py "$dir" "$threads" "$epochs" "$lr" "$batch" "$dir/raw.safetensors" | tail -1 > "$dir/torch-malloc.json"
.venv/bin/python - "$dir/glassbox.json" "$dir/torch.json" "$dir/torch-malloc.json" <<'PY'
import json, sys
g = json.load(open(sys.argv[1])); t = json.load(open(sys.argv[2])); tm = json.load(open(sys.argv[3]))
print(f"EfficientNet-Lite0, {g['device']}, {g['threads']} threads (PyTorch {t['torch']}, {t['threads']} threads)")
print(f"PyTorch's Lite0 against Glassbox's on the same input: max |logit difference| {t['logit_max_diff']:.2e}")
print(f"head only: {g['epochs']} epochs, Adam lr {g['lr']}, batch {g['batch']}; test: {g['test_images']} MNIST test digits as RGB")
print("| digits per class | Glassbox test accuracy | PyTorch (same features) | Glassbox wall s (features + head) | Glassbox head s | PyTorch head s |")
print("|---|---|---|---|---|---|")
for a, b in zip(g["head"], t["head"]):
    print(f"| {a['per_class']} | {a['test_accuracy']*100:.1f} % | {b['test_accuracy']*100:.1f} % | {a['wall_s']:.2f} | {a['head_s']:.3f} | {b['head_s']:.3f} |")
print(f"imprinting digit-3 and digit-7 from {g['imprint_train']} images each: {g['imprint_accuracy']*100:.1f} % of {2 * g['imprint_test']} new ones right in {g['imprint_s']:.2f} s")
print(f"the same, then 10 epochs of their weights: {g['refined_accuracy']*100:.1f} % right in {g['refined_s']:.2f} s")
for p, before, after, refined in g["photos_top1"]:
    print(f"  {p}: top-1 `{before}` before, `{after}` imprinted, `{refined}` refined")
runs = lambda r: ", ".join(f"{v:.1f}" for v in r)
print(f"whole network, batch {g['full_batch']}, images/s, median of 3 runs:")
print(f"  Glassbox {g['full_images_per_s']:.1f} ({runs(g['full_runs_images_per_s'])})")
print(f"  PyTorch, default malloc {t['full_images_per_s']:.1f} ({runs(t['full_runs_images_per_s'])}): Glassbox {g['full_images_per_s'] / t['full_images_per_s']:.2f}x")
print(f"  PyTorch, Glassbox's malloc settings {tm['full_images_per_s']:.1f} ({runs(tm['full_runs_images_per_s'])}): Glassbox {g['full_images_per_s'] / tm['full_images_per_s']:.2f}x")
PY
