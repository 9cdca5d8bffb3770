"""A ROAD reference from pytorch-grad-cam 1.5.7 (run by `make refs`): `ROADCombined` with its
default percentiles (10..90), the target's softmax probability
(`ClassifierOutputSoftmaxTarget`) and the imputer's noise off, on the embedded
EfficientNet-Lite0 (the architecture and weights of scripts/attribution_refs.py), the
chelsea input Glassbox preprocesses, and one fixed map: max |gradient| over the colour
channels of Captum's saliency reference (tests/refs/attributions-efficientnet-lite0), as f16.
Also each percentile's probability with the most and the least relevant pixels imputed.
Writes tests/refs/road.safetensors (the map, the scores; the input is the attribution refs').
"""
import sys

import numpy as np
import torch
import pytorch_grad_cam.metrics.road as road
from pytorch_grad_cam.metrics.road import (NoisyLinearImputer, ROADCombined, ROADLeastRelevantFirst,
                                           ROADMostRelevantFirst)
from pytorch_grad_cam.utils.model_targets import ClassifierOutputSoftmaxTarget
from safetensors.torch import load_file, save_file

from attribution_refs import lite0

torch.set_num_threads(2)
PERCENTILES = [10, 20, 30, 40, 50, 60, 70, 80, 90]

if __name__ == "__main__":
    out_dir = sys.argv[1]
    r = load_file(f"{out_dir}/attributions-efficientnet-lite0.safetensors")
    x, target = r["input"].float(), int(r["target"][0])
    cam = r["gradient"].float().abs().amax(1)[0].half()  # [224, 224]
    model, _ = lite0()
    NoisyLinearImputer.__init__.__defaults__ = (0.0, road.neighbors_weights)  # noise off
    cams = cam.float().numpy()[None]
    targets = [ClassifierOutputSoftmaxTarget(target)]
    with torch.no_grad():
        combined = ROADCombined(percentiles=PERCENTILES)(x, cams, targets, model)
        base = torch.softmax(model(x), -1)[0, target].item()
        most = [float(ROADMostRelevantFirst(percentile=p)(x, cams, targets, model)[0]) + base for p in PERCENTILES]
        least = [float(ROADLeastRelevantFirst(percentile=p)(x, cams, targets, model)[0]) + base for p in PERCENTILES]
    print("ROADCombined", float(combined[0]), "most first", most, "least first", least)
    save_file({
        "map": cam.contiguous(),
        "target": torch.tensor([float(target)]),
        "combined": torch.tensor([float(combined[0])]),
        "most_first": torch.tensor(most),
        "least_first": torch.tensor(least),
    }, f"{out_dir}/road.safetensors")
