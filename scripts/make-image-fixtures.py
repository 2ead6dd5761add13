#!/usr/bin/env python3
"""Writes the image fixtures of tests/core/test_image_read.cpp and test_resample.cpp into
tests/data/images/: input images of every PNG kind (and JPEGs) with what Pillow 9.4 and A1111
make of them, and Pillow resizes with the expected pixels; and the seeds of fuzz/fuzz_image.cpp
(fuzz/corpus_image/). Run with the Python that has Pillow
9.4 (Debian's /usr/bin/python3):

    /usr/bin/python3 scripts/make-image-fixtures.py

Deterministic: the random images come from a seeded generator, so re-running it rewrites the
same files (Pillow's PNG and JPEG encoders are deterministic for a given zlib / libjpeg).
"""
import io
import os
import struct
import sys
import zlib

import numpy as np
from PIL import Image

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT = os.path.join(ROOT, "tests", "data", "images")
CONFORMANCE = os.path.join(ROOT, "..", "shared", "conformance", "img2img")

if not Image.__version__.startswith("9.4."):
    sys.exit(f"Pillow 9.4 wanted (the spec's reference), found {Image.__version__}")


def save(im, name, **kw):
    im.save(os.path.join(OUT, name), **kw)


# --- a PNG writer of our own, for what Pillow cannot write (16-bit RGB/RGBA/LA, Adam7) ---


def _chunk(kind, data):
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def _scanlines(pixels, depth):
    """pixels: [h, w, c] integers -> filtered (type 1, Sub, on odd rows) scanlines."""
    h = pixels.shape[0]
    if depth == 16:
        rows = [pixels[y].astype(">u2").tobytes() for y in range(h)]
        bpp = pixels.shape[2] * 2
    elif depth == 8:
        rows = [pixels[y].astype(np.uint8).tobytes() for y in range(h)]
        bpp = pixels.shape[2]
    else:  # 1, 2, 4: one channel, packed high bits first
        per = 8 // depth
        rows = []
        for y in range(h):
            v = pixels[y, :, 0].astype(np.uint8)
            v = np.concatenate([v, np.zeros((-len(v)) % per, np.uint8)]).reshape(-1, per)
            shifts = np.arange(per - 1, -1, -1) * depth
            rows.append((v << shifts).sum(axis=1).astype(np.uint8).tobytes())
        bpp = 1
    out = b""
    for y, row in enumerate(rows):
        if y % 2:  # Sub filter on every other row, so the unfiltering is exercised
            r = np.frombuffer(row, np.uint8).astype(np.int32)
            prev = np.concatenate([np.zeros(bpp, np.int32), r[:-bpp]])
            out += b"\x01" + ((r - prev) & 0xFF).astype(np.uint8).tobytes()
        else:
            out += b"\x00" + row
    return out


ADAM7 = [(0, 0, 8, 8), (4, 0, 8, 8), (0, 4, 4, 8), (2, 0, 4, 4), (0, 2, 2, 4), (1, 0, 2, 2),
         (0, 1, 1, 2)]


def png_bytes(pixels, depth, color, interlace=False, extra=b""):
    h, w = pixels.shape[:2]
    if interlace:
        raw = b""
        for x0, y0, dx, dy in ADAM7:
            sub = pixels[y0::dy, x0::dx]
            if sub.shape[0] and sub.shape[1]:
                raw += _scanlines(sub, depth)
    else:
        raw = _scanlines(pixels, depth)
    ihdr = struct.pack(">IIBBBBB", w, h, depth, color, 0, 0, 1 if interlace else 0)
    return (b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", ihdr) + extra +
            _chunk(b"IDAT", zlib.compress(raw, 9)) + _chunk(b"IEND", b""))


# --- what A1111 makes of an uploaded image (the webui hands images over as RGBA: gradio
# image_mode="RGBA") ---


def a1111_rgb(im):
    """modules/images.py flatten(img, '#ffffff') of the RGBA image."""
    im = im.convert("RGBA")
    bg = Image.new("RGBA", im.size, "#ffffff")
    bg.paste(im, mask=im)
    # Image.alpha_composite gives the same bytes over an opaque background (checked here)
    composite = Image.alpha_composite(Image.new("RGBA", im.size, "#ffffff"), im)
    assert composite.convert("RGB").tobytes() == bg.convert("RGB").tobytes()
    return bg.convert("RGB")


