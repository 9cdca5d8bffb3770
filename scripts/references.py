"""Reference outputs from PyTorch for Glassbox's tests (run by `make refs`).

Uses the SAME weights (assets/efficientnet-lite0.safetensors, fp16 cast to f32) and the
SAME input tensors (written by `glassbox predict --save-raw`) as the Rust side, with the
reference Python architecture (PyPI efficientnet-lite-pytorch). Writes small files to
tests/refs/ that the Rust tests compare against, so CI needs no Python ML stack.
"""
import json
import sys

import torch
import torchvision
from safetensors.torch import load_file, save_file
from efficientnet_lite_pytorch import EfficientNet

torch.set_grad_enabled(False)
out_dir = sys.argv[1]
raw = load_file(sys.argv[2])  # input [N,3,224,224] from glassbox predict --save-raw

# 1. EfficientNet-Lite0 logits on the same weights and inputs.
weights = {k: v.float() for k, v in load_file("assets/efficientnet-lite0.safetensors").items()}
model = EfficientNet.from_name("efficientnet-lite0")  # never call set_swish(): it breaks the outputs
missing, unexpected = model.load_state_dict(weights, strict=False)
assert not unexpected, unexpected
assert all(k.endswith("num_batches_tracked") for k in missing), missing
model.eval()
x = raw["input"].float()
g = torch.Generator().manual_seed(0)
noise = torch.randn(1, 3, 224, 224, generator=g)
inputs = torch.cat([x, noise])
logits = model(inputs)
save_file({"input": inputs.contiguous(), "logits": logits.contiguous()},
          f"{out_dir}/efficientnet-lite0-logits.safetensors")
print("efficientnet-lite0 top-1:", logits.argmax(-1).tolist())

# 2. torchvision key names and shapes, and traced output shapes, per architecture.
archs = {
    "resnet18": torchvision.models.resnet18, "resnet34": torchvision.models.resnet34,
    "resnet50": torchvision.models.resnet50, "vgg11": torchvision.models.vgg11,
    "vgg16": torchvision.models.vgg16, "alexnet": torchvision.models.alexnet,
    "mobilenet_v2": torchvision.models.mobilenet_v2,
}
shapes = {}
for name, ctor in archs.items():
    m = ctor(num_classes=10).eval()
    keys = {k: list(v.shape) for k, v in m.state_dict().items() if not k.endswith("num_batches_tracked")}
    outs = {}
    hooks = [mod.register_forward_hook(lambda mod, i, o, n=n: outs.__setitem__(n, list(o.shape)))
             for n, mod in m.named_modules() if n]
    m(torch.zeros(1, 3, 224, 224))
    for h in hooks:
        h.remove()
    shapes[name] = {"keys": keys, "outputs": outs}
with open(f"{out_dir}/torchvision-shapes.json", "w") as f:
    json.dump(shapes, f, indent=0, sort_keys=True)
print("torchvision shapes for", ", ".join(shapes))

# 3. State-dict files in both PyTorch formats, with the awkward cases: views with a
#    storage offset and strides, shared storages, fp16/bf16/int64, and the same tensors
#    as safetensors (contiguous) to compare against.
import os
from collections import OrderedDict
g = torch.Generator().manual_seed(1)
base = torch.randn(6, 8, generator=g)
sd = OrderedDict()
sd["conv.weight"] = torch.randn(4, 3, 3, 3, generator=g)
sd["t.transposed"] = base.t()                      # strides (1, 8)
sd["t.offset_view"] = base[2:5, 1:7]               # storage offset 17, shares base's storage
sd["t.base"] = base
sd["h.half"] = torch.randn(5, generator=g).half()
sd["h.bf16"] = torch.randn(3, 2, generator=g).bfloat16()
sd["n.num_batches_tracked"] = torch.tensor(7)
torch.save(sd, f"{out_dir}/statedict-zip.pth")
torch.save(sd, f"{out_dir}/statedict-legacy.pth", _use_new_zipfile_serialization=False)
save_file({k: v.contiguous() for k, v in sd.items()}, f"{out_dir}/statedict.safetensors")

# 4. A checkpoint whose pickle calls os.system when unpickled: loaders must refuse it.
class Evil:
    def __reduce__(self):
        return (os.system, ("touch /tmp/glassbox-pwned",))
torch.save({"weight": Evil()}, f"{out_dir}/malicious-zip.pth")
torch.save({"weight": Evil()}, f"{out_dir}/malicious-legacy.pth", _use_new_zipfile_serialization=False)
print("state-dict fixtures written")
