"""Logits of every architecture Glassbox opens, from the reference implementations (run by
`make refs`): torchvision's ResNet-18/34/50, VGG-11/16, AlexNet and MobileNetV2, PyPI
efficientnet-lite-pytorch's EfficientNet-Lite0/1/2, and tiny-cnn written out in PyTorch
(Glassbox's own small net: crates/glassbox-engine/src/arch/tiny_cnn.rs).

Every model has 10 classes and synthetic weights: EVERY tensor of its state dict (weights,
biases, batch-norm weight, bias, running_mean and running_var) comes from a formula of the
tensor's rank in sorted key order and the element's index, which tests/common/mod.rs
computes identically. The input is a formula too, so only the logits (a few hundred bytes
per architecture) are committed: tests/refs/arch-logits.safetensors, with the number of
state-dict keys of each model and a sha256 of its keys and shapes in the metadata (`keys`,
JSON).
"""
import hashlib
import json
import math
import sys

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
import torchvision
from efficientnet_lite_pytorch import EfficientNet
from safetensors.torch import save_file

torch.set_grad_enabled(False)
torch.set_num_threads(2)
CLASSES = 10


def wave(n, stream):
    """n values uniform in [-1, 1), the i-th from splitmix64 of stream * 2^32 + i: integer
    arithmetic mod 2^64, so Rust computes the same values bit for bit. (A sine of the index
    would make every filter one frequency and each layer's outputs rank 2.)"""
    out = np.empty(n, dtype=np.float64)
    for a in range(0, n, 1 << 24):  # in chunks: VGG's first linear layer has 103M values
        z = np.arange(a, min(n, a + (1 << 24)), dtype=np.uint64) + np.uint64(stream << 32)
        z += np.uint64(0x9E3779B97F4A7C15)
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        z ^= z >> np.uint64(31)
        out[a:a + len(z)] = (z >> np.uint64(11)).astype(np.float64) * 2.0 ** -52 - 1.0
    return out


def synthetic(name, shape, t):
    """Every element of tensor `name`, number t in sorted key order: the formula of
    `arch_values` in tests/common/mod.rs. Batch-norm statistics are not the identity, so a
    missed or misnamed buffer changes the logits; weights are fan-in scaled (He: variance
    2 / fan-in), so activations keep their scale through deep nets."""
    n = int(np.prod(shape)) if shape else 1
    w = wave(n, t)
    if name.endswith("running_mean"):
        v = 0.1 * w
    elif name.endswith("running_var"):
        v = 1.0 + 0.5 * np.abs(w)
    elif name.endswith(".bias"):
        v = 0.1 * w
    elif len(shape) == 1:  # batch-norm weight
        v = 1.0 + 0.2 * w
    else:
        fan_in = n // shape[0]
        v = math.sqrt(3.0) * math.sqrt(2.0 / fan_in) * w
    return torch.from_numpy(v.astype(np.float32)).reshape(shape)


INPUT_STREAM = 1 << 20


def synthetic_input(size, channels):
    """The input [2, channels, size, size]: image 0 is noise of unit variance (sqrt(3) times
    the wave of INPUT_STREAM, element j in row-major order), image 1 half that noise plus
    smooth stripes 1.5 * sin(0.11 x + 0.7 c) * cos(0.07 y + 0.3 c)."""
    noise = math.sqrt(3.0) * wave(2 * channels * size * size, INPUT_STREAM).reshape(2, channels, size, size)
    c, y, x = np.meshgrid(*(np.arange(k, dtype=np.float64) for k in (channels, size, size)), indexing="ij")
    noise[1] = 0.5 * noise[1] + 1.5 * np.sin(0.11 * x + 0.7 * c) * np.cos(0.07 * y + 0.3 * c)
    return torch.from_numpy(noise.astype(np.float32))


class TinyCnn(nn.Module):
    """crates/glassbox-engine/src/arch/tiny_cnn.rs in PyTorch: conv1 -> bn1 -> relu -> pool -> conv2 -> bn2 ->
    relu -> pool -> fc1 -> relu -> (dropout) -> fc2."""

    def __init__(self, in_channels=1, classes=CLASSES):
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, 16, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(16)
        self.conv2 = nn.Conv2d(16, 32, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(32)
        self.fc1 = nn.Linear(32 * 7 * 7, 128)
        self.fc2 = nn.Linear(128, classes)

    def forward(self, x):
        x = F.max_pool2d(F.relu(self.bn1(self.conv1(x))), 2)
        x = F.max_pool2d(F.relu(self.bn2(self.conv2(x))), 2)
        return self.fc2(F.relu(self.fc1(x.flatten(1))))


def lite(v):
    return lambda: EfficientNet.from_name(f"efficientnet-lite{v}", num_classes=CLASSES)


def tv(ctor):
    return lambda: ctor(num_classes=CLASSES)


# name (as --arch takes it) -> (constructor, input size, input channels)
ARCHS = {
    "efficientnet-lite0": (lite(0), 224, 3),
    "efficientnet-lite1": (lite(1), 240, 3),
    "efficientnet-lite2": (lite(2), 260, 3),
    "resnet18": (tv(torchvision.models.resnet18), 224, 3),
    "resnet34": (tv(torchvision.models.resnet34), 224, 3),
    "resnet50": (tv(torchvision.models.resnet50), 224, 3),
    "vgg11": (tv(torchvision.models.vgg11), 224, 3),
    "vgg16": (tv(torchvision.models.vgg16), 224, 3),
    "alexnet": (tv(torchvision.models.alexnet), 224, 3),
    "mobilenet_v2": (tv(torchvision.models.mobilenet_v2), 224, 3),
    "tiny-cnn": (TinyCnn, 28, 1),
}


def keys_digest(sd):
    """sha256 of one line `key [d0, d1, ...]` per tensor in sorted order (num_batches_tracked
    left out): Glassbox must have exactly these keys with these shapes."""
    lines = "".join(f"{k} [{', '.join(map(str, v.shape))}]\n" for k, v in sorted(sd.items())
                    if not k.endswith("num_batches_tracked"))
    return hashlib.sha256(lines.encode()).hexdigest()


def logits(name):
    ctor, size, channels = ARCHS[name]
    m = ctor().eval()
    sd = m.state_dict()
    keys = sorted(k for k in sd if not k.endswith("num_batches_tracked"))
    missing, unexpected = m.load_state_dict(
        {k: synthetic(k, list(sd[k].shape), t) for t, k in enumerate(keys)}, strict=False)
    assert not unexpected and all(k.endswith("num_batches_tracked") for k in missing), (missing, unexpected)
    return m(synthetic_input(size, channels)), len(keys), keys_digest(sd)


if __name__ == "__main__":
    out_dir = sys.argv[1]
    out, meta = {}, {}
    for name in ARCHS:
        y, n, digest = logits(name)
        print(f"{name:20s} logits std {float(y.std()):8.3f}, max |v| {float(y.abs().max()):8.3f},"
              f" row difference {float((y[0] - y[1]).abs().max()):7.3f}, top-1 {y.argmax(-1).tolist()}")
        out[name] = y.contiguous()
        meta[name] = {"keys": n, "keys_sha256": digest}
    # One metadata entry: safetensors writes several in a random order.
    save_file(out, f"{out_dir}/arch-logits.safetensors", metadata={"keys": json.dumps(meta, sort_keys=True)})
