"""Attribution references from Captum 0.9 and pytorch-grad-cam 1.5.7 (run by `make refs`).

Two models, the SAME weights and SAME input tensor as the Rust side:
- the embedded EfficientNet-Lite0 (assets/efficientnet-lite0.safetensors, f16 cast to f32),
  with the reference architecture from PyPI efficientnet-lite-pytorch;
- torchvision's ResNet-18 (10 classes) with synthetic weights from a formula that
  tests/common/mod.rs computes identically (no 45 MB file to commit); a ReLU network.
Guided backprop is Captum's on ResNet-18 and, on Lite0 (ReLU6), Captum's class with its hook
registered on ReLU6 as well (Captum itself hooks nn.ReLU only).
Maps are saved as f16 scaled to max |v| = 1 (Pearson correlations do not notice), the input and scalars as f32.
"""
import math
import sys

import numpy as np
import torch
import torch.nn as nn
import torchvision
from captum.attr import (GuidedBackprop, InputXGradient, IntegratedGradients, NoiseTunnel,
                         Occlusion, Saliency)
from captum._utils.common import _register_backward_hook
from efficientnet_lite_pytorch import EfficientNet
from pytorch_grad_cam import GradCAM, GradCAMPlusPlus, ScoreCAM
from safetensors.torch import load_file, save_file

torch.set_num_threads(2)


class Lite0(EfficientNet):
    """The reference EfficientNet-Lite0 with a distinct module for the head activation,
    so that hooks can name it (Glassbox calls it `_swish#2`)."""

    def extract_features(self, inputs):
        x = self._swish(self._bn0(self._conv_stem(inputs)))
        for block in self._blocks:
            x = block(x, drop_connect_rate=None)
        return self._head_swish(self._bn1(self._conv_head(x)))


class GuidedBackpropReLU6(GuidedBackprop):
    """Captum's GuidedBackprop with its rule on ReLU6 too (Captum hooks nn.ReLU only):
    the same hook, F.relu of the activation's grad_input."""

    def _register_hooks(self, module):
        if isinstance(module, (nn.ReLU, nn.ReLU6)):
            self.backward_hooks.extend(_register_backward_hook(module, self._backward_hook, self))


def lite0():
    m = Lite0.from_name("efficientnet-lite0")
    m._head_swish = nn.ReLU6()
    w = {k: v.float() for k, v in load_file("assets/efficientnet-lite0.safetensors").items()}
    missing, unexpected = m.load_state_dict(w, strict=False)
    assert not unexpected and all(k.endswith("num_batches_tracked") for k in missing)
    return m.eval(), m._head_swish


def synthetic(name, shape, t):
    """Deterministic weights: the formula tests/common/mod.rs uses too."""
    n = int(np.prod(shape)) if shape else 1
    i = np.arange(n, dtype=np.float64)
    wave = np.sin(i * 0.7071 + t * 1.3 + 0.5)
    if name.endswith("running_mean"):
        v = np.zeros(n)
    elif name.endswith("running_var"):
        v = np.ones(n)
    elif name.endswith(".bias"):
        v = 0.01 * wave
    elif len(shape) == 1:  # BatchNorm weight
        v = 1.0 + 0.1 * wave
    else:
        fan_in = n // shape[0]
        v = math.sqrt(3.0) * math.sqrt(2.0 / fan_in) * wave
    return torch.from_numpy(v.astype(np.float32)).reshape(shape)


def resnet18():
    m = torchvision.models.resnet18(num_classes=10)
    sd = m.state_dict()
    keys = sorted(k for k in sd if not k.endswith("num_batches_tracked"))
    m.load_state_dict({k: synthetic(k, list(sd[k].shape), t) for t, k in enumerate(keys)}, strict=False)
    for mod in m.modules():
        if isinstance(mod, nn.ReLU):
            mod.inplace = False  # Captum's backward hooks cannot see in-place ReLUs
    return m.eval(), m.layer4[1]


