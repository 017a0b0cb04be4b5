"""Synthetic product images with labels, in the column layout of fashion-product-images-small.

Each image is a flat product silhouette on a tinted background with a gender badge and a usage band; the
scheme is described in ``vlm.data.catalogue``. Labels are drawn independently of each other, so implausible
pairs (a Boys dress, Formal shorts) do occur: resampling them away would correlate the fields and let a model
guess one cue from another instead of reading each one.

Images are JPEG at quality 90 with 4:2:0 chroma subsampling, as in the real dataset, so the decode path of
training, evaluation and serving is the one real catalogue images take; the cues are large enough that the
compression does not blur them.
"""

from __future__ import annotations

import io
from collections.abc import Callable, Iterator, Sequence

import numpy as np
from PIL import Image, ImageDraw

from vlm.data.catalogue import (
    ARTICLE_TYPES,
    ARTICLES,
    BADGE_BOX,
    BAND_TOP,
    COLOUR_NAMES,
    COLOURS,
    GENDER_BADGES,
    GENDERS,
    PRODUCT_BOX,
    RGB,
    SEASON_TINTS,
    SEASONS,
    USAGE_BANDS,
    USAGES,
    YEARS,
    display_name,
)

#: images are drawn this many times larger and then reduced, which smooths the silhouette edges
SUPERSAMPLE = 3
#: JPEG quality of the encoded images, the level the real dataset's files are saved at
JPEG_QUALITY = 90
#: the smallest and largest image width; the height follows from a random aspect ratio
WIDTH_RANGE = (60, 96)
#: height / width, drawn uniformly; 1.33 is the real dataset's 60x80
ASPECT_RANGE = (1.0, 1.4)
#: the tallest image produced
MAX_HEIGHT = 120
#: the first id; ids then count up by row, like the dataset's numeric product ids
FIRST_ID = 10000

Box = tuple[float, float, float, float]
Points = Sequence[tuple[float, float]]
Shape = Callable[[ImageDraw.ImageDraw, Box, RGB, RGB, int], None]


def _at(box: Box, points: Points) -> list[tuple[float, float]]:
    # shapes are written in unit coordinates so one table serves every image size
    x0, y0, x1, y1 = box
    return [(x0 + u * (x1 - x0), y0 + v * (y1 - y0)) for u, v in points]


def _polygon(draw: ImageDraw.ImageDraw, box: Box, points: Points, fill: RGB, edge: RGB, width: int) -> None:
    draw.polygon(_at(box, points), fill=fill, outline=edge, width=width)


def _line(draw: ImageDraw.ImageDraw, box: Box, points: Points, edge: RGB, width: int) -> None:
    draw.line(_at(box, points), fill=edge, width=width)


def _ellipse(draw: ImageDraw.ImageDraw, box: Box, unit: Box, fill: RGB | None, edge: RGB, width: int) -> None:
    (left, top), (right, bottom) = _at(box, [unit[:2], unit[2:]])
    draw.ellipse((left, top, right, bottom), fill=fill, outline=edge, width=width)


def _tshirt(draw: ImageDraw.ImageDraw, box: Box, fill: RGB, edge: RGB, width: int) -> None:
    body = [(0.36, 0.0), (0.5, 0.1), (0.64, 0.0), (0.84, 0.05), (1.0, 0.3), (0.85, 0.4), (0.78, 0.32),
            (0.78, 1.0), (0.22, 1.0), (0.22, 0.32), (0.15, 0.4), (0.0, 0.3), (0.16, 0.05)]  # fmt: skip
    _polygon(draw, box, body, fill, edge, width)


def _shirt(draw: ImageDraw.ImageDraw, box: Box, fill: RGB, edge: RGB, width: int) -> None:
    body = [(0.36, 0.0), (0.64, 0.0), (0.82, 0.05), (0.98, 0.9), (0.86, 0.92), (0.76, 0.3), (0.76, 1.0),
            (0.24, 1.0), (0.24, 0.3), (0.14, 0.92), (0.02, 0.9), (0.18, 0.05)]  # fmt: skip
    _polygon(draw, box, body, fill, edge, width)
    # pointed collar wings and a button placket: what separates a shirt from a long-sleeved jacket
    _polygon(draw, box, [(0.36, 0.0), (0.5, 0.12), (0.4, 0.2)], fill, edge, width)
    _polygon(draw, box, [(0.64, 0.0), (0.5, 0.12), (0.6, 0.2)], fill, edge, width)
    _line(draw, box, [(0.5, 0.12), (0.5, 1.0)], edge, width)


