"""Plain facts about a photo that need no trained model: its dominant colours (named), its light,
faces or cat faces found by OpenCV's bundled Haar cascades (cv2.data.haarcascades), and standing people
found by OpenCV's built-in HOG pedestrian detector (Dalal & Triggs 2005; its weights are compiled into
OpenCV). ImageNet has no person label, so these are how the captioner knows someone is there."""

from __future__ import annotations

import colorsys
import functools
from typing import Any

import numpy as np
from PIL import Image

# (key, cascade, detection size (long side), scale step, min neighbours, smallest face as a fraction of the short
# side). People: the "alt2" frontal cascade at 480 px, which on the benchmark's 56 photos found 3-4 of the 5 people
# with 0 false faces, where the "default" cascade at 320 px found 2-3 with 1-5 false faces (cat fur, coins, the moon,
# leaves); a footballer's ~20 px face in a match photo is lost at 320 px. Cat faces: as before (a finer search
# costs 4x the time for no gain seen).
FACE_CASCADES = (("faces", "haarcascade_frontalface_alt2.xml", 480, 1.2, 5, 1 / 24),
                 ("cat_faces", "haarcascade_frontalcatface_extended.xml", 320, 1.2, 4, 1 / 12))


WORK_SIDE = 640  # every fact is read from a copy at most this size: a 5,000 px wallpaper costs what a phone photo does


def working_copy(image: Image.Image, side: int = WORK_SIDE) -> Image.Image:
    """RGB copy no larger than `side` on its long side (the caller's image is left as it is)."""
    rgb = image.convert("RGB")  # always a new image
    if max(rgb.size) > side:
        rgb.thumbnail((side, side), Image.Resampling.BICUBIC)
    return rgb


def image_facts(image: Image.Image) -> dict[str, Any]:
    """{"colours": [...], "light": "...", "brightness": 0..1, "faces": n, "cat_faces": n, "orientation": ...}."""
    w, h = image.size  # the photo's own size; the facts are read from a smaller copy
    rgb = working_copy(image)
    facts: dict[str, Any] = {
        "size": [w, h],
        "orientation": "landscape" if w > h * 1.1 else "portrait" if h > w * 1.1 else "square",
        "colours": dominant_colours(rgb),
    }
    facts.update(light(rgb))
    facts.update(detect_faces(rgb))
    facts.update(detect_bodies(rgb))
    return facts


# every name colour_name gives: the words a caption (and a story that copies it) uses for the photo's colours
COLOUR_NAMES = ("black", "white", "grey", "pink", "brown", "beige", "red", "orange", "yellow", "green", "turquoise",
                "blue", "purple")


def colour_name(r: int, g: int, b: int) -> str:
    """A child's name for an RGB colour: hue bins, with greys, browns and beiges by saturation/value."""
    hue, sat, val = colorsys.rgb_to_hsv(r / 255, g / 255, b / 255)
    deg = hue * 360
    if val < 0.18:
        return "black"
    if sat < 0.14 or (sat < 0.22 and val > 0.85):
        return "white" if val > 0.85 else "grey"
    if (deg >= 330 or deg < 12) and sat < 0.5 and val > 0.7:
        return "pink"
    if 10 <= deg < 50 and val < 0.62:
        return "brown"
    if 20 <= deg < 55 and sat < 0.45 and val >= 0.62:
        return "beige"
    for limit, name in ((12, "red"), (40, "orange"), (68, "yellow"), (165, "green"), (200, "turquoise"),
                        (255, "blue"), (290, "purple"), (340, "pink"), (361, "red")):
        if deg < limit:
            return name
    return "red"


def dominant_colours(image: Image.Image, k: int = 6, top: int = 3) -> list[dict[str, Any]]:
    """The `top` most common colour names, each with its share of the picture (median-cut palette)."""
    small = image.copy()
    small.thumbnail((96, 96))
    quant = small.quantize(colors=k, method=Image.Quantize.MEDIANCUT)
    palette = quant.getpalette() or []
    shares: dict[str, float] = {}
    total = small.width * small.height
    for count, idx in quant.getcolors() or []:
        r, g, b = palette[idx * 3: idx * 3 + 3]
        name = colour_name(r, g, b)
        shares[name] = shares.get(name, 0.0) + count / total
    ranked = sorted(shares.items(), key=lambda kv: -kv[1])[:top]
    return [{"name": n, "share": round(s, 3)} for n, s in ranked]


LIGHT_WORDS = ("low", "dim", "soft", "bright", "warm", "cool")  # every word of the light phrase but "light"


