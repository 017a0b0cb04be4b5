"""The synthetic catalogue: determinism, layout, balance and that each cue shows its label."""

from __future__ import annotations

import io
from collections import Counter

import numpy as np
import pytest
from PIL import Image

from catalog_enrich.schema import FIELDS_BY_NAME, labels_from_record
from vlm.data.catalogue import (
    ARTICLE_TYPES,
    ARTICLES,
    BADGE_BOX,
    BAND_TOP,
    COLOUR_NAMES,
    COLOURS,
    GENDER_BADGES,
    SEASON_TINTS,
    USAGE_BANDS,
    display_name,
)
from vlm.data.synth import draw_product, synth_records

COLUMNS = [
    "id", "gender", "masterCategory", "subCategory", "articleType", "baseColour",
    "season", "year", "usage", "productDisplayName", "image",
]  # fmt: skip

#: how far a decoded cue pixel may stray from its nominal colour (jitter + noise + JPEG)
TOLERANCE = 45


@pytest.fixture(scope="module")
def records() -> list[dict]:
    return list(synth_records(600, seed=7))


def _decode(record: dict) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(record["image"]["bytes"])).convert("RGB"), dtype=int)


def _nearest(pixel: np.ndarray, palette: dict[str, tuple[int, int, int]]) -> str:
    return min(palette, key=lambda name: float(np.abs(pixel - np.asarray(palette[name])).sum()))


def _nearest_hue(pixel: np.ndarray, palette: dict[str, tuple[int, int, int]]) -> str:
    # backgrounds vary in brightness by design; compare chromaticity only
    def chroma(rgb: np.ndarray) -> np.ndarray:
        return np.asarray(rgb, dtype=float) / max(1.0, float(np.sum(rgb)))

    return min(palette, key=lambda name: float(np.abs(chroma(pixel) - chroma(np.asarray(palette[name]))).sum()))


def test_same_n_and_seed_give_identical_rows() -> None:
    assert list(synth_records(12, seed=3)) == list(synth_records(12, seed=3))


def test_other_seed_gives_other_images() -> None:
    first = [r["image"]["bytes"] for r in synth_records(5, seed=3)]
    second = [r["image"]["bytes"] for r in synth_records(5, seed=4)]
    assert first != second


def test_columns_and_types(records: list[dict]) -> None:
    for record in records[:50]:
        assert list(record) == COLUMNS
        assert isinstance(record["id"], int) and isinstance(record["year"], int)
        assert set(record["image"]) == {"bytes", "path"}
        assert record["image"]["bytes"][:3] == b"\xff\xd8\xff"  # JPEG
        assert all(isinstance(record[c], str) for c in COLUMNS if c not in {"id", "year", "image"})
    assert len({r["id"] for r in records}) == len(records)


def test_categories_follow_the_article_type(records: list[dict]) -> None:
    for record in records:
        article = ARTICLES[record["articleType"]]
        assert (record["masterCategory"], record["subCategory"]) == (article.master, article.sub)
    assert ARTICLES["Tshirts"].sub == "Topwear" and ARTICLES["Casual Shoes"].master == "Footwear"


def test_every_class_appears_often(records: list[dict]) -> None:
    vocabularies = {
        "articleType": ARTICLE_TYPES,
        "baseColour": COLOUR_NAMES,
        "gender": FIELDS_BY_NAME["gender"].choices,
        "season": FIELDS_BY_NAME["season"].choices,
        "usage": FIELDS_BY_NAME["usage"].choices,
    }
    for column, values in vocabularies.items():
        counts = Counter(r[column] for r in records)
        assert set(counts) == set(values), column
        # dealt in shuffled rounds, so counts differ by at most one round
        assert max(counts.values()) - min(counts.values()) <= 1, column


def test_labels_are_schema_valid_and_name_is_derived(records: list[dict]) -> None:
    for record in records:
        labels = labels_from_record(record)
        for key in ("gender", "season", "usage"):
            assert labels[key] in FIELDS_BY_NAME[key].choices
        assert labels["product_name"] == display_name(record["gender"], record["baseColour"], record["articleType"])
        assert len(labels["product_name"]) <= FIELDS_BY_NAME["product_name"].max_length


def test_image_sizes_vary_within_bounds(records: list[dict]) -> None:
    sizes = {Image.open(io.BytesIO(r["image"]["bytes"])).size for r in records[:100]}
    assert len(sizes) > 20
    assert all(60 <= w <= 96 and 60 <= h <= 120 for w, h in sizes)


def test_badge_band_and_background_show_their_labels(records: list[dict]) -> None:
    for record in records[:120]:
        pixels = _decode(record)
        height, width, _ = pixels.shape
        left, top, right, bottom = BADGE_BOX
        badge = pixels[int((top + bottom) / 2 * height), int((left + right) / 2 * width)]
        band = pixels[int((BAND_TOP + 1) / 2 * height), width // 2]
        # above the product box and right of the badge there is only background
        background = pixels[int(0.08 * height), int(0.6 * width)]
        assert np.abs(badge - GENDER_BADGES[record["gender"]]).max() <= TOLERANCE
        assert np.abs(band - USAGE_BANDS[record["usage"]]).max() <= TOLERANCE
        assert _nearest(badge, GENDER_BADGES) == record["gender"]
        assert _nearest(band, USAGE_BANDS) == record["usage"]
        assert _nearest_hue(background, SEASON_TINTS) == record["season"]


def test_product_fill_shows_its_colour() -> None:
    rng = np.random.default_rng(0)
    for colour in COLOUR_NAMES:
        # a T-shirt's chest sits at the centre of the product box whatever the jitter
        image = np.asarray(draw_product("Tshirts", colour, "Men", "Summer", "Casual", rng), dtype=int)
        height, width, _ = image.shape
        centre = image[int(0.6 * height), width // 2]
        assert _nearest(centre, COLOURS) == colour


def test_negative_n_is_refused() -> None:
    with pytest.raises(ValueError, match="n must be"):
        list(synth_records(-1, seed=0))