def _jacket(draw: ImageDraw.ImageDraw, box: Box, fill: RGB, edge: RGB, width: int) -> None:
    _ellipse(draw, box, (0.3, 0.0, 0.7, 0.3), fill, edge, width)
    body = [(0.3, 0.16), (0.7, 0.16), (0.88, 0.2), (1.0, 0.95), (0.86, 0.97), (0.8, 0.45), (0.8, 1.0),
            (0.2, 1.0), (0.2, 0.45), (0.14, 0.97), (0.0, 0.95), (0.12, 0.2)]  # fmt: skip
    _polygon(draw, box, body, fill, edge, width)
    _line(draw, box, [(0.5, 0.2), (0.5, 1.0)], edge, width * 2)
    _polygon(draw, box, [(0.26, 0.62), (0.42, 0.62), (0.42, 0.78), (0.26, 0.78)], fill, edge, width)
    _polygon(draw, box, [(0.58, 0.62), (0.74, 0.62), (0.74, 0.78), (0.58, 0.78)], fill, edge, width)


def _jeans(draw: ImageDraw.ImageDraw, box: Box, fill: RGB, edge: RGB, width: int) -> None:
    legs = [(0.0, 0.08), (1.0, 0.08), (0.96, 1.0), (0.56, 1.0), (0.5, 0.3), (0.44, 1.0), (0.04, 1.0)]
    _polygon(draw, box, legs, fill, edge, width)
    _polygon(draw, box, [(0.0, 0.0), (1.0, 0.0), (1.0, 0.08), (0.0, 0.08)], fill, edge, width)


def _shorts(draw: ImageDraw.ImageDraw, box: Box, fill: RGB, edge: RGB, width: int) -> None:
    legs = [(0.0, 0.16), (1.0, 0.16), (1.0, 0.95), (0.56, 1.0), (0.5, 0.5), (0.44, 1.0), (0.0, 0.95)]
    _polygon(draw, box, legs, fill, edge, width)
    _polygon(draw, box, [(0.0, 0.0), (1.0, 0.0), (1.0, 0.16), (0.0, 0.16)], fill, edge, width)


def _dress(draw: ImageDraw.ImageDraw, box: Box, fill: RGB, edge: RGB, width: int) -> None:
    _line(draw, box, [(0.36, 0.1), (0.38, 0.0)], edge, width * 2)
    _line(draw, box, [(0.64, 0.1), (0.62, 0.0)], edge, width * 2)
    shape = [(0.32, 0.1), (0.68, 0.1), (0.62, 0.4), (1.0, 1.0), (0.0, 1.0), (0.38, 0.4)]
    _polygon(draw, box, shape, fill, edge, width)


def _shoe(draw: ImageDraw.ImageDraw, box: Box, fill: RGB, edge: RGB, width: int) -> None:
    upper = [(0.02, 0.82), (0.04, 0.12), (0.36, 0.04), (0.5, 0.36), (0.82, 0.46), (0.98, 0.64), (0.98, 0.82)]
    _polygon(draw, box, upper, fill, edge, width)
    for u in (0.52, 0.6, 0.68):
        _line(draw, box, [(u, 0.36 + (u - 0.5) * 0.3), (u + 0.05, 0.56)], edge, width)
    # a dark sole, so the only large light or coloured area is the product colour itself
    _polygon(draw, box, [(0.0, 0.82), (1.0, 0.82), (1.0, 1.0), (0.0, 1.0)], edge, edge, width)


def _handbag(draw: ImageDraw.ImageDraw, box: Box, fill: RGB, edge: RGB, width: int) -> None:
    x0, y0, x1, y1 = box
    handle = (x0 + 0.24 * (x1 - x0), y0, x0 + 0.76 * (x1 - x0), y0 + 0.8 * (y1 - y0))
    draw.arc(handle, 180, 360, fill=edge, width=width * 5)
    draw.arc(handle, 180, 360, fill=fill, width=width * 3)
    _polygon(draw, box, [(0.1, 0.38), (0.9, 0.38), (1.0, 1.0), (0.0, 1.0)], fill, edge, width)
    _line(draw, box, [(0.06, 0.62), (0.94, 0.62)], edge, width)


