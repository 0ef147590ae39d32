#!/usr/bin/python3
"""make_image_fixtures.py — writes tests/fixtures/images/ (tiny images for tests/test_image.c).

Run by hand, never by the tests:   /usr/bin/python3 tools/make_image_fixtures.py
Needs Pillow (9.4 here) and numpy. Every file is deterministic, so re-running it
reproduces the committed fixtures byte for byte (given the same Pillow/zlib).

Three kinds of file:
  * decoding fixtures, 8x6 pixels (one 64x48), whose values follow formulas simple enough to be
    written by hand in the C test (grey = 30x + 5y, R = 30x, G = 40y, B = 15(x+y), ...).
    Common encodings come from Pillow (a real encoder); encodings Pillow cannot write
    (16-bit RGB, 2-bit grey, Adam7 interlacing, a lying header) from the small PNG
    writer below, which only packs bytes and computes CRCs with zlib. For lossy JPEGs,
    *.pillow.png holds what Pillow decodes from them.
  * malformed files: truncated, bad CRC, empty, text, BMP, CMYK, zero height.
  * resize references: Pillow's Image.resize(..., Image.BILINEAR) of sources computed
    by pattern() below (the C test computes the same sources, so only outputs are stored).
"""
import os
import struct
import sys
import zlib

import numpy as np
from PIL import Image

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "fixtures", "images")
W, H = 8, 6


def grey_values():
    """[h, w] uint8: 30x + 5y."""
    y, x = np.mgrid[0:H, 0:W]
    return (30 * x + 5 * y).astype(np.uint8)


def rgb_values():
    """[h, w, 3] uint8: R = 30x, G = 40y, B = 15(x + y)."""
    y, x = np.mgrid[0:H, 0:W]
    return np.stack([30 * x, 40 * y, 15 * (x + y)], axis=-1).astype(np.uint8)


def pattern(w, h, c):
    """[h, w, c] uint8 resize source; the C test has the same formula."""
    y, x, k = np.mgrid[0:h, 0:w, 0:c]
    return ((x * 7 + y * 13 + (x * y % 17) * 11 + k * 85) % 256).astype(np.uint8)


def chunk(kind, data):
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def raw_png(path, w, h, depth, colour, rows, interlace=False):
    """Writes a PNG from packed scanlines: rows(x0, dx, y) -> bytes of the pixels
    x0, x0+dx, ... of row y (already packed at `depth`). Filter 0 on every line."""
    if interlace:
        # Adam7: (x0, y0, dx, dy) of the seven passes
        passes = [(0, 0, 8, 8), (4, 0, 8, 8), (0, 4, 4, 8), (2, 0, 4, 4),
                  (0, 2, 2, 4), (1, 0, 2, 2), (0, 1, 1, 2)]
    else:
        passes = [(0, 0, 1, 1)]
    raw = b""
    for x0, y0, dx, dy in passes:
        if x0 >= w:
            continue
        for y in range(y0, h, dy):
            raw += b"\x00" + rows(x0, dx, y)
    ihdr = struct.pack(">IIBBBBB", w, h, depth, colour, 0, 0, 1 if interlace else 0)
    data = (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(raw, 9))
            + chunk(b"IEND", b""))
    write(path, data)


def write(name, data):
    with open(os.path.join(OUT, name), "wb") as f:
        f.write(data)


def save(img, name, **kw):
    img.save(os.path.join(OUT, name), **kw)


def read(name):
    with open(os.path.join(OUT, name), "rb") as f:
        return f.read()


def decoding_fixtures():
    g, rgb = grey_values(), rgb_values()
    save(Image.fromarray(g, "L"), "grey_8x6.png")
    save(Image.fromarray(rgb, "RGB"), "rgb_8x6.png")
    # 16-bit grey 257v + 100: scaling to 8 bits must round back to v
    save(Image.fromarray((g.astype(np.uint16) * 257 + 100), "I;16"), "grey16_8x6.png")
    # palette: index (x + y) % 4 into four colours; then the same with colour 0 transparent
    pal = [255, 0, 0, 0, 255, 0, 0, 0, 255, 200, 100, 50]
    y, x = np.mgrid[0:H, 0:W]
    p = Image.fromarray(((x + y) % 4).astype(np.uint8), "P")
    p.putpalette(pal + [0] * (768 - len(pal)))
    save(p, "palette_8x6.png")
    save(p, "palette_trns_8x6.png", transparency=0)
    alpha = (255 - 20 * x - 10 * y).astype(np.uint8)
    save(Image.fromarray(np.stack([g, alpha], -1), "LA"), "grey_alpha_8x6.png")
    save(Image.fromarray(np.dstack([rgb, alpha]), "RGBA"), "rgba_8x6.png")
    save(Image.fromarray(((x + y) % 2 * 255).astype(np.uint8), "L").convert("1"), "grey1_8x6.png")

    # 2-bit grey (x + y) % 4, four pixels per byte, first pixel in the high bits
    def grey2(x0, dx, yy):
        vals = [(xx + yy) % 4 for xx in range(x0, W, dx)]
        vals += [0] * (-len(vals) % 4)
        return bytes(v[0] << 6 | v[1] << 4 | v[2] << 2 | v[3] for v in zip(*[iter(vals)] * 4))
    raw_png("grey2_8x6.png", W, H, 2, 0, grey2)
    # 16-bit RGB 257 * rgb + 100 (big-endian samples)
    rgb16 = rgb.astype(np.uint16) * 257 + 100
    raw_png("rgb16_8x6.png", W, H, 16, 2, lambda x0, dx, yy: rgb16[yy, x0::dx].astype(">u2").tobytes())
    # Adam7-interlaced grey and RGB with the same values as the plain files
    raw_png("interlaced_grey_8x6.png", W, H, 8, 0, lambda x0, dx, yy: g[yy, x0::dx].tobytes(), True)
    raw_png("interlaced_rgb_8x6.png", W, H, 8, 2, lambda x0, dx, yy: rgb[yy, x0::dx].tobytes(), True)

    save(Image.fromarray(g, "L"), "grey_q100.jpg", quality=100)
    save(Image.fromarray(rgb, "RGB"), "rgb_q100.jpg", quality=100, subsampling=0)
    save(Image.fromarray(rgb, "RGB"), "rgb_progressive.jpg", quality=95, subsampling=0, progressive=True)
    save(Image.fromarray(rgb, "RGB"), "rgb_420.jpg", quality=95, subsampling=2)
    save(Image.fromarray(rgb, "RGB").convert("CMYK"), "cmyk_8x6.jpg", quality=95)
    # what Pillow (same libjpeg-turbo) decodes from the lossy ones: our decode must match
    for name in ("rgb_420", "rgb_progressive"):
        save(Image.open(os.path.join(OUT, name + ".jpg")), name + ".pillow.png")


