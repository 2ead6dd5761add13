#!/usr/bin/env python3
"""Writes tests/data/inpaint/: what A1111's inpainting pixel steps give, computed with the
libraries A1111 uses (OpenCV for the mask blur, Pillow for the paste-back), for
tests/core/test_image_ops.cpp. Needs Debian's python3-opencv, python3-pil and python3-numpy.

  /usr/bin/python3 scripts/make-inpaint-fixtures.py
"""

import os

import cv2
import numpy as np
from PIL import Image, ImageOps

out = os.path.join(os.path.dirname(__file__), "..", "tests", "data", "inpaint")
os.makedirs(out, exist_ok=True)
rng = np.random.default_rng(20261203)

# A mask with hard edges, a gradient and noise: every blur tap and rounding case shows.
h, w = 40, 56
mask = np.zeros((h, w), np.uint8)
mask[8:30, 12:40] = 255
mask[:, 44:] = np.linspace(0, 255, w - 44).astype(np.uint8)[None, :]
mask[32:, :10] = rng.integers(0, 256, (h - 32, 10), dtype=np.uint8)
Image.fromarray(mask, "L").save(os.path.join(out, "mask.png"))

# A1111 processing.py StableDiffusionProcessingImg2Img.init: blur x, then blur y
for sigma in (1, 2, 4, 9):
    k = 2 * int(2.5 * sigma + 0.5) + 1
    blurred = cv2.GaussianBlur(mask, (k, 1), sigma)
    blurred = cv2.GaussianBlur(blurred, (1, k), sigma)
    Image.fromarray(blurred, "L").save(os.path.join(out, f"mask_blur{sigma}.png"))

# paste-back: processing.py's overlay (init image pasted through invert(mask_for_overlay) into
# an RGBa image, converted to RGBA) alpha-composited over the decoded image (apply_overlay)
init = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
decoded = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
Image.fromarray(init, "RGB").save(os.path.join(out, "init.png"))
Image.fromarray(decoded, "RGB").save(os.path.join(out, "decoded.png"))
for name in ("mask.png", "mask_blur4.png"):
    m = np.array(Image.open(os.path.join(out, name)))
    overlay_mask = Image.fromarray(np.clip(m.astype(np.float32) * 2, 0, 255).astype(np.uint8))
    image = Image.fromarray(init, "RGB")
    masked = Image.new("RGBa", (w, h))
    masked.paste(image.convert("RGBA").convert("RGBa"), mask=ImageOps.invert(overlay_mask.convert("L")))
    overlay = masked.convert("RGBA")
    result = Image.fromarray(decoded, "RGB").convert("RGBA")
    result.alpha_composite(overlay)
    result.convert("RGB").save(os.path.join(out, "pasted_" + name))
print("wrote", out)
