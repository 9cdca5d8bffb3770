#!/usr/bin/env python3
"""Writes the fuzz corpus of tests/fuzz/: seed files for each target, and the hostile
files of issue 9 (and more), each of which once crashed or could crash a loader.

Only the standard library is needed, except for the image seeds (Pillow): run it as
    python3 -m venv /tmp/v && /tmp/v/bin/pip install pillow && /tmp/v/bin/python scripts/make-fuzz-corpus.py
The outputs are committed; CI never runs this script. Crash files found by `make fuzz`
(crash-*) are kept beside these and never rewritten here.
"""
import io
import json
import os
import shutil
import struct
import zipfile
import zlib

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT = os.path.join(ROOT, "tests", "fuzz")


def write(target, name, data):
    d = os.path.join(OUT, target)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)


def copy(target, name, src):
    with open(os.path.join(ROOT, src), "rb") as f:
        write(target, name, f.read())


# --- pickle opcodes, written by hand (no torch needed) -------------------------------
def s(text):  # BINUNICODE
    b = text.encode()
    return b"X" + struct.pack("<I", len(b)) + b


def i(v):  # BININT / LONG1
    if 0 <= v < 256:
        return b"K" + bytes([v])
    if -(2**31) <= v < 2**31:
        return b"J" + struct.pack("<i", v)
    n = (v.bit_length() + 8) // 8
    return b"\x8a" + bytes([n]) + v.to_bytes(n, "little", signed=True)


def tup(*items):
    return b"(" + b"".join(items) + b"t"


def glob(module, name):
    return b"c" + module.encode() + b"\n" + name.encode() + b"\n"


def tensor(key, size, stride, offset=0, storage="FloatStorage", numel=None, legacy=False):
    """_rebuild_tensor_v2(persistent storage, offset, size, stride, False, OrderedDict())"""
    if numel is None:
        numel = 1
        for d in size:
            numel *= d
    if legacy:
        pid = tup(s("storage"), glob("torch", storage), s(key), s("cpu"), i(numel), b"N")
    else:
        pid = tup(s("storage"), glob("torch", storage), s(key), s("cpu"), i(numel))
    args = tup(
        pid + b"Q",
        i(offset),
        tup(*[i(d) for d in size]),
        tup(*[i(d) for d in stride]),
        b"\x89",
        glob("collections", "OrderedDict") + b")R",
    )
    return glob("torch._utils", "_rebuild_tensor_v2") + args + b"R"


def state_dict(entries, legacy=False):
    body = b"".join(s(k) + tensor(*v, legacy=legacy) for k, v in entries)
    return b"\x80\x02" + glob("collections", "OrderedDict") + b")R(" + body + b"u."


def torch_zip(pickle_bytes, storages, name="archive"):
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_STORED) as z:
        z.writestr(f"{name}/data.pkl", pickle_bytes)
        z.writestr(f"{name}/byteorder", "little")
        for key, data in storages.items():
            z.writestr(f"{name}/data/{key}", data)
        z.writestr(f"{name}/version", "3\n")
    return buf.getvalue()


LEGACY_MAGIC = 0x1950A86A20F9469CFC6C