def _watch(draw: ImageDraw.ImageDraw, box: Box, fill: RGB, edge: RGB, width: int) -> None:
    _polygon(draw, box, [(0.22, 0.0), (0.78, 0.0), (0.78, 1.0), (0.22, 1.0)], fill, edge, width)
    _ellipse(draw, box, (0.0, 0.3, 1.0, 0.7), fill, edge, width)
    # thin hands, so the dial still shows the product colour
    _line(draw, box, [(0.5, 0.5), (0.5, 0.38)], edge, max(1, width // 2))
    _line(draw, box, [(0.5, 0.5), (0.72, 0.5)], edge, max(1, width // 2))


def _cap(draw: ImageDraw.ImageDraw, box: Box, fill: RGB, edge: RGB, width: int) -> None:
    x0, y0, x1, y1 = box
    w, h = x1 - x0, y1 - y0
    _polygon(draw, box, [(0.5, 0.62), (1.0, 0.74), (1.0, 0.9), (0.5, 0.84)], fill, edge, width)
    draw.pieslice((x0, y0 + 0.06 * h, x0 + 0.7 * w, y0 + 1.5 * h), 180, 360, fill=fill, outline=edge, width=width)
    _ellipse(draw, box, (0.31, 0.0, 0.39, 0.12), fill, edge, width)
    _line(draw, box, [(0.35, 0.1), (0.35, 0.78)], edge, width)


#: articleType -> (drawing function, its box as fractions of PRODUCT_BOX: left, top, right, bottom); the
#: boxes differ per type so each type covers its own set of image regions, whatever the colour
SHAPES: dict[str, tuple[Shape, Box]] = {
    "Tshirts": (_tshirt, (0.06, 0.0, 0.94, 1.0)),
    "Shirts": (_shirt, (0.14, 0.0, 0.86, 1.0)),
    "Jackets": (_jacket, (0.08, 0.0, 0.92, 1.0)),
    "Jeans": (_jeans, (0.24, 0.0, 0.76, 1.0)),
    "Shorts": (_shorts, (0.12, 0.22, 0.88, 0.86)),
    "Dresses": (_dress, (0.18, 0.0, 0.82, 1.0)),
    "Casual Shoes": (_shoe, (0.0, 0.42, 1.0, 1.0)),
    "Handbags": (_handbag, (0.14, 0.08, 0.86, 1.0)),
    "Watches": (_watch, (0.3, 0.0, 0.7, 1.0)),
    "Caps": (_cap, (0.04, 0.1, 0.96, 0.7)),
}


def _jitter(colour: RGB, rng: np.random.Generator, spread: float) -> RGB:
    # brightness and per-channel jitter keep a class from being a single exact RGB value
    scale = rng.uniform(1.0 - spread, 1.0 + spread)
    noisy = np.asarray(colour, dtype=float) * scale + rng.normal(0.0, spread * 40.0, size=3)
    return tuple(int(v) for v in np.clip(noisy, 0, 255))  # type: ignore[return-value]


def _background(width: int, height: int, season: str, rng: np.random.Generator) -> Image.Image:
    tint = np.asarray(_jitter(SEASON_TINTS[season], rng, 0.04), dtype=float)
    # a soft vertical gradient, either way up, so backgrounds are not one flat colour
    ramp = np.linspace(-1.0, 1.0, height)[:, None, None] * rng.uniform(-8.0, 8.0)
    pixels = np.clip(np.broadcast_to(tint + ramp, (height, width, 3)), 0, 255).astype(np.uint8)
    return Image.fromarray(pixels, "RGB")


def _product_layer(size: tuple[int, int], article_type: str, colour: str, rng: np.random.Generator) -> Image.Image:
    width, height = size
    shape, (u0, v0, u1, v1) = SHAPES[article_type]
    left, top, right, bottom = PRODUCT_BOX
    room_w, room_h = (right - left) * width, (bottom - top) * height
    # the box is fixed in image fractions, so after any resize the type covers the same regions; only a
    # small scale, shift and rotation jitter is added
    scale = rng.uniform(0.92, 1.0)
    box_w, box_h = (u1 - u0) * room_w * scale, (v1 - v0) * room_h * scale
    cx = left * width + (u0 + u1) / 2 * room_w + rng.uniform(-0.03, 0.03) * room_w
    cy = top * height + (v0 + v1) / 2 * room_h + rng.uniform(-0.03, 0.03) * room_h
    box = (cx - box_w / 2, cy - box_h / 2, cx + box_w / 2, cy + box_h / 2)
    fill = _jitter(COLOURS[colour], rng, 0.04)
    edge: RGB = (25, 25, 25)
    layer = Image.new("RGBA", size, (0, 0, 0, 0))
    shape(ImageDraw.Draw(layer), box, (*fill, 255), (*edge, 255), 2 * SUPERSAMPLE)  # type: ignore[arg-type]
    angle = rng.uniform(-3.0, 3.0)
    return layer.rotate(angle, resample=Image.Resampling.BICUBIC, center=(cx, cy))


def draw_product(
    article_type: str, colour: str, gender: str, season: str, usage: str, rng: np.random.Generator
) -> Image.Image:
    """One RGB product image whose cues show the given labels; size, placement and noise come from rng."""
    width = int(rng.integers(WIDTH_RANGE[0], WIDTH_RANGE[1] + 1))
    height = min(MAX_HEIGHT, round(width * rng.uniform(*ASPECT_RANGE)))
    big = (width * SUPERSAMPLE, height * SUPERSAMPLE)
    image = _background(*big, season, rng)
    image.paste(layer := _product_layer(big, article_type, colour, rng), (0, 0), layer)
    draw = ImageDraw.Draw(image)
    left, top, right, bottom = BADGE_BOX
    badge = (left * big[0], top * big[1], right * big[0], bottom * big[1])
    draw.rounded_rectangle(badge, radius=2 * SUPERSAMPLE, fill=_jitter(GENDER_BADGES[gender], rng, 0.03))
    draw.rectangle((0, BAND_TOP * big[1], big[0], big[1]), fill=_jitter(USAGE_BANDS[usage], rng, 0.03))
    small = np.asarray(image.resize((width, height), Image.Resampling.LANCZOS), dtype=float)
    # sensor-like noise, mild enough that every cue keeps its colour class
    noisy = np.clip(small + rng.normal(0.0, 3.0, size=small.shape), 0, 255).astype(np.uint8)
    return Image.fromarray(noisy, "RGB")


def encode_jpeg(image: Image.Image) -> bytes:
    """The image as JPEG bytes at the real dataset's quality."""
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=JPEG_QUALITY)
    return buffer.getvalue()


class _Deck:
    """Deals values in shuffled rounds, so every prefix of the stream is balanced to within one round."""

    def __init__(self, values: Sequence[str], rng: np.random.Generator) -> None:
        self._values = list(values)
        self._rng = rng
        self._hand: list[str] = []

    def deal(self) -> str:
        """The next value; a fresh shuffled round starts when the last one is used up."""
        if not self._hand:
            self._hand = [self._values[i] for i in self._rng.permutation(len(self._values))]
        return self._hand.pop()


def synth_records(n: int, seed: int) -> Iterator[dict]:
    """n synthetic rows in the dataset's columns; the same (n, seed) always gives identical bytes."""
    if n < 0:
        raise ValueError(f"n must be zero or more, got {n}")
    label_rng = np.random.default_rng([seed, 0])
    decks = {
        "articleType": _Deck(ARTICLE_TYPES, label_rng),
        "baseColour": _Deck(COLOUR_NAMES, label_rng),
        "gender": _Deck(GENDERS, label_rng),
        "season": _Deck(SEASONS, label_rng),
        "usage": _Deck(USAGES, label_rng),
    }
    for index in range(n):
        labels = {column: deck.deal() for column, deck in decks.items()}
        # one generator per row: a row's image depends only on (seed, row), not on the rows before it
        rng = np.random.default_rng([seed, 1, index])
        image = draw_product(*(labels[c] for c in ("articleType", "baseColour", "gender", "season", "usage")), rng)
        product_id = FIRST_ID + index
        article = ARTICLES[labels["articleType"]]
        yield {
            "id": product_id,
            "gender": labels["gender"],
            "masterCategory": article.master,
            "subCategory": article.sub,
            "articleType": labels["articleType"],
            "baseColour": labels["baseColour"],
            "season": labels["season"],
            "year": int(rng.choice(YEARS)),
            "usage": labels["usage"],
            "productDisplayName": display_name(labels["gender"], labels["baseColour"], labels["articleType"]),
            "image": {"bytes": encode_jpeg(image), "path": f"{product_id}.jpg"},
        }