def light(image: Image.Image) -> dict[str, Any]:
    """Brightness (0..1), contrast and warmth, worded as one phrase for the caption."""
    arr = np.asarray(image.resize((64, 64)), dtype=np.float32) / 255.0
    luma = arr @ np.array([0.299, 0.587, 0.114], dtype=np.float32)
    brightness, contrast = float(luma.mean()), float(luma.std())
    warmth = float(arr[..., 0].mean() - arr[..., 2].mean())
    # "low", not "dark": a black photo's book, told "in dark light", baked "a dark light pizza" ("The Black and Dark
    # Light Pizza Party"); "dark" is a word for things too
    level = ("low" if brightness < 0.25 else "dim" if brightness < 0.42 else
             "bright" if brightness > 0.68 else "soft")
    # "soft, warm light" or "soft light". No "neutral" (a story copied "in a soft, neutral light") and no "strong
    # contrast" (the sklearn temple photo's book was titled "Soft Light and Strong Contrast"): the phrase goes
    # into captions a story is written from; the contrast stays a number.
    tone = "warm" if warmth > 0.06 else "cool" if warmth < -0.06 else ""
    phrase = f"{level}, {tone} light" if tone else f"{level} light"
    return {"brightness": round(brightness, 3), "contrast": round(contrast, 3), "warmth": round(warmth, 3),
            "light": phrase}


@functools.cache
def _cascade(name: str):
    import cv2

    path = cv2.data.haarcascades + name
    clf = cv2.CascadeClassifier(path)
    if clf.empty():
        raise RuntimeError(f"OpenCV cascade {path} is missing (opencv-python-headless < 5 ships it)")
    return clf


def detect_faces(image: Image.Image) -> dict[str, Any]:
    """Count people's faces and cat faces; boxes are fractions of the picture (x, y, w, h)."""
    import cv2

    out: dict[str, Any] = {}
    for key, cascade, detect_side, step, neighbours, smallest in FACE_CASCADES:
        small = image.copy()
        small.thumbnail((detect_side, detect_side))
        gray = cv2.equalizeHist(cv2.cvtColor(np.asarray(small), cv2.COLOR_RGB2GRAY))
        side = min(small.size)
        boxes = _cascade(cascade).detectMultiScale(gray, scaleFactor=step, minNeighbors=neighbours,
                                                   minSize=(max(20, int(side * smallest)),) * 2)
        out[key] = len(boxes)
        out[f"{key}_boxes"] = [[round(float(v) / s, 3) for v, s in zip(b, (*small.size, *small.size), strict=True)]
                               for b in boxes][:8]
    return out


BODY_SIDE = 320  # the HOG detector runs on a copy this size on its long side
BODY_SURE = 1.0  # SVM margin above which a detection counts (0.5 lets pillars and trees through)
BODY_TALL = 0.4  # ... and only a person at least this tall (fraction of the picture) is worth saying


@functools.cache
def _hog():
    import cv2

    hog = cv2.HOGDescriptor()
    hog.setSVMDetector(cv2.HOGDescriptor_getDefaultPeopleDetector())
    return hog


def detect_bodies(image: Image.Image) -> dict[str, Any]:
    """Standing people big enough to be a subject: {"bodies": n, "bodies_boxes": [(x, y, w, h) fractions]}."""
    small = image.copy()
    small.thumbnail((BODY_SIDE, BODY_SIDE))
    if min(small.size) < 128:  # smaller than the detector's 64×128 window at any scale
        return {"bodies": 0, "bodies_boxes": []}
    boxes, weights = _hog().detectMultiScale(np.asarray(small), winStride=(8, 8), padding=(8, 8), scale=1.05)
    w, h = small.size
    kept = [[round(float(b[0]) / w, 3), round(float(b[1]) / h, 3), round(float(b[2]) / w, 3), round(float(b[3]) / h, 3)]
            for b, score in zip(boxes, np.ravel(weights), strict=True) if score >= BODY_SURE and b[3] / h >= BODY_TALL]
    return {"bodies": len(kept), "bodies_boxes": kept[:8]}


def describe_facts(facts: dict[str, Any]) -> str:
    """The facts as plain words: 'Mostly brown, beige and white; soft, warm light; one cat face.'"""
    names = [c["name"] for c in facts.get("colours", [])]
    parts = []
    if names:
        parts.append("mostly " + (", ".join(names[:-1]) + " and " + names[-1] if len(names) > 1 else names[0]))
    if facts.get("light"):
        parts.append(facts["light"])
    for key, one, many in (("faces", "a person's face", "people's faces"), ("cat_faces", "a cat's face", "cats' faces")):
        n = facts.get(key, 0)
        if n == 1:
            parts.append(one)
        elif n > 1:
            parts.append(f"{n} {many}")
    return "; ".join(parts)
