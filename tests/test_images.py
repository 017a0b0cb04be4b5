"""Decoding of hostile and unusual image bytes: each is usable RGB or refused with a clear reason."""

from __future__ import annotations

import io

import pytest
from PIL import Image

from worker.images import MAX_SIDE, DecodeLimits, ImageRejectedError, decode_image


def encode(image: Image.Image, fmt: str, **options) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **options)
    return buffer.getvalue()


def red(size=(40, 30), mode="RGB") -> Image.Image:
    return Image.new(mode, size, (200, 10, 10) if mode == "RGB" else 0)


def test_plain_jpeg_decodes_to_rgb():
    image = decode_image(encode(red(), "JPEG"))
    assert image.mode == "RGB" and image.size == (40, 30)


def test_cmyk_jpeg_becomes_rgb():
    cmyk = Image.new("CMYK", (32, 32), (0, 255, 255, 0))
    image = decode_image(encode(cmyk, "JPEG"))
    assert image.mode == "RGB"
    r, g, b = image.getpixel((16, 16))
    assert r > 200 and g < 60 and b < 60


def test_sixteen_bit_greyscale_is_scaled_not_clipped():
    grey = Image.new("I;16", (32, 32), 32768)
    image = decode_image(encode(grey, "PNG"))
    r, g, b = image.getpixel((0, 0))
    assert image.mode == "RGB" and 100 < r < 156 and r == g == b


def test_palette_with_transparency_is_composited_on_white():
    palette = Image.new("P", (32, 32), 0)
    palette.putpalette([0, 0, 0] * 256)
    palette.info["transparency"] = 0
    image = decode_image(encode(palette, "PNG", transparency=0))
    assert image.getpixel((5, 5)) == (255, 255, 255)


def test_rgba_transparent_pixels_become_white():
    rgba = Image.new("RGBA", (20, 20), (255, 0, 0, 0))
    assert decode_image(encode(rgba, "PNG")).getpixel((3, 3)) == (255, 255, 255)


def test_animated_gif_uses_first_frame():
    frames = [Image.new("RGB", (24, 24), colour) for colour in ((255, 0, 0), (0, 0, 255))]
    data = encode(frames[0], "GIF", save_all=True, append_images=frames[1:])
    r, _, b = decode_image(data).getpixel((10, 10))
    assert r > 200 and b < 60


def test_multipage_tiff_uses_first_page():
    pages = [Image.new("RGB", (24, 24), colour) for colour in ((0, 255, 0), (255, 0, 0))]
    data = encode(pages[0], "TIFF", save_all=True, append_images=pages[1:])
    _, g, _ = decode_image(data).getpixel((1, 1))
    assert g > 200


def test_exif_orientation_is_applied():
    wide = Image.new("RGB", (60, 20), (0, 128, 0))
    exif = Image.Exif()
    exif[0x0112] = 6  # rotated 90 degrees clockwise
    image = decode_image(encode(wide, "JPEG", exif=exif.tobytes()))
    assert image.size == (20, 60)


def test_large_image_is_downscaled_to_the_cap():
    image = decode_image(encode(Image.new("RGB", (3000, 1500)), "PNG"))
    assert max(image.size) == MAX_SIDE


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"", "empty object"),
        (b"just some text, not an image", "not a decodable image"),
        (b"\x89PNG\r\n\x1a\n" + b"\x00" * 40, "not a decodable image"),
    ],
)
def test_garbage_is_refused_with_a_reason(data: bytes, reason: str):
    with pytest.raises(ImageRejectedError, match=reason):
        decode_image(data)


def test_truncated_jpeg_is_refused():
    data = encode(Image.effect_noise((200, 200), 60).convert("RGB"), "JPEG")
    with pytest.raises(ImageRejectedError, match="corrupt or truncated"):
        decode_image(data[: len(data) // 3])


def test_decompression_bomb_is_refused_before_decoding():
    # a tiny PNG whose header announces 30000 x 30000 pixels
    data = encode(Image.new("1", (30000, 30000)), "PNG")
    assert len(data) < 200_000
    with pytest.raises(ImageRejectedError, match=r"pixel limit|decompression bomb"):
        decode_image(data, DecodeLimits(max_pixels=40_000_000))


def test_extreme_aspect_ratio_is_refused_as_too_small():
    with pytest.raises(ImageRejectedError, match="too small"):
        decode_image(encode(Image.new("RGB", (4000, 2)), "PNG"))


def test_oversized_payload_is_refused_by_bytes():
    with pytest.raises(ImageRejectedError, match="byte limit"):
        decode_image(encode(red(), "PNG"), DecodeLimits(max_bytes=10))
