"""Captum 0.9, pytorch-grad-cam 1.5.7 and Zennit 0.5.1 timings on the SAME model, weights, input and
thread count as `glassbox-bench --methods` (run together by scripts/bench-peers.sh).
Prints one JSON object: {method: median milliseconds}."""
import json
import statistics
import sys
import time

import torch
from captum.attr import (GuidedGradCam, InputXGradient, IntegratedGradients, LayerGradCam, NoiseTunnel,
                         Occlusion, Saliency)
from pytorch_grad_cam import GradCAM, GradCAMPlusPlus, ScoreCAM
from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget
from safetensors.torch import load_file
from zennit.attribution import Gradient
from zennit.canonizers import SequentialMergeBatchNorm
from zennit.composites import EpsilonAlpha2Beta1, EpsilonGammaBox, EpsilonPlusFlat

sys.path.insert(0, "scripts")
# The reference Lite0 with the embedded weights; Captum's GuidedBackprop with its hook on ReLU6 too.
from attribution_refs import GuidedBackpropReLU6, lite0  # noqa: E402

threads, runs, raw = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
torch.set_num_threads(threads)
saved = load_file(raw)
x = saved["input"][:1].float().contiguous()
model, layer = lite0()
with torch.no_grad():
    logits = model(x)
    target = int(logits.argmax())
# The same network before timing it: its logits equal Glassbox's on the same input.
diff = (logits - saved["logits"][:1].float()).abs().max().item()
assert diff <= 1e-3, f"the reference Lite0 differs from Glassbox's: max |logit difference| {diff}"


def median_ms(fn, n):
    fn()  # warm-up, as glassbox-bench does
    t = []
    for _ in range(n):
        s = time.perf_counter()
        fn()
        t.append((time.perf_counter() - s) * 1e3)
    return statistics.median(t)


tgt = [ClassifierOutputTarget(target)]
std = 0.15 * float(x.max() - x.min())
slow = max(3, runs // 4)
r = {
    "gradient": median_ms(lambda: Saliency(model).attribute(x, target=target, abs=False), runs),
    "input-x-gradient": median_ms(lambda: InputXGradient(model).attribute(x, target=target), runs),
    "smoothgrad": median_ms(lambda: NoiseTunnel(Saliency(model)).attribute(
        x, nt_type="smoothgrad", nt_samples=16, stdevs=std, target=target, abs=False), slow),
    "integrated-gradients": median_ms(lambda: IntegratedGradients(model).attribute(
        x, target=target, n_steps=32, internal_batch_size=32), slow),
    "grad-cam (captum)": median_ms(lambda: LayerGradCam(model, layer).attribute(x, target=target), runs),
    "occlusion": median_ms(lambda: Occlusion(model).attribute(
        x, sliding_window_shapes=(3, 32, 32), strides=(3, 16, 16), baselines=0.0, target=target), slow),
}
r["guided-backprop"] = median_ms(lambda: GuidedBackpropReLU6(model).attribute(x, target=target), runs)
guided_grad_cam = GuidedGradCam(model, layer)
guided_grad_cam.guided_backprop = GuidedBackpropReLU6(model)  # Captum's own hooks nn.ReLU only
r["guided-grad-cam"] = median_ms(lambda: guided_grad_cam.attribute(x, target=target), runs)
for name, cls in [("grad-cam", GradCAM), ("grad-cam++", GradCAMPlusPlus)]:
    cam = cls(model=model, target_layers=[layer])
    r[name] = median_ms(lambda: cam(input_tensor=x, targets=tgt), runs)
# Zennit 0.5.1's composites on the same Lite0, its batch norms merged by Zennit's generic
# SequentialMergeBatchNorm (Zennit has no EfficientNet canonizer; the rules' convolutions,
# which the time is, are the same).
MEAN = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
STD = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)
composites = {
    "lrp-epsilon-plus-flat": lambda: EpsilonPlusFlat(canonizers=[SequentialMergeBatchNorm()]),
    "lrp-epsilon-gamma-box": lambda: EpsilonGammaBox(low=(0 - MEAN) / STD, high=(1 - MEAN) / STD,
                                                     canonizers=[SequentialMergeBatchNorm()]),
    "lrp-alpha2-beta1": lambda: EpsilonAlpha2Beta1(canonizers=[SequentialMergeBatchNorm()]),
}
onehot = torch.eye(logits.shape[1])[[target]]
for name, make in composites.items():
    with Gradient(model=model, composite=make()) as attributor:
        r[name] = median_ms(lambda: attributor(x, onehot), runs)
cam = ScoreCAM(model=model, target_layers=[layer])
cam.batch_size = 64
r["score-cam"] = median_ms(lambda: cam(input_tensor=x, targets=tgt), 1)
print(json.dumps({"threads": threads, "logit_max_diff": diff, "times_ms": r}))
