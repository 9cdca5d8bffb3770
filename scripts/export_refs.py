"""PyTorch loads what `glassbox export` writes (run by `make refs`; CI never runs it).

1. safetensors: a torchvision ResNet-18 (seeded, 10 classes) edited by `glassbox edit`
   (a filter scaled), exported with `--format safetensors`, loads back with README's four
   lines (`load_state_dict(load_file(F))`, strict) and gives Glassbox's logits.
2. TorchScript: the same model with a channel knocked out, and the MNIST model with two
   classes added by imprinting, exported with `--format torchscript`: `torch.jit.load` runs
   them with Glassbox's logits, and the extra file glassbox.json holds labels and preprocessing.
Every difference must be <= 1e-4; the figures go to tests/refs/export.json.
"""
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import torch
import torchvision
from safetensors.torch import load_file, save_file

out_dir = Path(sys.argv[1])
tmp = Path(tempfile.mkdtemp())
gb = "target/debug/glassbox"
torch.manual_seed(0)
torch.set_grad_enabled(False)


def run(*args):
    subprocess.run([gb, *map(str, args)], check=True, stdout=subprocess.DEVNULL)


def glassbox_logits(model, images):
    raw = tmp / "raw.safetensors"
    run("predict", "--model", model, *images, "--save-raw", raw, "--device", "cpu")
    r = load_file(raw)
    return r["input"].float(), r["logits"].float()


images = ["assets/samples/chelsea.png", "assets/samples/coffee.png"]
net = torchvision.models.resnet18(num_classes=10)
# Running statistics that are not 0 and 1, so that batch norm matters.
for m in net.modules():
    if isinstance(m, torch.nn.BatchNorm2d):
        m.running_mean.uniform_(-0.1, 0.1)
        m.running_var.uniform_(0.5, 1.5)
save_file(net.state_dict(), tmp / "resnet18.safetensors")
figures = {}

# 1. An edited filter, back through safetensors with README's four lines.
run("edit", "--model", tmp / "resnet18.safetensors", "--op", "scale layer1.0.conv1.weight[3] 0.5",
    "--out", tmp / "edited.safetensors")
run("export", "--model", tmp / "edited.safetensors", "--format", "safetensors", "--out", tmp / "back.safetensors")
x, want = glassbox_logits(tmp / "edited.safetensors", images)
m = torchvision.models.resnet18(num_classes=10)
m.load_state_dict(load_file(tmp / "back.safetensors"))
m.eval()
assert torch.equal(m.layer1[0].conv1.weight[3], net.layer1[0].conv1.weight[3] * 0.5)
figures["safetensors_resnet18_max_logit_diff"] = (m(x) - want).abs().max().item()

# 2a. A knocked-out channel, in a TorchScript module.
run("edit", "--model", tmp / "edited.safetensors", "--op", "knockout layer2.0:5", "--out", tmp / "knocked.safetensors")
run("export", "--model", tmp / "knocked.safetensors", "--format", "torchscript", "--out", tmp / "knocked.pt")
x, want = glassbox_logits(tmp / "knocked.safetensors", images)
extra = {"glassbox.json": ""}
ts = torch.jit.load(tmp / "knocked.pt", _extra_files=extra)
side = json.loads(extra["glassbox.json"])
assert side["knockouts"] == ["layer2.0:5"], side["knockouts"]
figures["torchscript_knockout_max_logit_diff"] = (ts(x) - want).abs().max().item()


def zero_channel(module, inputs, output):
    output = output.clone()
    output[:, 5] = 0.0
    return output


m.layer2[0].register_forward_hook(zero_channel)
figures["torchscript_knockout_vs_pytorch_hook_max_logit_diff"] = (ts(x) - m(x)).abs().max().item()

# 2b. Two classes added to the MNIST model by imprinting.
run("finetune", "--model", "mnist", "--data", "assets/lessons/two-digits", "--add-classes", "--epochs", "0",
    "--out", tmp / "plus.safetensors")
run("export", "--model", tmp / "plus.safetensors", "--format", "torchscript", "--out", tmp / "plus.pt")
digits = sorted(str(p) for p in Path("assets/lessons/two-digits").glob("*/*.png"))[:4]
x, want = glassbox_logits(tmp / "plus.safetensors", digits)
extra = {"glassbox.json": ""}
ts = torch.jit.load(tmp / "plus.pt", _extra_files=extra)
side = json.loads(extra["glassbox.json"])
assert side["labels"][-2:] == ["digit-3", "digit-7"] and len(side["labels"]) == 12, side["labels"]
assert ts(x).shape == (4, 12)
figures["torchscript_added_classes_max_logit_diff"] = (ts(x) - want).abs().max().item()

print(json.dumps(figures, indent=1))
for k, v in figures.items():
    assert v <= 1e-4, f"{k}: {v}"
(out_dir / "export.json").write_text(json.dumps(figures, indent=1) + "\n")