def raw_cam(cls, model, layer, inp, target):
    """A pytorch-grad-cam map at the layer's resolution, after ReLU, not normalised."""
    cam = cls(model=model, target_layers=[layer])
    cam.batch_size = 64
    out = cam.activations_and_grads(inp)
    model.zero_grad()
    out[0, target].backward(retain_graph=True)
    acts = cam.activations_and_grads.activations[0].cpu().numpy()
    grads = cam.activations_and_grads.gradients[0].cpu().numpy() if cam.activations_and_grads.gradients else None

    class T:
        def __call__(self, o):
            return o[target] if o.ndim == 1 else o[:, target]

    m = cam.get_cam_image(inp, layer, [T()], acts, grads, False)
    return torch.from_numpy(np.maximum(m, 0)).float().reshape(1, 1, *m.shape[-2:])


def grayscale_cam(model, layer, inp, target):
    """pytorch-grad-cam's normalised, cv2-resized Grad-CAM (what guided Grad-CAM multiplies by)."""
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget
    with GradCAM(model=model, target_layers=[layer]) as cam:
        return torch.from_numpy(cam(input_tensor=inp, targets=[ClassifierOutputTarget(target)])).float()


def references(x, out_dir, name, model, layer, guided):
    with torch.no_grad():
        logits = model(x)
    target = int(logits.argmax(-1))
    r = {"input": x, "logits": logits, "target": torch.tensor([float(target)])}
    r["gradient"] = Saliency(model).attribute(x, target=target, abs=False)
    r["input_x_gradient"] = InputXGradient(model).attribute(x, target=target)
    ig, delta = IntegratedGradients(model).attribute(
        x, baselines=torch.zeros_like(x), target=target, n_steps=32, method="gausslegendre",
        return_convergence_delta=True)
    r["integrated_gradients"], r["ig_delta"] = ig, delta.float().reshape(1)
    ig128, delta128 = IntegratedGradients(model).attribute(
        x, baselines=torch.zeros_like(x), target=target, n_steps=128, method="gausslegendre",
        return_convergence_delta=True, internal_batch_size=32)
    r["ig128_delta"] = delta128.float().reshape(1)
    torch.manual_seed(0)
    std = 0.15 * float(x.max() - x.min())
    r["smoothgrad"] = NoiseTunnel(Saliency(model)).attribute(
        x, nt_type="smoothgrad", nt_samples=64, nt_samples_batch_size=16, stdevs=std, target=target, abs=False)
    r["occlusion"] = Occlusion(model).attribute(
        x, sliding_window_shapes=(3, 32, 32), strides=(3, 16, 16), baselines=0.0, target=target)
    r["grad_cam"] = raw_cam(GradCAM, model, layer, x, target)
    r["grad_cam_pp"] = raw_cam(GradCAMPlusPlus, model, layer, x, target)
    r["score_cam"] = raw_cam(ScoreCAM, model, layer, x, target)
    if guided:
        gb = guided(model).attribute(x, target=target)
        r["guided_backprop"] = gb
        r["guided_grad_cam"] = gb * grayscale_cam(model, layer, x, target)[:, None]
    # Maps are scaled to max |v| = 1 before f16 (guided backprop exceeds f16's range here);
    # correlations do not change with scale.
    out = {k: ((v / v.abs().max()).detach().half() if v.ndim == 4 and k != "input" else v.detach().float()).contiguous()
           for k, v in r.items()}
    out["smoothgrad_scale"] = r["smoothgrad"].abs().max().reshape(1).float()
    save_file(out, f"{out_dir}/attributions-{name}.safetensors")
    print(name, "target", target, "IG delta", float(delta), "(128 steps:", float(delta128), ")")


if __name__ == "__main__":
    out_dir, raw_path = sys.argv[1], sys.argv[2]
    x = load_file(raw_path)["input"][:1].float().contiguous()  # chelsea, as glassbox preprocesses it
    references(x, out_dir, "efficientnet-lite0", *lite0(), guided=GuidedBackpropReLU6)
    references(x, out_dir, "resnet18", *resnet18(), guided=GuidedBackprop)