def malformed_fixtures():
    # a 64x48 frame so that the entropy-coded scan is long enough to cut in the middle
    y, x = np.mgrid[0:48, 0:64]
    frame = ((x * 37 + y * 91 + x * y * 13) % 251).astype(np.uint8)
    save(Image.fromarray(frame, "L"), "frame_64x48.jpg", quality=90)
    save(Image.fromarray(frame, "L"), "frame_64x48.png")
    save(Image.open(os.path.join(OUT, "frame_64x48.jpg")), "frame_64x48.pillow.png")
    jpg = read("frame_64x48.jpg")
    sos = jpg.index(b"\xff\xda")
    write("truncated_scan.jpg", jpg[:sos + (len(jpg) - sos) // 2])
    dht = jpg.index(b"\xff\xc4")
    write("truncated_header.jpg", jpg[:dht + 10])
    write("missing_eoi.jpg", jpg[:-2])
    # height 0 in the SOF0 segment: FF C0, length(2), precision(1), height(2), width(2)
    sof = jpg.index(b"\xff\xc0")
    write("zero_height.jpg", jpg[:sof + 5] + b"\x00\x00" + jpg[sof + 7:])
    png = read("frame_64x48.png")
    idat = png.index(b"IDAT")
    write("truncated.png", png[:idat + 4 + (len(png) - idat) // 2])
    # one bit flipped in the IDAT chunk's CRC (data intact), then one in its deflate data
    good = read("grey_8x6.png")
    i = good.index(b"IDAT")
    length = struct.unpack(">I", good[i - 4:i])[0]
    bad = bytearray(good)
    bad[i + 4 + length] ^= 0x01
    write("bad_crc.png", bytes(bad))
    bad = bytearray(good)
    bad[i + 6] ^= 0x01
    write("bad_idat.png", bytes(bad))
    write("empty.jpg", b"")
    write("text.jpg", b"This is a text file with a .jpg name, not an image.\n")
    save(Image.fromarray(grey_values(), "L"), "grey_8x6.bmp")
    # a header claiming 100000 x 100000 grey pixels followed by a tiny valid zlib stream:
    # libpng accepts the header, so only our pixel limit stands between it and a 10 GB buffer
    ihdr = struct.pack(">IIBBBBB", 100000, 100000, 8, 0, 0, 0, 0)
    write("huge_header.png", b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr)
          + chunk(b"IDAT", zlib.compress(b"\x00" * 16)) + chunk(b"IEND", b""))


RESIZE_CASES = [  # (source w, h, c) -> (output w, h)
    ((37, 29, 1), (16, 11)),    # shrink by 2.3 x 2.6
    ((37, 29, 1), (80, 61)),    # enlarge
    ((37, 29, 1), (37, 13)),    # vertical pass only
    ((37, 29, 1), (15, 29)),    # horizontal pass only
    ((21, 17, 3), (9, 7)),
    ((21, 17, 3), (45, 30)),
    ((21, 17, 3), (30, 8)),     # enlarge one way, shrink the other
    ((160, 48, 1), (100, 30)),  # the median 160 px lesion squeezed into 100 px (a strip of it)
    ((200, 26, 1), (100, 20)),  # a 160 x 90 box with its 20 px margins, squeezed (a strip)
    ((5, 1, 1), (1, 1)),
    ((1, 1, 1), (3, 3)),
]


def resize_fixtures():
    os.makedirs(os.path.join(OUT, "resize"), exist_ok=True)
    for (sw, sh, sc), (ow, oh) in RESIZE_CASES:
        src = pattern(sw, sh, sc)
        img = Image.fromarray(src[:, :, 0], "L") if sc == 1 else Image.fromarray(src, "RGB")
        out = img.resize((ow, oh), Image.BILINEAR)
        save(out, "resize/%dx%dx%d_to_%dx%d.png" % (sw, sh, sc, ow, oh))


def main():
    os.makedirs(OUT, exist_ok=True)
    decoding_fixtures()
    malformed_fixtures()
    resize_fixtures()
    return 0


if __name__ == "__main__":
    sys.exit(main())
