#!/usr/bin/env bash
# Whole-network fine-tuning end to end, Glassbox beside a plain PyTorch loop (issue 19):
# 160 MNIST digits written as RGB PNG files in class sub-folders, EfficientNet-Lite0, every
# weight, 2 epochs, batch 16, Adam lr 0.001, no augmentation, no validation split, the same
# thread count. Glassbox: `glassbox finetune --full` as a user runs it, the process's wall
# time (start-up, model, reading the folder, training, saving). PyTorch: the same loop written
# plainly (scripts/finetune_plain.py, timed from reading the folder to the last step, imports
# excluded), with its default allocator; and the same with channels-last memory format. Medians of 3 runs each, interleaved. Prints a Markdown table.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${GLASSBOX:-target/release/glassbox}
THREADS=${THREADS:-$(nproc)}
dir=$(mktemp -d)
.venv/bin/python - "$dir/data" <<'PY'
import csv, os, sys
import numpy as np
from PIL import Image
root, count = sys.argv[1], [0] * 10
with open("data/mnist/mnist_train.csv") as f:
    rows = csv.reader(f)
    next(rows)
    for row in rows:
        y = int(row[0])
        if count[y] < 16:
            os.makedirs(f"{root}/digit-{y}", exist_ok=True)
            img = Image.fromarray(np.array(row[1:], dtype=np.uint8).reshape(28, 28)).convert("RGB")
            img.save(f"{root}/digit-{y}/{count[y]:03d}.png")
            count[y] += 1
        if sum(count) == 160:
            break
PY
for run in 1 2 3; do
  OMP_NUM_THREADS=$THREADS .venv/bin/python -c 'import json, subprocess, sys, time
t = time.perf_counter(); subprocess.run(sys.argv[1:], check=True, stdout=subprocess.DEVNULL)
print(json.dumps({"glassbox": time.perf_counter() - t}))' "$BIN" finetune --model efficientnet-lite0 --data "$dir/data" \
    --full --epochs 2 --batch 16 --val-split 0 --no-augment --lr 0.001 --out "$dir/g.safetensors" --force >> "$dir/runs.json"
  .venv/bin/python scripts/finetune_plain.py "$dir/data" "$THREADS" 2>/dev/null >> "$dir/runs.json"
  .venv/bin/python scripts/finetune_plain.py "$dir/data" "$THREADS" channels_last 2>/dev/null >> "$dir/runs.json"
done
.venv/bin/python - "$dir/runs.json" "$THREADS" <<'PY'
import json, statistics, sys
runs = [json.loads(l) for l in open(sys.argv[1])]
g = [r["glassbox"] for r in runs if "glassbox" in r]
p = [r["seconds"] for r in runs if "seconds" in r and not r["channels_last"]]
c = [r["seconds"] for r in runs if "seconds" in r and r["channels_last"]]
torch = next(r["torch"] for r in runs if "torch" in r)
med = statistics.median
print(f"whole-network fine-tuning, EfficientNet-Lite0, 160 digits, 2 epochs, batch 16, Adam, {sys.argv[2]} threads (PyTorch {torch})")
print("| | seconds, median of 3 | runs | against plain PyTorch |")
print("|---|---|---|---|")
for name, v in [("Glassbox (`glassbox finetune --full`, the whole process)", g), ("plain PyTorch loop, default allocator", p), ("the same loop, channels-last", c)]:
    print(f"| {name} | {med(v):.1f} | {', '.join(f'{x:.1f}' for x in v)} | {med(v) / med(p):.2f}x |")
PY
