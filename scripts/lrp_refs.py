"""LRP references from Zennit 0.5.1 (run by `make refs`): torchvision ResNet-18 and VGG-16
(10 classes) with the synthetic weights of scripts/arch_refs.py (every weight, bias and
batch-norm statistic from a formula tests/common/mod.rs computes identically), on the two
sample photos preprocessed as torchvision does (resize 256, centre crop 224, ImageNet mean
and std), stored as f16 and read back, so both sides start from the same numbers.

For each model, photo and composite (Zennit's EpsilonPlusFlat, EpsilonGammaBox with the box
pixel 0..255 after the preprocessing, EpsilonAlpha2Beta1; ResNet with ResNetCanonizer, VGG
with VGGCanonizer), relevance starting as the one-hot at the top class: the heat map (the
relevance summed over colour channels, [1, 1, 224, 224]) for coffee, the whole map
[1, 3, 224, 224] for chelsea, scaled to max |v| = 1 as f16; and the sum of the input
relevance (f32).
Writes tests/refs/lrp.safetensors.
"""
import sys

import numpy as np
import torch
import torchvision
from PIL import Image
from safetensors.torch import save_file
from zennit.attribution import Gradient
from zennit.canonizers import SequentialMergeBatchNorm
from zennit.composites import EpsilonAlpha2Beta1, EpsilonGammaBox, EpsilonPlusFlat
from zennit.torchvision import ResNetCanonizer, VGGCanonizer

from arch_refs import synthetic

torch.set_num_threads(2)
torch.set_grad_enabled(True)  # arch_refs turns it off when imported
MEAN = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
STD = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)
PHOTOS = ["chelsea", "coffee"]


def photo(name):
    img = Image.open(f"assets/samples/{name}.png").convert("RGB")
    img = torchvision.transforms.functional.resize(img, 256)
    img = torchvision.transforms.functional.center_crop(img, 224)
    x = torch.from_numpy(np.asarray(img, dtype=np.float32) / 255.0).permute(2, 0, 1)[None]
    return ((x - MEAN) / STD).half().float()


def model(ctor):
    m = ctor(num_classes=10).eval()
    sd = m.state_dict()
    keys = sorted(k for k in sd if not k.endswith("num_batches_tracked"))
    m.load_state_dict({k: synthetic(k, list(sd[k].shape), t) for t, k in enumerate(keys)}, strict=False)
    for mod in m.modules():
        if isinstance(mod, torch.nn.ReLU):
            mod.inplace = False
    return m


def composites(canonizer):
    low, high = (0 - MEAN) / STD, (1 - MEAN) / STD
    return {
        "lrp-epsilon-plus-flat": EpsilonPlusFlat(canonizers=[canonizer()]),
        "lrp-epsilon-gamma-box": EpsilonGammaBox(low=low, high=high, canonizers=[canonizer()]),
        "lrp-alpha2-beta1": EpsilonAlpha2Beta1(canonizers=[canonizer()]),
    }


if __name__ == "__main__":
    out_dir = sys.argv[1]
    out = {}
    for p in PHOTOS:
        out[f"input.{p}"] = photo(p).half()
    for name, ctor, canonizer in [("resnet18", torchvision.models.resnet18, ResNetCanonizer),
                                  ("vgg16", torchvision.models.vgg16, VGGCanonizer)]:
        m = model(ctor)
        for p in PHOTOS:
            x = out[f"input.{p}"].float()
            with torch.no_grad():
                target = int(m(x).argmax())
            out[f"{name}.{p}.target"] = torch.tensor([float(target)])
            for method, composite in composites(canonizer).items():
                with Gradient(model=m, composite=composite) as attributor:
                    _, r = attributor(x, torch.eye(10)[[target]])
                out[f"{name}.{p}.{method}.sum"] = r.sum().reshape(1).float()
                if p == "chelsea":
                    out[f"{name}.{p}.{method}.full"] = (r / r.abs().max()).half()
                else:
                    heat = r.sum(1, keepdim=True)
                    out[f"{name}.{p}.{method}"] = (heat / heat.abs().max()).half()
                print(name, p, method, "target", target, "sum of relevance", float(r.sum()))
    save_file({k: v.contiguous() for k, v in out.items()}, f"{out_dir}/lrp.safetensors")
