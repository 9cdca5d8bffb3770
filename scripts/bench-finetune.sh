#!/usr/bin/env bash
# Retraining, Glassbox beside PyTorch in one run: the same head on the same features, and
# whole-network fine-tuning throughput on the same model, batch and threads. Needs the
# reference packages (`make refs-deps`). Prints a Markdown table.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${GLASSBOX:-target/release/glassbox}
dir=$(mktemp -d)
"$BIN" bench --finetune "$dir" --photos assets/samples/chelsea.png assets/samples/coffee.png --json > "$dir/glassbox.json"
read -r threads epochs lr batch < <(.venv/bin/python -c "import json;g=json.load(open('$dir/glassbox.json'));print(g['threads'],g['epochs'],g['lr'],g['batch'])")
.venv/bin/python scripts/bench_finetune.py "$dir" "$threads" "$epochs" "$lr" "$batch" 2>/dev/null | tail -1 > "$dir/torch.json"
.venv/bin/python - "$dir/glassbox.json" "$dir/torch.json" <<'PY'
import json, sys
g = json.load(open(sys.argv[1])); t = json.load(open(sys.argv[2]))
print(f"EfficientNet-Lite0, {g['device']}, {g['threads']} threads (PyTorch {t['torch']}, {t['threads']} threads)")
print(f"head only: {g['epochs']} epochs, Adam lr {g['lr']}, batch {g['batch']}; test: {g['test_images']} MNIST test digits as RGB")
print("| digits per class | Glassbox test accuracy | PyTorch (same features) | Glassbox wall s (features + head) | Glassbox head s | PyTorch head s |")
print("|---|---|---|---|---|---|")
for a, b in zip(g["head"], t["head"]):
    print(f"| {a['per_class']} | {a['test_accuracy']*100:.1f} % | {b['test_accuracy']*100:.1f} % | {a['wall_s']:.2f} | {a['head_s']:.3f} | {b['head_s']:.3f} |")
print(f"imprinting digit-3 and digit-7 from 20 images each: {g['imprint_accuracy']*100:.1f} % of 200 new ones right in {g['imprint_s']:.2f} s")
print(f"the same, then 10 epochs of their weights: {g['refined_accuracy']*100:.1f} % right in {g['refined_s']:.2f} s")
for p, before, after, refined in g["photos_top1"]:
    print(f"  {p}: top-1 `{before}` before, `{after}` imprinted, `{refined}` refined")
ratio = g["full_images_per_s"] / t["full_images_per_s"]
print(f"whole network, batch {g['full_batch']}: Glassbox {g['full_images_per_s']:.1f} images/s, PyTorch {t['full_images_per_s']:.1f} images/s: {ratio:.2f}x")
PY
