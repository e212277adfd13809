"""Draw the app's icons: pwa/static/icons/*.png and the SVG source they share.

    python pwa/tools/make_icons.py

One geometry (a sun rising over a horizon: 阳光, sunlight on public trading)
is written as SVG and rasterised here into PNGs with signed distance fields
and zlib, so no imaging library or font is needed. The PNGs are committed;
run this again only after changing the drawing.
"""

from __future__ import annotations

import math
import struct
import zlib
from collections.abc import Callable
from pathlib import Path

ICONS = Path(__file__).resolve().parent.parent / "static" / "icons"

Colour = tuple[int, int, int]

BLUE = (0x0B, 0x4A, 0x7F)
SUN = (0xFF, 0xC5, 0x3D)
WHITE = (0xFF, 0xFF, 0xFF)
MIST = (0xA9, 0xC9, 0xE8)

# The drawing, in a unit square (y downwards).
CENTRE = (0.5, 0.58)
SUN_RADIUS = 0.18
SUN_CLIP = 0.575  # the sun shows above this line: rising
RAYS = [198 + 36 * i for i in range(5)]  # degrees, pointing up and out
RAY_FROM, RAY_TO, RAY_WIDTH = 0.235, 0.32, 0.024
HORIZON = ((0.2, 0.62), (0.8, 0.62), 0.0225)
LINE = ((0.32, 0.71), (0.68, 0.71), 0.0225)
CORNER = 0.2  # of the "any" icon's rounded square

Shape = Callable[[float, float], float]  # signed distance, negative inside


def circle_clipped(x: float, y: float) -> float:
    return max(math.hypot(x - CENTRE[0], y - CENTRE[1]) - SUN_RADIUS, y - SUN_CLIP)


def capsule(a: tuple[float, float], b: tuple[float, float], radius: float) -> Shape:
    ax, ay = a
    bx, by = b

    def distance(x: float, y: float) -> float:
        px, py, dx, dy = x - ax, y - ay, bx - ax, by - ay
        t = max(0.0, min(1.0, (px * dx + py * dy) / (dx * dx + dy * dy)))
        return math.hypot(px - dx * t, py - dy * t) - radius

    return distance


def ray(angle: float) -> tuple[tuple[float, float], tuple[float, float]]:
    c, s = math.cos(math.radians(angle)), math.sin(math.radians(angle))
    cx, cy = CENTRE
    return (cx + c * RAY_FROM, cy + s * RAY_FROM), (cx + c * RAY_TO, cy + s * RAY_TO)


def rounded_square(radius: float) -> Shape:
    def distance(x: float, y: float) -> float:
        qx, qy = abs(x - 0.5) - 0.5 + radius, abs(y - 0.5) - 0.5 + radius
        return math.hypot(max(qx, 0.0), max(qy, 0.0)) + min(max(qx, qy), 0.0) - radius

    return distance


def figure(sun: Colour, lines: Colour, mist: Colour) -> list[tuple[Shape, Colour]]:
    rays = [capsule(*ray(a), RAY_WIDTH) for a in RAYS]
    return [
        (circle_clipped, sun),
        *((r, sun) for r in rays),
        (capsule(*HORIZON), lines),
        (capsule(*LINE), mist),
    ]


def render(size: int, background: Shape | None, scale: float, badge: bool = False) -> bytes:
    """PNG scanlines of RGBA pixels: the background full size, the figure scaled by `scale`.

    Each shape covers a pixel by how far inside it the pixel's centre lies
    (a signed distance in pixels, clamped to 0..1): antialiasing for free.
    """
    shapes = figure(WHITE, WHITE, WHITE) if badge else figure(SUN, WHITE, MIST)
    rows = bytearray()
    for j in range(size):
        rows.append(0)  # PNG filter: none
        for i in range(size):
            x, y = (i + 0.5) / size, (j + 0.5) / size
            u, v = 0.5 + (x - 0.5) / scale, 0.5 + (y - 0.5) / scale
            covers = [] if background is None else [(background(x, y) * size, BLUE)]
            covers += [(shape(u, v) * size * scale, colour) for shape, colour in shapes]
            r = g = b = a = 0.0
            for distance, colour in covers:
                cover = max(0.0, min(1.0, 0.5 - distance))
                if cover:
                    r = colour[0] * cover + r * (1 - cover)
                    g = colour[1] * cover + g * (1 - cover)
                    b = colour[2] * cover + b * (1 - cover)
                    a = cover + a * (1 - cover)
            if a:
                rows += bytes((round(r / a), round(g / a), round(b / a), round(a * 255)))
            else:
                rows += b"\0\0\0\0"
    return bytes(rows)


def png(size: int, pixels: bytes) -> bytes:
    def chunk(kind: bytes, data: bytes) -> bytes:
        crc = struct.pack(">I", zlib.crc32(kind + data))
        return struct.pack(">I", len(data)) + kind + data + crc

    header = struct.pack(">IIBBBBB", size, size, 8, 6, 0, 0, 0)  # 8-bit RGBA
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(pixels, 9))
        + chunk(b"IEND", b"")
    )


def svg() -> str:
    def hex_(colour: Colour) -> str:
        return "#" + "".join(f"{c:02x}" for c in colour)

    def line(a: tuple[float, float], b: tuple[float, float], width: float, colour: str) -> str:
        return (
            f'<line x1="{a[0] * 512:g}" y1="{a[1] * 512:g}" '
            f'x2="{b[0] * 512:g}" y2="{b[1] * 512:g}" '
            f'stroke="{colour}" stroke-width="{width * 1024:g}" stroke-linecap="round"/>'
        )

    rays = "".join(line(*ray(a), RAY_WIDTH, hex_(SUN)) for a in RAYS)
    return (
        '<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 512 512">'
        f'<rect width="512" height="512" rx="{CORNER * 512:g}" fill="{hex_(BLUE)}"/>'
        f'<clipPath id="rise"><rect width="512" height="{SUN_CLIP * 512:g}"/></clipPath>'
        f'<circle cx="{CENTRE[0] * 512:g}" cy="{CENTRE[1] * 512:g}" r="{SUN_RADIUS * 512:g}" '
        f'fill="{hex_(SUN)}" clip-path="url(#rise)"/>'
        f"{rays}{line(*HORIZON, hex_(WHITE))}{line(*LINE, hex_(MIST))}</svg>\n"
    )


def main() -> None:
    ICONS.mkdir(parents=True, exist_ok=True)
    full = rounded_square(0.0)
    outputs = {
        # "any": a rounded square with transparent corners, as launchers show it.
        "icon-192.png": (192, rounded_square(CORNER), 1.0, False),
        "icon-512.png": (512, rounded_square(CORNER), 1.0, False),
        # maskable: full bleed, the figure inside the central safe circle (radius 40 %).
        "maskable-192.png": (192, full, 0.86, False),
        "maskable-512.png": (512, full, 0.86, False),
        # iOS rounds the corners itself and shows transparency as black.
        "apple-touch-icon.png": (180, full, 0.9, False),
        # Android's status-bar badge: only the alpha channel counts.
        "badge-96.png": (96, None, 1.25, True),
    }
    for name, (size, background, scale, badge) in outputs.items():
        (ICONS / name).write_bytes(png(size, render(size, background, scale, badge)))
        print(name)
    (ICONS / "icon.svg").write_text(svg(), encoding="utf-8")
    print("icon.svg")


if __name__ == "__main__":
    main()
