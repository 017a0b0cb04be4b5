"""The label space of the synthetic catalogue and the visual cue that carries each label.

Every label is drawn as something large, colour-coded and at a fixed place, so that a tiny vision model
working on 64x64 inputs can read it:

- articleType: the silhouette of the product, centred in the middle of the image;
- baseColour: the fill colour of that silhouette;
- gender: a solid badge in the top-left corner, one colour per gender;
- usage: a band along the bottom edge, one colour per usage;
- season: the tint of the background, one hue family per season.

Cue colours only need to be distinct within their role: the regions never overlap, so a red band and a red
product do not compete.
"""

from __future__ import annotations

from dataclasses import dataclass

from catalog_enrich.schema import FIELDS_BY_NAME

RGB = tuple[int, int, int]

GENDERS: tuple[str, ...] = FIELDS_BY_NAME["gender"].choices
SEASONS: tuple[str, ...] = FIELDS_BY_NAME["season"].choices
USAGES: tuple[str, ...] = FIELDS_BY_NAME["usage"].choices


@dataclass(frozen=True)
class Article:
    """Where an articleType sits in the dataset's category tree.

    master: the ``masterCategory`` value (Apparel, Footwear, Accessories).
    sub: the ``subCategory`` value (Topwear, Bottomwear, Dress, Shoes, Bags, Watches, Headwear).
    """

    master: str
    sub: str


#: articleType -> its categories, spelled and nested as in fashion-product-images-small
ARTICLES: dict[str, Article] = {
    "Tshirts": Article("Apparel", "Topwear"),
    "Shirts": Article("Apparel", "Topwear"),
    "Jackets": Article("Apparel", "Topwear"),
    "Jeans": Article("Apparel", "Bottomwear"),
    "Shorts": Article("Apparel", "Bottomwear"),
    "Dresses": Article("Apparel", "Dress"),
    "Casual Shoes": Article("Footwear", "Shoes"),
    "Handbags": Article("Accessories", "Bags"),
    "Watches": Article("Accessories", "Watches"),
    "Caps": Article("Accessories", "Headwear"),
}
ARTICLE_TYPES: tuple[str, ...] = tuple(ARTICLES)

#: baseColour -> fill colour; names from the real dataset, values kept far apart in RGB (the closest pair,
#: Black and Navy Blue, still differs by 70 in the blue channel)
COLOURS: dict[str, RGB] = {
    "Black": (22, 22, 22),
    "White": (244, 244, 244),
    "Grey": (128, 128, 128),
    "Navy Blue": (24, 34, 100),
    "Blue": (30, 100, 235),
    "Red": (212, 28, 34),
    "Pink": (246, 150, 196),
    "Purple": (118, 40, 160),
    "Green": (28, 146, 56),
    "Yellow": (244, 212, 36),
    "Orange": (246, 128, 22),
    "Brown": (122, 72, 34),
}
COLOUR_NAMES: tuple[str, ...] = tuple(COLOURS)

#: gender -> badge colour; saturated and mutually distant so JPEG and noise cannot blur one into another
GENDER_BADGES: dict[str, RGB] = {
    "Men": (20, 60, 210),
    "Women": (225, 30, 120),
    "Boys": (0, 175, 170),
    "Girls": (250, 160, 0),
    "Unisex": (70, 70, 70),
}

#: season -> background tint; all light, so the product silhouette always stands out against it, and told
#: apart by hue rather than brightness, which is jittered
SEASON_TINTS: dict[str, RGB] = {
    "Summer": (250, 240, 130),
    "Winter": (180, 208, 252),
    "Fall": (242, 168, 150),
    "Spring": (176, 236, 170),
}

#: usage -> bottom band colour
USAGE_BANDS: dict[str, RGB] = {
    "Casual": (0, 110, 255),
    "Formal": (10, 10, 10),
    "Sports": (0, 200, 30),
    "Ethnic": (255, 120, 0),
    "Party": (220, 0, 220),
    "Smart Casual": (0, 215, 225),
    "Travel": (130, 75, 20),
    "Home": (220, 0, 0),
}

#: the gender badge as fractions of width and height (left, top, right, bottom); about a fifth of the width
BADGE_BOX = (0.02, 0.02, 0.27, 0.19)
#: the usage band starts at this fraction of the height and runs to the bottom edge
BAND_TOP = 0.86
#: the box the product is fitted into, below the badge and above the band (left, top, right, bottom)
PRODUCT_BOX = (0.06, 0.21, 0.94, 0.84)

#: release years are not visible in the image; drawn uniformly so the column looks like the real one
YEARS = range(2010, 2019)


def display_name(gender: str, colour: str, article_type: str) -> str:
    """The productDisplayName of a synthetic product: every word is visible in the image."""
    return f"{gender} {colour} {article_type}"


def _check_covers(role: str, mapping: dict[str, RGB], choices: tuple[str, ...]) -> None:
    # a cue table keyed by name must cover the schema vocabulary exactly, or a label would have no cue
    if set(mapping) != set(choices):
        raise RuntimeError(f"{role} cues {sorted(mapping)} do not match the schema choices {sorted(choices)}")


_check_covers("gender", GENDER_BADGES, GENDERS)
_check_covers("season", SEASON_TINTS, SEASONS)
_check_covers("usage", USAGE_BANDS, USAGES)
