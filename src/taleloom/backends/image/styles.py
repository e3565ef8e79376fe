"""The drawing styles the v2 illustrator was trained on, and which one each book style preset draws in.

One home for these facts: `scripts/build_iconify_dataset.py` writes the captions with `caption()`,
and the embedded illustrator builds its prompts with the same function, so a preset's style words at
sampling time are exactly the words the model saw next to pictures of that style.

Nine styles are Iconify colour-emoji sets (npm `@iconify-json/*`, rasterised on the user's machine);
two are derived from them by the data script: `pixel` (twemoji on a 32×32 grid with a 16-colour
palette) and `ink` (OpenMoji's outlines in black on cream, the colour fills dropped). The illustrator
makes a picture in a derived style the way the data did: drawn in the source set's style (`drawn_style`),
then finished with the same transform (`finish`). Asked for "pixel art" itself, the network drew smooth
shapes with no grid (the probe named none of them pixel), and pixelating its pixel-art attempts kept fewer
concepts recognisable than pixelating its twemoji drawings (probe top-5 29 % vs 42 % of 24 held-out
pictures; ink: 39 % vs 33 % of 18, within noise; measured once with a throwaway script on
benchmarks/illustrator_compare.py's probe, not a benchmark).
"""

from __future__ import annotations

from dataclasses import dataclass

from PIL import Image


@dataclass(frozen=True)
class TrainedStyle:
    name: str  # style id in the data set
    words: str  # what the caption says about the look
    source: str  # npm package the pictures come from (a derived style: the package it is made from)
    version: str  # exact npm version
    licence: str  # SPDX id of the artwork's licence
    attribution: str  # the credit the licence asks for


_ICONIFY = "@iconify-json/"
STYLES: dict[str, TrainedStyle] = {s.name: s for s in [
    TrainedStyle("noto", "noto style, glossy round cartoon", _ICONIFY + "noto", "1.2.9", "Apache-2.0",
                 "Noto Emoji by Google Inc."),
    TrainedStyle("noto-v1", "old noto style, flat bright blobs", _ICONIFY + "noto-v1", "1.2.5", "Apache-2.0",
                 "Noto Emoji (v1) by Google Inc."),
    TrainedStyle("twemoji", "twemoji style, flat simple shapes", _ICONIFY + "twemoji", "1.2.5", "CC-BY-4.0",
                 "Twemoji by Twitter, Inc. and other contributors, CC BY 4.0"),
    TrainedStyle("openmoji", "openmoji style, thick black outlines", _ICONIFY + "openmoji", "1.2.29", "CC-BY-SA-4.0",
                 "OpenMoji, the open-source emoji and icon project, CC BY-SA 4.0"),
    TrainedStyle("fluent", "fluent style, soft 3d shading", _ICONIFY + "fluent-emoji", "1.2.7", "MIT",
                 "Fluent Emoji by Microsoft Corporation"),
    TrainedStyle("fluent-flat", "fluent flat style, pastel flat colours", _ICONIFY + "fluent-emoji-flat", "1.2.6",
                 "MIT", "Fluent Emoji by Microsoft Corporation"),
    TrainedStyle("emojione", "emojione style, bold glossy icons", _ICONIFY + "emojione", "1.2.3", "CC-BY-4.0",
                 "Emoji artwork provided by EmojiOne, CC BY 4.0"),
    TrainedStyle("fxemoji", "firefox style, painted gradients", _ICONIFY + "fxemoji", "1.2.2", "Apache-2.0",
                 "Firefox OS Emoji by Mozilla"),
    TrainedStyle("streamline", "streamline style, hand drawn doodle", _ICONIFY + "streamline-emojis", "1.2.4",
                 "CC-BY-4.0", "Streamline Emojis by Streamline (streamlinehq.com), CC BY 4.0"),
    TrainedStyle("pixel", "pixel art style, big square pixels", _ICONIFY + "twemoji", "1.2.5", "CC-BY-4.0",
                 "derived from Twemoji by Twitter, Inc. and other contributors, CC BY 4.0"),
    TrainedStyle("ink", "ink style, black pen lines on cream paper", _ICONIFY + "openmoji", "1.2.29",
                 "CC-BY-SA-4.0", "derived from OpenMoji, CC BY-SA 4.0"),
]}

