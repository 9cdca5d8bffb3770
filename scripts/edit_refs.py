"""Edited-model references from PyTorch (run by `make refs`).

The embedded EfficientNet-Lite0 weights in the reference Python architecture (PyPI
efficientnet-lite-pytorch), with the same edits Glassbox's test applies: scale, zero, set on
weights, and a knocked-out channel as a forward hook on the block. Logits on the reference
inputs go to tests/refs/edited-lite0-logits.safetensors, so CI needs no Python.
"""
import sys

import torch
from efficientnet_lite_pytorch import EfficientNet
from safetensors.torch import load_file, save_file

torch.set_grad_enabled(False)
out_dir = sys.argv[1]
weights = {k: v.float() for k, v in load_file("assets/efficientnet-lite0.safetensors").items()}
model = EfficientNet.from_name("efficientnet-lite0")  # never call set_swish(): it breaks the outputs
model.load_state_dict(weights, strict=False)
model.eval()
x = load_file(f"{out_dir}/efficientnet-lite0-logits.safetensors")["input"].float()

# The edits of tests/reference.rs, in Glassbox's words:
#   scale _blocks.3._project_conv.weight[5] 0.5
#   zero _conv_stem.weight[2]
#   set _conv_head.weight[7,100,0,0]=1.5
#   knockout _blocks.5:3
sd = model.state_dict()
sd["_blocks.3._project_conv.weight"][5] *= 0.5
sd["_conv_stem.weight"][2] = 0.0
sd["_conv_head.weight"][7, 100, 0, 0] = 1.5
model.load_state_dict(sd)


def knockout(module, inputs, output):
    output = output.clone()
    output[:, 3] = 0.0
    return output


model._blocks[5].register_forward_hook(knockout)
logits = model(x)
save_file({"logits": logits.contiguous()}, f"{out_dir}/edited-lite0-logits.safetensors")
print("edited top-1:", logits.argmax(-1).tolist())
