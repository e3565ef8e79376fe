"""Whole scenes as a collage: the hero and the setting each drawn as a picture of its own, then laid out as
stickers on one page: the hero in its box, the setting smaller in the opposite upper corner, and a thing the
page names beside a friend, when there is one, smaller still in the opposite lower corner.

Why: our illustrators learnt from single, centred icons on a plain background. Asked for two concepts in one
16×16 latent with region prompts (MultiDiffusion, pipeline.generate_scene), v2 draws neither recognisably:
the hero gets a 10×10 window it never saw at training, the setting a whole picture it fills with one big
shape over the hero. Drawn apart, each is a picture like the ones it learnt, and the hero's picture (the
book's hero seed) is the same on every page. `EmbeddedIllustrator.Options.scene` picks "collage" (v2's
default) or "regions".
"""

from __future__ import annotations

import numpy as np
from PIL import Image, ImageFilter

SETTING_SIZE = 0.5  # the setting's sticker: this share of the picture's side
THING_SIZE = 0.38  # a third sticker (a thing the page names beside the hero and a friend)
MARGIN = 0.03
INK_THRESHOLD = 28  # a pixel differing from the picture's background by more than this (0-255) is drawn


def background(image: Image.Image) -> tuple[int, int, int]:
    """The picture's plain background colour: the median of its four corners' 4×4 patches."""
    a = np.asarray(image.convert("RGB"))
    corners = np.concatenate([a[:4, :4], a[:4, -4:], a[-4:, :4], a[-4:, -4:]]).reshape(-1, 3)
    return tuple(int(v) for v in np.median(corners, axis=0))


def sticker_mask(image: Image.Image) -> Image.Image:
    """Where the picture is drawn (not its background), softened by a pixel so edges are not jagged."""
    a = np.asarray(image.convert("RGB")).astype(np.int16)
    bg = np.array(background(image), dtype=np.int16)
    drawn = (np.abs(a - bg).max(axis=2) > INK_THRESHOLD).astype(np.uint8) * 255
    return Image.fromarray(drawn, "L").filter(ImageFilter.MaxFilter(3)).filter(ImageFilter.GaussianBlur(0.8))


def setting_box(hero_box: tuple[float, float, float, float]) -> tuple[float, float, float, float]:
    """The setting's box (x0, y0, x1, y1 fractions): the upper corner away from the hero."""
    hero_left = (hero_box[0] + hero_box[2]) / 2 <= 0.5
    x0 = 1 - MARGIN - SETTING_SIZE if hero_left else MARGIN
    return (x0, MARGIN, x0 + SETTING_SIZE, MARGIN + SETTING_SIZE)


def thing_box(hero_box: tuple[float, float, float, float]) -> tuple[float, float, float, float]:
    """A third sticker's box: the lower corner away from the hero, below the setting's."""
    x0, y0, _, _ = setting_box(hero_box)
    x0 = x0 if x0 <= MARGIN else 1 - MARGIN - THING_SIZE
    return (x0, 1 - MARGIN - THING_SIZE, x0 + THING_SIZE, 1 - MARGIN)


def collage(hero: Image.Image, setting: Image.Image, hero_box: tuple[float, float, float, float],
            thing: Image.Image | None = None) -> Image.Image:
    """One picture the size of `hero`: the setting's sticker, `thing`'s (when given), then the hero's on top in
    `hero_box`."""
    size = hero.size[0]
    page = Image.new("RGB", hero.size, background(hero))

    def paste(picture: Image.Image, box: tuple[float, float, float, float]) -> None:
        x0, y0, x1, y1 = (round(v * size) for v in box)
        side = max(1, min(x1 - x0, y1 - y0))
        small = picture.convert("RGB").resize((side, side), Image.Resampling.LANCZOS)
        page.paste(small, (x0 + (x1 - x0 - side) // 2, y0 + (y1 - y0 - side) // 2), sticker_mask(small))

    paste(setting, setting_box(hero_box))
    if thing is not None:
        paste(thing, thing_box(hero_box))
    paste(hero, hero_box)
    return page