def legacy_file(obj_pickle, keys, storages):
    out = b"\x80\x02" + i(LEGACY_MAGIC) + b"."
    out += b"\x80\x02M\xe9\x03."  # protocol 1001
    out += b"\x80\x02}."  # sys_info
    out += obj_pickle
    out += b"\x80\x02(" + b"".join(s(k) for k in keys) + b"l."
    for k in keys:
        data = storages[k]
        out += struct.pack("<Q", len(data) // 4) + data
    return out


def floats(n):
    return struct.pack(f"<{n}f", *[0.5 * k for k in range(n)])


def main():
    # --- safetensors ------------------------------------------------------------------
    copy("safetensors", "seed-statedict.safetensors", "tests/refs/statedict.safetensors")

    def st(header, data):
        h = json.dumps(header).encode()
        return struct.pack("<Q", len(h)) + h + data

    write("safetensors", "seed-small.safetensors", st(
        {"__metadata__": {"glassbox.arch": "tiny-cnn"},
         "a": {"dtype": "F32", "shape": [2, 3], "data_offsets": [0, 24]},
         "b": {"dtype": "F16", "shape": [4], "data_offsets": [24, 32]}},
        floats(6) + b"\x00\x3c" * 4))
    write("safetensors", "hostile-header-length-max.safetensors", struct.pack("<Q", 2**64 - 1) + b"{}")
    write("safetensors", "hostile-shape-overflow.safetensors", st(
        {"a": {"dtype": "F32", "shape": [2**62, 2**62, 0], "data_offsets": [0, 0]}}, b""))
    write("safetensors", "hostile-shape-product-wraps.safetensors", st(
        {"a": {"dtype": "F32", "shape": [2**32, 2**32], "data_offsets": [0, 4]}}, b"\x00" * 4))
    write("safetensors", "hostile-offsets-past-end.safetensors", st(
        {"a": {"dtype": "F32", "shape": [4], "data_offsets": [0, 2**40]}}, b"\x00" * 16))
    write("safetensors", "hostile-overlapping.safetensors", st(
        {"a": {"dtype": "F32", "shape": [4], "data_offsets": [0, 16]},
         "b": {"dtype": "F32", "shape": [4], "data_offsets": [0, 16]}}, b"\x00" * 16))

    # --- zip .pth -----------------------------------------------------------------------
    copy("pth-zip", "seed-statedict-zip.pth", "tests/refs/statedict-zip.pth")
    copy("pth-zip", "seed-malicious-zip.pth", "tests/refs/malicious-zip.pth")
    ok = torch_zip(state_dict([("w", ("0", [2, 3], [3, 1]))]), {"0": floats(6)})
    write("pth-zip", "seed-minimal.pth", ok)
    # Entries that declare 4 GB: the sizes in the local header and the central directory.
    z = bytearray(torch_zip(state_dict([("w", ("0", [2, 3], [3, 1]))]), {"0": floats(6)}))
    for sig, off in ((b"PK\x03\x04", 22), (b"PK\x01\x02", 24)):
        p = 0
        while (p := z.find(sig, p)) >= 0:
            struct.pack_into("<I", z, p + off, 0xFFFFFFFE)
            p += 4
    write("pth-zip", "hostile-declares-4gb.pth", bytes(z))
    # A zip bomb: a record that inflates to 160 MiB from a few hundred KiB.
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as zf:
        zf.writestr("archive/data.pkl", state_dict([("w", ("0", [40 << 20], [1]))]))
        zf.writestr("archive/data/0", b"\x00" * (160 << 20))
    write("pth-zip", "hostile-zip-bomb.pth", buf.getvalue())
    # A view of 2^40 elements over a one-element storage (stride 0).
    write("pth-zip", "hostile-stride-zero-expand.pth",
          torch_zip(state_dict([("w", ("0", [2**40], [0], 0, "FloatStorage", 1))]), {"0": floats(1)}))
    # Offsets and strides that overflow 64-bit arithmetic.
    write("pth-zip", "hostile-offset-overflow.pth",
          torch_zip(state_dict([("w", ("0", [2, 2], [2**62, 2**62], 2**62, "FloatStorage", 4))]), {"0": floats(4)}))
    write("pth-zip", "hostile-many-dims.pth",
          torch_zip(state_dict([("w", ("0", [1] * 300, [1] * 300, 0, "FloatStorage", 1))]), {"0": floats(1)}))
    write("pth-zip", "hostile-missing-storage.pth",
          torch_zip(state_dict([("w", ("7", [2], [1]))]), {"0": floats(2)}))

    # --- legacy .pth --------------------------------------------------------------------
    copy("pth-legacy", "seed-statedict-legacy.pth", "tests/refs/statedict-legacy.pth")
    copy("pth-legacy", "seed-malicious-legacy.pth", "tests/refs/malicious-legacy.pth")
    write("pth-legacy", "seed-minimal.pth",
          legacy_file(state_dict([("w", ("0", [2, 3], [3, 1]))], legacy=True), ["0"], {"0": floats(6)}))
    # A list DUPed and APPENDed to itself 40 times: 2^40 objects for a copying unpickler.
    bomb = b"\x80\x02]" + b"2a" * 40 + b"."
    write("pth-legacy", "hostile-dup-bomb.pth", legacy_file(bomb, [], {}))
    # The same through the memo: PUT then GET twice, 40 times.
    memo = b"\x80\x02]q\x00" + b"h\x00h\x00\x86q\x00" * 40 + b"."
    write("pth-legacy", "hostile-memo-bomb.pth", legacy_file(memo, [], {}))
    # 200,000 nested lists, two ways: EMPTY_LIST + APPEND, and MARK + LIST.
    write("pth-legacy", "hostile-nested-append.pth", b"\x80\x02" + b"]" * 200_000 + b"a" * 199_999 + b".")
    write("pth-legacy", "hostile-nested-marks.pth", b"\x80\x02" + b"(" * 200_000 + b"l" * 200_000 + b".")
    # A 64 KiB string copied by DUP 8000 times: half a gigabyte for a copying unpickler.
    big = b"\x80\x02X" + struct.pack("<I", 1 << 16) + b"x" * (1 << 16) + b"(" + b"2" * 8000 + b"l."
    write("pth-legacy", "hostile-string-copies.pth", big)
    # A storage whose element count overflows when multiplied by its element size.
    head = legacy_file(state_dict([("w", ("0", [2], [1]))], legacy=True), ["0"], {"0": floats(2)})
    cut = head.rfind(struct.pack("<Q", 2))
    write("pth-legacy", "hostile-storage-count-overflow.pth",
          head[:cut] + struct.pack("<Q", 2**62 + 1) + head[cut + 8:])

    # --- images -------------------------------------------------------------------------
    from PIL import Image  # only here: the other targets need nothing but the standard library

    def img_bytes(im, fmt, **kw):
        b = io.BytesIO()
        im.save(b, fmt, **kw)
        return b.getvalue()

    rgb = Image.new("RGB", (13, 9))
    for x in range(13):
        for y in range(9):
            rgb.putpixel((x, y), (x * 19 % 256, y * 27 % 256, (x * y * 7) % 256))
    write("image", "seed-rgb.png", img_bytes(rgb, "PNG"))
    write("image", "seed-gray16.png", img_bytes(rgb.convert("I;16"), "PNG"))
    write("image", "seed-rgba.png", img_bytes(rgb.convert("RGBA"), "PNG"))
    write("image", "seed-palette.png", img_bytes(rgb.convert("P"), "PNG"))
    write("image", "seed.jpg", img_bytes(rgb, "JPEG", quality=80))
    exif = Image.Exif()
    exif[0x0112] = 6  # rotated 90 degrees
    write("image", "seed-exif-rotated.jpg", img_bytes(rgb, "JPEG", exif=exif.tobytes()))
    write("image", "seed.gif", img_bytes(rgb.convert("P"), "GIF"))
    write("image", "seed.bmp", img_bytes(rgb, "BMP"))
    write("image", "seed.tiff", img_bytes(rgb, "TIFF"))
    write("image", "seed.webp", img_bytes(rgb, "WEBP", lossless=True))

    def png_chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    def png(w, h, idat):
        ihdr = struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0)
        return b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", ihdr) + png_chunk(b"IDAT", idat) + png_chunk(b"IEND", b"")

    # 60000 x 60000 pixels declared, a little compressed data (the 10 MB original only had more).
    write("image", "hostile-60000x60000.png", png(60000, 60000, zlib.compress(b"\x00" * (1 << 20), 9)))
    write("image", "hostile-1x4000000000.png", png(1, 4_000_000_000, zlib.compress(b"\x00" * 1024)))
    gif = bytearray(img_bytes(rgb.convert("P"), "GIF"))
    struct.pack_into("<HH", gif, 6, 65535, 65535)  # logical screen
    write("image", "hostile-gif-65535.gif", bytes(gif))
    bmp = bytearray(img_bytes(rgb, "BMP"))
    struct.pack_into("<ii", bmp, 18, 60000, 60000)
    write("image", "hostile-bmp-60000.bmp", bytes(bmp))
    tif = img_bytes(rgb, "TIFF")
    write("image", "hostile-truncated.tiff", tif[: len(tif) // 2])
    jpg = img_bytes(rgb, "JPEG")
    write("image", "hostile-truncated.jpg", jpg[: len(jpg) // 2])

    # --- model --------------------------------------------------------------------------
    d = os.path.join(OUT, "model")
    os.makedirs(d, exist_ok=True)
    link = os.path.join(d, "seed-mnist.safetensors")
    if os.path.lexists(link):
        os.remove(link)
    os.symlink("../../../assets/mnist-tiny-cnn.safetensors", link)


if __name__ == "__main__":
    main()
    shutil.rmtree(os.path.join(ROOT, "tests", "fuzz", "__pycache__"), ignore_errors=True)
