#!/usr/bin/env bash
# Glassbox against Captum, pytorch-grad-cam and Zennit, side by side in one run: same model
# (the embedded EfficientNet-Lite0), same weights, same input, same thread count.
# The peers' network is checked to give Glassbox's logits before anything is timed, and they
# run twice: with glibc's default allocator, as their users run them, and with the malloc
# settings Glassbox makes at start-up (the same through GLIBC_TUNABLES).
# Needs the reference packages (`make refs` installs them). Prints a Markdown table.
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${RUNS:-10}
BIN=${GLASSBOX:-target/release/glassbox}
BENCH=${GLASSBOX_BENCH:-target/release/glassbox-bench}
tmp=$(mktemp -d)
"$BIN" predict assets/samples/chelsea.png --save-raw "$tmp/raw.safetensors" >/dev/null
"$BENCH" --runs "$RUNS" --methods assets/samples/chelsea.png --json > "$tmp/glassbox.json"
threads=$(.venv/bin/python -c "import json;print(json.load(open('$tmp/glassbox.json'))['core']['threads'])")
SAME_MALLOC="glibc.malloc.mmap_threshold=1073741824:glibc.malloc.trim_threshold=1073741824:glibc.malloc.arena_max=1"
.venv/bin/python scripts/bench_peers.py "$threads" "$RUNS" "$tmp/raw.safetensors" | tail -1 > "$tmp/peers.json"
GLIBC_TUNABLES=$SAME_MALLOC .venv/bin/python scripts/bench_peers.py "$threads" "$RUNS" "$tmp/raw.safetensors" | tail -1 > "$tmp/peers-malloc.json"
.venv/bin/python - "$tmp/glassbox.json" "$tmp/peers.json" "$tmp/peers-malloc.json" <<'PY'
import json, sys
g = json.load(open(sys.argv[1])); pj = json.load(open(sys.argv[2])); p = pj["times_ms"]
pm = json.load(open(sys.argv[3]))["times_ms"]
print(f"the peers' Lite0 against Glassbox's on the same input: max |logit difference| {pj['logit_max_diff']:.2e}")
print(f"threads: {g['core']['threads']}, device: {g['core']['device']}")
print("| method | glassbox ms | bound ms | glassbox / bound | peer | peer ms | peer / glassbox | peer ms, Glassbox's malloc | that / glassbox |")
print("|---|---|---|---|---|---|---|---|---|")
peer_name = {"gradient": "Captum Saliency", "input-x-gradient": "Captum InputXGradient",
             "smoothgrad": "Captum NoiseTunnel(Saliency), 16", "integrated-gradients": "Captum IG, 32 steps, one batch",
             "grad-cam": "pytorch-grad-cam GradCAM", "grad-cam++": "pytorch-grad-cam GradCAM++",
             "score-cam": "pytorch-grad-cam ScoreCAM (batch 64)",
             "guided-backprop": "Captum GuidedBackprop, hooked on ReLU6 too",
             "guided-grad-cam": "Captum GuidedGradCam, hooked on ReLU6 too", "occlusion": "Captum Occlusion (169 windows)",
             "lrp-epsilon-plus-flat": "Zennit EpsilonPlusFlat", "lrp-epsilon-gamma-box": "Zennit EpsilonGammaBox",
             "lrp-alpha2-beta1": "Zennit EpsilonAlpha2Beta1"}
for m in g["methods"]:
    name = m["method"]
    peer = p.get(name)
    extra = f" (Captum LayerGradCam {p['grad-cam (captum)']:.1f} ms)" if name == "grad-cam" else ""
    cells = [name, f"{m['median_ms']:.1f}", f"{m['bound_ms']:.1f}", f"{m['ratio']:.2f}x",
             peer_name.get(name, "none") + extra,
             f"{peer:.1f}" if peer else "-", f"{peer / m['median_ms']:.2f}x" if peer else "-"]
    same = pm.get(name)
    cells += [f"{same:.1f}" if same else "-", f"{same / m['median_ms']:.2f}x" if same else "-"]
    print("| " + " | ".join(cells) + " |")
PY
