"""Hostile and unusual image files: what a bucket of real-world product images eventually contains.

Each sample says what must become of it: ``enriched`` (an unusual but valid picture, decoded to upright
RGB and described) or ``rejected`` (dead-lettered with a reason that says what is wrong with the file).
"""

from __future__ import annotations

import io
import struct
import zlib
from collections.abc import Iterator
from dataclasses import dataclass

from PIL import Image


@dataclass(frozen=True)
class Sample:
    """One file: its name, its bytes, and ``enriched`` or ``rejected``."""

    name: str
    data: bytes
    expected: str


def _encode(image: Image.Image, fmt: str, **options: object) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **options)
    return buffer.getvalue()


def _product(size: tuple[int, int] = (160, 160), mode: str = "RGB") -> Image.Image:
    """A plain product-like picture: a coloured block on white."""
    image = Image.new("RGB", size, (255, 255, 255))
    width, height = size
    image.paste((180, 30, 40), (width // 4, height // 4, 3 * width // 4, 3 * height // 4))
    return image.convert(mode)


def _png_bomb(width: int, height: int) -> bytes:
    """A PNG whose header announces ``width`` x ``height`` pixels over a tiny compressed body."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF)

    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    # the rows of zero bytes compress to almost nothing: a few KB that would inflate to gigabytes
    rows = zlib.compressobj(9)
    body = rows.compress(b"\x00" * (width + 1) * 64) + rows.flush()
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", body) + chunk(b"IEND", b"")


def _exif_rotated() -> bytes:
    """A landscape JPEG whose EXIF orientation (6: rotate 90) makes it portrait when shown upright."""
    exif = Image.Exif()
    exif[0x0112] = 6
    return _encode(_product((200, 120)), "JPEG", exif=exif.tobytes())


def _animated_gif() -> bytes:
    frames = [_product(), Image.new("RGB", (160, 160), (0, 0, 255))]
    return _encode(frames[0], "GIF", save_all=True, append_images=frames[1:], duration=100, loop=0)


def _multipage_tiff() -> bytes:
    pages = [_product(), Image.new("RGB", (160, 160), (0, 128, 0))]
    return _encode(pages[0], "TIFF", save_all=True, append_images=pages[1:])


def _palette_with_transparency() -> bytes:
    palette = _product().convert("P", palette=Image.Palette.ADAPTIVE, colors=16)
    return _encode(palette, "PNG", transparency=0)


def hostile_samples() -> Iterator[Sample]:
    """The corpus, in a fixed order."""
    jpeg = _encode(_product(), "JPEG", quality=90)
    yield Sample("corrupt.jpg", jpeg[:200] + bytes(range(256)) * 8 + jpeg[-200:], "rejected")
    yield Sample("truncated.jpg", jpeg[: len(jpeg) // 3], "rejected")
    yield Sample("zero-bytes.jpg", b"", "rejected")
    yield Sample("not-an-image.jpg", b"%PDF-1.7\n" + b"this is a document, not a picture\n" * 40, "rejected")
    yield Sample("html-named-png.png", b"<html><body><img src=x onerror=alert(1)></body></html>", "rejected")
    yield Sample("decompression-bomb.png", _png_bomb(60_000, 60_000), "rejected")
    yield Sample("over-pixel-limit.png", _png_bomb(8_000, 8_000), "rejected")
    yield Sample("extreme-thin.png", _encode(Image.new("RGB", (4, 6000), (200, 0, 0)), "PNG"), "rejected")
    yield Sample("extreme-wide.png", _encode(_product((6000, 600)), "PNG"), "enriched")
    yield Sample("cmyk.jpg", _encode(_product(mode="CMYK"), "JPEG"), "enriched")
    yield Sample("sixteen-bit.png", _encode(_product().convert("L").convert("I;16"), "PNG"), "enriched")
    yield Sample("palette-transparent.png", _palette_with_transparency(), "enriched")
    yield Sample("rgba.png", _encode(_product(mode="RGBA"), "PNG"), "enriched")
    yield Sample("animated.gif", _animated_gif(), "enriched")
    yield Sample("multi-page.tiff", _multipage_tiff(), "enriched")
    yield Sample("exif-rotated.jpg", _exif_rotated(), "enriched")
    yield Sample("greyscale.jpg", _encode(_product(mode="L"), "JPEG"), "enriched")
    yield Sample("webp.webp", _encode(_product(), "WEBP"), "enriched")
