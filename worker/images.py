"""Safe decoding of untrusted image bytes into the RGB picture the model sees."""

from __future__ import annotations

import io
import warnings
from dataclasses import dataclass

from PIL import Image, ImageOps, UnidentifiedImageError

#: longest side handed to the model; processors resize far below this, and capping here bounds memory
MAX_SIDE = 1024

#: narrowest side accepted; below it no model can see a product
MIN_SIDE = 8


class ImageRejectedError(ValueError):
    """The bytes are not an image the model can use; the message is the recorded reason."""


@dataclass(frozen=True)
class DecodeLimits:
    """Bounds applied before and while decoding.

    max_bytes: refuse larger payloads. max_pixels: refuse images whose header announces more pixels
    (a decompression bomb is refused before any pixel is decoded).
    """

    max_bytes: int = 20 * 1024 * 1024
    max_pixels: int = 40_000_000


def _flatten_alpha(image: Image.Image) -> Image.Image:
    """Transparent areas become white, as product photos are shot on white, instead of black."""
    rgba = image.convert("RGBA")
    canvas = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
    return Image.alpha_composite(canvas, rgba).convert("RGB")


def _to_rgb(image: Image.Image) -> Image.Image:
    if image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info):
        return _flatten_alpha(image)
    if image.mode in ("I;16", "I;16B", "I;16L", "I"):
        # 16/32-bit greyscale: scale to 8 bits instead of clipping everything above 255 to white
        return image.point(lambda value: value / 256).convert("L").convert("RGB")
    return image.convert("RGB")


def decode_image(data: bytes, limits: DecodeLimits | None = None) -> Image.Image:
    """An RGB image, upright per EXIF, at most ``MAX_SIDE`` on its longest side; raises ImageRejectedError."""
    limits = limits or DecodeLimits()
    if not data:
        raise ImageRejectedError("empty object (0 bytes)")
    if len(data) > limits.max_bytes:
        raise ImageRejectedError(f"object is {len(data)} bytes, above the {limits.max_bytes} byte limit")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(data))
            width, height = image.size
            if width * height > limits.max_pixels:
                raise ImageRejectedError(f"image is {width}x{height}, above the {limits.max_pixels} pixel limit")
            if min(width, height) < MIN_SIDE:
                raise ImageRejectedError(f"image is {width}x{height}, too small to describe")
            # animated GIF/WebP and multi-page TIFF: the first frame is the product shot
            image.seek(0)
            image.load()
            image = ImageOps.exif_transpose(image) or image
            image = _to_rgb(image)
    except ImageRejectedError:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as error:
        raise ImageRejectedError(f"decompression bomb refused: {error}") from error
    except UnidentifiedImageError as error:
        raise ImageRejectedError("not a decodable image: unknown or damaged format") from error
    except (OSError, ValueError, SyntaxError, EOFError) as error:
        raise ImageRejectedError(f"corrupt or truncated image: {str(error)[:120]}") from error
    image.thumbnail((MAX_SIDE, MAX_SIDE))
    return image