# book style preset (stages/stage.py STYLES) → the trained style that looks most like it
PRESET_STYLE: dict[str, str] = {
    "storybook": "fluent",
    "watercolor": "fxemoji",
    "crayon": "streamline",
    "pixel": "pixel",
    "ink": "ink",
    "emoji": "twemoji",
}


def caption(concept: str, style: str) -> str:
    """The caption of a picture of `concept` in trained style `style` (and the prompt that asks for it)."""
    return f"{concept}, {STYLES[style].words}"


def style_for_preset(preset: str) -> str:
    """The trained style a book preset draws in; a trained style's own name is itself (the benchmark asks for
    each trained style); an unknown name: the storybook one."""
    if preset in STYLES:
        return preset
    return PRESET_STYLE.get(preset, PRESET_STYLE["storybook"])


def pixelate(img: Image.Image, grid: int = 32, colours: int = 16) -> Image.Image:
    """Pixel art: the picture on a grid×grid raster (box filter) in `colours` colours, blown up with square pixels."""
    small = img.resize((grid, grid), Image.Resampling.BOX).quantize(colours, dither=Image.Dither.NONE).convert("RGB")
    return small.resize(img.size, Image.Resampling.NEAREST)


def ink(img: Image.Image, threshold: int = 90) -> Image.Image:
    """Ink drawing: the dark outlines in black on cream paper; every fill becomes paper."""
    lum = img.convert("L")
    mask = lum.point(lambda v: 255 if v < threshold else 0)
    paper = Image.new("RGB", img.size, (246, 238, 220))
    paper.paste((20, 20, 25), mask=mask)
    return paper


def flat_colours(img: Image.Image, colours: int = 12) -> Image.Image:
    """Flat vector fills: the picture in `colours` colours (median cut, no dithering), its soft shading gone."""
    return img.quantize(colours, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE).convert("RGB")


# Trained styles whose pictures are flat vector fills, which v2 draws with fluent's soft 3D shading all the same:
# the probe of benchmarks/illustrator_compare.py read 7 of 8 held-out fluent-flat pictures and 5 of 8 twemoji ones
# as fluent, and none of emojione's as emojione. They are finished in 12 flat colours, as such art is drawn: on two
# draws of held-out pictures (88 and 129, 8 and 12 a style; a throwaway script on the benchmark's probe) the probe's
# style read right rose from 0.45 to 0.59 and from 0.53 to 0.63 per style, its concept top-5 0.466 → 0.455 and
# 0.519 → 0.519 (more colours kept more shading: 24 colours, 0.59; a 3×3 mode filter cost concepts).
FLAT_STYLES = frozenset({"twemoji", "fluent-flat", "emojione"})
DERIVED_FROM = {"pixel": "twemoji", "ink": "openmoji"}  # derived style → the set its pictures are made from
DERIVED_TRANSFORM = {"pixel": pixelate, "ink": ink}  # derived style → the transform that makes them


def drawn_style(style: str) -> str:
    """The trained style the network draws a picture of `style` in: a derived style's source set (its
    pictures are made from that set's, so they are drawn in it and finished), any other style itself."""
    return DERIVED_FROM.get(style, style)


def finish(image: Image.Image, style: str) -> Image.Image:
    """A drawn picture as its trained style shows it: a derived style's transform applied (pixel art gets its
    grid and palette, ink its clean black lines on cream), a flat style's fills made flat (FLAT_STYLES); any
    other style as drawn."""
    transform = DERIVED_TRANSFORM.get(style) or (flat_colours if style in FLAT_STYLES else None)
    return transform(image.convert("RGB")) if transform else image
