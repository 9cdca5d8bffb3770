"""Preprocessing references from torchvision (run by `make refs`).

torchvision's standard ImageNet pipeline on the sample photos and on odd ones made from
them: grayscale, RGBA, 16-bit RGB, an EXIF-rotated JPEG, and a size whose centre crop lands
on a half pixel (torchvision rounds it half to even). Decoding is torchvision.io's (RGB,
EXIF orientation applied, 16-bit scaled), then Resize(256, bilinear, antialias) of the
shorter side, CenterCrop(224), scaled to [0, 1]. The inputs are written to
tests/refs/preprocess/ and the crops to tests/refs/preprocess-torchvision.safetensors (f16),
so the Rust test compares without Python.
"""
import os
import sys

import cv2
import numpy as np
import torch
from PIL import Image
from safetensors.torch import save_file
from torchvision.io import ImageReadMode, decode_image
from torchvision.transforms import v2

out_dir = sys.argv[1]
inputs = os.path.join(out_dir, "preprocess")
os.makedirs(inputs, exist_ok=True)

chelsea = Image.open("assets/samples/chelsea.png").convert("RGB")
coffee = Image.open("assets/samples/coffee.png").convert("RGB")
made = {}
made["chelsea.png"] = "assets/samples/chelsea.png"
made["coffee.png"] = "assets/samples/coffee.png"
p = os.path.join(inputs, "gray.png")
coffee.convert("L").save(p)
made["gray.png"] = p
p = os.path.join(inputs, "rgba.png")
rgba = chelsea.convert("RGBA")
a = np.array(rgba)
a[..., 3] = np.linspace(0, 255, a.shape[1]).astype(np.uint8)[None, :]
Image.fromarray(a).save(p)
made["rgba.png"] = p
p = os.path.join(inputs, "rgb16.png")
small = coffee.resize((300, 200), Image.Resampling.LANCZOS)
c16 = np.array(small).astype(np.uint16) * 257 + (np.arange(small.width, dtype=np.uint16)[None, :, None] % 200)
cv2.imwrite(p, c16[..., ::-1])  # OpenCV writes BGR
made["rgb16.png"] = p
p = os.path.join(inputs, "exif-rotated.jpg")
exif = Image.Exif()
exif[0x0112] = 6  # stored sideways: turn 90 degrees clockwise to view
chelsea.transpose(Image.Transpose.ROTATE_90).save(p, quality=95, exif=exif.tobytes())
made["exif-rotated.jpg"] = p
# 301x200: the shorter side to 256 makes the longer 385, and (385 - 224) / 2 = 80.5.
p = os.path.join(inputs, "half-pixel-crop.png")
chelsea.resize((301, 200), Image.Resampling.LANCZOS).save(p)
made["half-pixel-crop.png"] = p

pipeline = v2.Compose([
    v2.ToDtype(torch.float32, scale=True),
    v2.Resize(256, interpolation=v2.InterpolationMode.BILINEAR, antialias=True),
    v2.CenterCrop(224),
])
refs = {}
for name, path in made.items():
    data = torch.frombuffer(bytearray(open(path, "rb").read()), dtype=torch.uint8)
    img = decode_image(data, mode=ImageReadMode.RGB, apply_exif_orientation=True)
    refs[name] = pipeline(img).clamp(0, 1).to(torch.float16).contiguous()
    print(name, tuple(img.shape), img.dtype, "->", tuple(refs[name].shape))
save_file(refs, os.path.join(out_dir, "preprocess-torchvision.safetensors"))
