"""Training-time image augmentation: new views of the same product so a small set is not memorised.

Only geometry changes (a slightly smaller crop at a slightly shifted place, scaled back): colours are
labels here, so no colour jitter, and no flips, since a mirrored product shot is not what catalogs hold.
"""

from __future__ import annotations

import random

from PIL import Image

#: smallest side of the crop as a share of the image side
MIN_CROP = 0.88


def augment(image: Image.Image, rng: random.Random) -> Image.Image:
    """A random crop keeping at least ``MIN_CROP`` of each side, resized back to the original size."""
    width, height = image.size
    crop_w = round(width * rng.uniform(MIN_CROP, 1.0))
    crop_h = round(height * rng.uniform(MIN_CROP, 1.0))
    left = rng.randint(0, width - crop_w)
    top = rng.randint(0, height - crop_h)
    return image.crop((left, top, left + crop_w, top + crop_h)).resize((width, height), Image.Resampling.BILINEAR)