def a1111_mask(im):
    """modules/processing.py create_binary_mask(image, round=True) of the RGBA image."""
    im = im.convert("RGBA")
    if im.getextrema()[-1] != (255, 255):
        return im.split()[-1].convert("L").point(lambda x: 255 if x > 128 else 0)
    return im.convert("L")


def decode_case(name, data, rgb=None, mask=None):
    """Writes the input file and its expected RGB image and mask (Pillow's, unless given)."""
    with open(os.path.join(OUT, name), "wb") as f:
        f.write(data)
    im = Image.open(io.BytesIO(data))
    im.load()
    stem = os.path.splitext(name)[0]
    save(rgb if rgb is not None else a1111_rgb(im), stem + ".rgb.png", optimize=True)
    save(mask if mask is not None else a1111_mask(im), stem + ".mask.png")


def main():
    os.makedirs(OUT, exist_ok=True)
    rng = np.random.default_rng(20241203)
    cat = Image.open(os.path.join(CONFORMANCE, "init_cat.png")).convert("RGB")

    # --- decoding: one file per PNG kind ---
    g = np.tile(np.arange(0, 256, 4, dtype=np.uint8), (8, 1))  # 64x8 ramp
    buf = io.BytesIO()
    Image.fromarray(g, "L").save(buf, "PNG")
    decode_case("gray8.png", buf.getvalue())

    # 16-bit gray: Pillow opens it as mode "I" and its convert() clips every value above 255 to
    # white; sdgen takes the high byte, as Pillow does for 16-bit RGB. Expected: the high byte.
    g16 = (np.arange(64 * 8, dtype=np.uint32).reshape(8, 64) * 131 % 65536).astype(np.uint16)
    hi = (g16 >> 8).astype(np.uint8)
    decode_case("gray16.png", png_bytes(g16[..., None], 16, 0),
                rgb=Image.fromarray(np.stack([hi] * 3, -1), "RGB"), mask=Image.fromarray(hi, "L"))

    bits = rng.integers(0, 2, (9, 13), dtype=np.uint8)
    decode_case("gray1.png", png_bytes(bits[..., None], 1, 0))
    nib = rng.integers(0, 16, (9, 13), dtype=np.uint8)
    decode_case("gray4.png", png_bytes(nib[..., None], 4, 0))

    la = np.stack([g, np.tile(np.arange(0, 256, 32, dtype=np.uint8)[:, None], (1, 64))], -1)
    buf = io.BytesIO()
    Image.fromarray(la, "LA").save(buf, "PNG")
    decode_case("gray_alpha.png", buf.getvalue())
    la16 = rng.integers(0, 65536, (8, 16, 2), dtype=np.uint32)
    decode_case("gray_alpha16.png", png_bytes(la16, 16, 4))

    pal = cat.quantize(colors=16)  # mode P
    buf = io.BytesIO()
    pal.save(buf, "PNG")
    decode_case("palette.png", buf.getvalue())
    buf = io.BytesIO()
    pal.save(buf, "PNG", bits=4)
    decode_case("palette4.png", buf.getvalue())
    buf = io.BytesIO()  # tRNS: partial alpha for the first palette entries
    pal.save(buf, "PNG", transparency=bytes([0, 40, 127, 128, 129, 200, 255, 10]))
    decode_case("palette_trns.png", buf.getvalue())

    rgb16 = rng.integers(0, 65536, (12, 10, 3), dtype=np.uint32)
    decode_case("rgb16.png", png_bytes(rgb16, 16, 2))
    rgba16 = rng.integers(0, 65536, (12, 10, 4), dtype=np.uint32)
    decode_case("rgba16.png", png_bytes(rgba16, 16, 6))

    # every (value, alpha) pair: row = value (R = G = B: the expected file stays small; the
    # channel order is checked by the other files), column = alpha
    v = np.arange(256, dtype=np.uint8)
    rgba = np.zeros((256, 256, 4), np.uint8)
    rgba[..., :3] = v[:, None, None]
    rgba[..., 3] = v[None, :]
    buf = io.BytesIO()
    Image.fromarray(rgba, "RGBA").save(buf, "PNG", optimize=True)
    decode_case("rgba_all_alphas.png", buf.getvalue())

    opaque = np.concatenate([np.asarray(cat)[:16, :16], np.full((16, 16, 1), 255, np.uint8)], -1)
    buf = io.BytesIO()
    Image.fromarray(opaque, "RGBA").save(buf, "PNG")
    decode_case("rgba_opaque.png", buf.getvalue())  # alpha all 255: the mask is the luma

    small = np.asarray(cat)[:16, :16]
    buf = io.BytesIO()  # colour-key transparency (tRNS on an RGB image)
    Image.fromarray(small, "RGB").save(buf, "PNG", transparency=tuple(int(c) for c in small[0, 0]))
    decode_case("rgb_trns.png", buf.getvalue())

    noise = rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)  # the luma of arbitrary colours
    buf = io.BytesIO()
    Image.fromarray(noise, "RGB").save(buf, "PNG")
    decode_case("rgb_noise.png", buf.getvalue())

    decode_case("rgb_interlaced.png", png_bytes(np.asarray(cat)[:21, :19], 8, 2, interlace=True))

    # --- JPEG (Pillow decodes with libjpeg; the tests bound the difference to stb_image) ---
    for name, im, kw in [("cat420.jpg", cat, dict(quality=90)),
                         ("cat444.jpg", cat, dict(quality=95, subsampling=0)),
                         ("cat_progressive.jpg", cat, dict(quality=85, progressive=True)),
                         ("cat_gray.jpg", cat.convert("L"), dict(quality=90))]:
        buf = io.BytesIO()
        im.save(buf, "JPEG", **kw)
        decode_case(name, buf.getvalue())

    # --- masks with partial alpha: alpha > 128 -> 255 (127, 128, 129 on either side) ---
    m = np.zeros((16, 16, 4), np.uint8)
    m[..., :3] = rng.integers(0, 256, (16, 16, 3), dtype=np.uint8)
    m[..., 3] = np.arange(256, dtype=np.uint8).reshape(16, 16)
    buf = io.BytesIO()
    Image.fromarray(m, "RGBA").save(buf, "PNG")
    decode_case("mask_rgba_alpha.png", buf.getvalue())

    # --- resizes: Pillow Image.resize (reference for src/io/resample.cpp) ---
    filters = {"box": Image.BOX, "bilinear": Image.BILINEAR, "hamming": Image.HAMMING,
               "bicubic": Image.BICUBIC, "lanczos": Image.LANCZOS}
    noise_rgb = Image.fromarray(rng.integers(0, 256, (23, 37, 3), dtype=np.uint8), "RGB")
    noise_l = Image.fromarray(rng.integers(0, 256, (23, 37), dtype=np.uint8), "L")
    noise_row = Image.fromarray(rng.integers(0, 256, (1, 37, 3), dtype=np.uint8), "RGB")
    # 4 independent channels: Pillow's CMYK (RGBA would be premultiplied first), stored as the
    # raw bytes of an RGBA PNG
    noise_4 = rng.integers(0, 256, (23, 37, 4), dtype=np.uint8)
    save(noise_rgb, "noise_rgb.png")
    save(noise_l, "noise_l.png")
    save(noise_row, "noise_row.png")
    save(Image.fromarray(noise_4, "RGBA"), "noise_4ch.png")
    inputs = {"conformance:init_cat.png": cat,
              "conformance:init_house_80x100.png":
                  Image.open(os.path.join(CONFORMANCE, "init_house_80x100.png")).convert("RGB"),
              "conformance:init_boat.png":
                  Image.open(os.path.join(CONFORMANCE, "init_boat.png")).convert("RGB"),
              "conformance:mask_rect_aligned.png":
                  Image.open(os.path.join(CONFORMANCE, "mask_rect_aligned.png")).convert("L"),
              "conformance:mask_rect_unaligned.png":
                  Image.open(os.path.join(CONFORMANCE, "mask_rect_unaligned.png")).convert("L"),
              "noise_rgb.png": noise_rgb, "noise_l.png": noise_l, "noise_row.png": noise_row,
              "noise_4ch.png": Image.fromarray(noise_4, "CMYK")}
    cases = [("conformance:init_house_80x100.png", "lanczos", 64, 64),  # the conformance case
             ("conformance:init_house_80x100.png", "bicubic", 64, 64),
             ("conformance:init_cat.png", "lanczos", 48, 48),
             ("conformance:init_cat.png", "lanczos", 96, 96),
             ("conformance:init_cat.png", "lanczos", 100, 37),
             ("conformance:init_cat.png", "lanczos", 81, 64),  # width only
             ("conformance:init_cat.png", "lanczos", 64, 80),  # height only
             ("conformance:init_cat.png", "lanczos", 1, 1),
             ("conformance:init_cat.png", "bicubic", 8, 8),
             ("conformance:init_boat.png", "lanczos", 40, 56),
             ("conformance:init_boat.png", "bicubic", 3, 130),
             ("conformance:mask_rect_aligned.png", "bicubic", 8, 8),  # the latent masks
             ("conformance:mask_rect_unaligned.png", "bicubic", 8, 8),
             ("conformance:mask_rect_unaligned.png", "lanczos", 80, 100),
             ("noise_rgb.png", "bicubic", 13, 41),
             ("noise_rgb.png", "lanczos", 13, 41),
             ("noise_l.png", "lanczos", 64, 9),
             ("noise_l.png", "bicubic", 64, 9),
             ("noise_row.png", "bicubic", 100, 3),
             ("noise_row.png", "lanczos", 5, 2),
             ("noise_4ch.png", "lanczos", 50, 17),
             ("noise_4ch.png", "bicubic", 50, 17)]
    cases += [("noise_rgb.png", f, 50, 17) for f in filters]
    cases += [("noise_l.png", f, 20, 30) for f in filters]
    lines = ["# input\tfilter\twidth\theight\texpected  (made by scripts/make-image-fixtures.py)"]
    for src, flt, w, h in cases:
        im = inputs[src]
        out = im.resize((w, h), filters[flt])
        stem = os.path.splitext(src.split(":")[-1])[0]
        name = f"resize_{stem}_{flt}_{w}x{h}.png"
        if out.mode == "CMYK":
            out = Image.frombytes("RGBA", out.size, out.tobytes())
        save(out, name)
        lines.append(f"{src}\t{flt}\t{w}\t{h}\t{name}")
    with open(os.path.join(OUT, "resize_cases.tsv"), "w") as f:
        f.write("\n".join(lines) + "\n")

    # --- seeds of fuzz/fuzz_image.cpp: tiny files of every kind (fuzzing is fastest on them) ---
    seeds = os.path.join(ROOT, "fuzz", "corpus_image")
    os.makedirs(seeds, exist_ok=True)
    tiny = cat.resize((8, 8), Image.LANCZOS)
    tiny16 = cat.resize((16, 16), Image.LANCZOS)
    for name, im, kw in [("baseline420.jpg", tiny16, dict(quality=80)),
                         ("baseline444.jpg", tiny, dict(quality=80, subsampling=0)),
                         ("progressive.jpg", tiny16, dict(quality=80, progressive=True)),
                         ("gray.jpg", tiny.convert("L"), dict(quality=80)),
                         ("cmyk.jpg", tiny.convert("CMYK"), dict(quality=80))]:
        im.save(os.path.join(seeds, name), "JPEG", **kw)
    with open(os.path.join(seeds, "rgb16_interlaced.png"), "wb") as f:
        f.write(png_bytes(rng.integers(0, 65536, (5, 7, 3), dtype=np.uint32), 16, 2, True))
    with open(os.path.join(seeds, "gray2.png"), "wb") as f:
        f.write(png_bytes(rng.integers(0, 4, (6, 9, 1), dtype=np.uint8), 2, 0))
    tiny.quantize(colors=4).save(os.path.join(seeds, "palette_trns.png"),
                                 transparency=bytes([0, 128, 255]), bits=2)
    rgba = np.asarray(tiny.convert("RGBA")).copy()
    rgba[..., 3] = np.arange(0, 256, 4, dtype=np.uint8).reshape(8, 8)  # partial alpha
    Image.fromarray(rgba, "RGBA").save(os.path.join(seeds, "rgba.png"))
    tiny.convert("LA").save(os.path.join(seeds, "gray_alpha.png"))
    tiny.save(os.path.join(seeds, "rgb_trns.png"), transparency=(0, 0, 0))

    # --- checks of the arithmetic sdgen implements, over every input (not stored) ---
    rgb = np.stack(np.meshgrid(np.arange(256), np.arange(256), np.arange(256), indexing="ij"),
                   -1).astype(np.uint8).reshape(4096, 4096, 3)
    luma = np.asarray(Image.fromarray(rgb, "RGB").convert("L")).astype(np.int64)
    r = rgb.astype(np.int64)
    assert (luma == (r[..., 0] * 19595 + r[..., 1] * 38470 + r[..., 2] * 7471 + 0x8000) >> 16).all()
    print(f"wrote {len(os.listdir(OUT))} files to {OUT}; the luma formula matches Pillow for all "
          "16.7 million colours")


if __name__ == "__main__":
    main()
