"""Load and validate every image a user sends (a book's photo, a picture to edit, an inpaint mask,
from the CLI or an HTTP upload): one home for the limits and their messages.

Everything an image can throw at us ends here either handled (EXIF rotation, animated GIF,
CMYK, 16-bit, palette, alpha) or as a `BadInputError` / `TooLargeError` that names the file
and says what to do. Decoding never starts before the header's size has been checked, so a
decompression bomb costs nothing, and at most `MAX_DECODES` large images decode at once, so a
burst of uploads cannot hold gigabytes.
"""

from __future__ import annotations

import io
import re
import threading
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image, ImageFile, ImageOps, UnidentifiedImageError

from taleloom.errors import BadInputError, TooLargeError

MAX_BYTES = 15 * 1024 * 1024  # same default as Settings.max_upload_bytes
MAX_PIXELS = 40_000_000  # same default as Settings.max_pixels
MAX_SIDE_IN = 20_000  # longest side we accept at all
MIN_SIDE = 16  # smaller than this is no photo
MAX_ASPECT = 10.0  # a 1×2000 strip is no photo either
KEEP_SIDE = 2048  # the normalised photo kept in the book is at most this on its long side
FORMATS = ("JPEG", "PNG", "WEBP", "GIF", "BMP", "TIFF")
FORMAT_HINT = "use a JPEG, PNG, WebP, GIF, BMP or TIFF photo"
MASK_HINT = "send a PNG mask whose transparent (or white) pixels mark what to redraw"
MAX_DECODES = 2  # images of more than SMALL pixels decoding at once, in the whole process
SMALL = 4_000_000  # pixels (12 MB as RGB) an image may have and decode without waiting its turn
_decodes = threading.BoundedSemaphore(MAX_DECODES)


@dataclass
class Photo:
    image: Image.Image  # RGB, upright, at most KEEP_SIDE on its long side
    source_format: str  # what the file was, e.g. "JPEG"
    source_size: tuple[int, int]  # (width, height) as stored in the file
    notes: list[str] = field(default_factory=list)  # what was done to it, for the manifest and the user


def load_photo(source: bytes | str | Path, name: str | None = None, *, max_bytes: int = MAX_BYTES,
               max_pixels: int = MAX_PIXELS, keep_side: int = KEEP_SIDE) -> Photo:
    """Read a photo from a path or bytes, check it, and normalise it to an upright RGB image."""
    data, name = _read(source, name or None, max_bytes, "the uploaded photo")
    with _decoding(data, name, max_pixels, FORMAT_HINT) as (img, notes):
        fmt, (w, h) = img.format or "unknown", img.size
        img = _upright(img, notes)
        img = to_rgb(img, notes)
        if max(img.size) > keep_side:
            img.thumbnail((keep_side, keep_side), Image.Resampling.LANCZOS)
            notes.append(f"scaled down from {w}×{h} to {img.width}×{img.height}")
    return Photo(image=img, source_format=fmt, source_size=(w, h), notes=notes)


def load_mask(source: bytes | str | Path, size: tuple[int, int], name: str | None = None, *,
              max_bytes: int = MAX_BYTES, max_pixels: int = MAX_PIXELS) -> Image.Image:
    """An inpaint mask in OpenAI's convention, checked like any photo: transparent pixels mark what to
    redraw; a mask without alpha reads white = redraw. Returns mode L at `size`, 255 = redraw."""
    data, name = _read(source, name or None, max_bytes, "the mask")
    with _decoding(data, name, max_pixels, MASK_HINT) as (m, _notes):
        if m.mode in ("RGBA", "LA", "PA") or (m.mode == "P" and "transparency" in m.info):
            m = m.convert("RGBA").getchannel("A").point(lambda a: 255 if a < 128 else 0)
        else:
            m = to_rgb(m).convert("L").point(lambda v: 255 if v >= 128 else 0)
        return m.resize(size, Image.Resampling.NEAREST)


class _decoding:
    """`with _decoding(data, name, max_pixels, hint) as (img, notes)`: the header read and checked
    (format, pixels, sides), then the first frame decoded strictly, holding a decode slot while the
    caller converts it when the image is large."""

    def __init__(self, data: bytes, name: str, max_pixels: int, hint: str):
        self.data, self.name, self.max_pixels, self.hint = data, name, max_pixels, hint
        self.slot = False

    def __enter__(self) -> tuple[Image.Image, list[str]]:
        img = _open_checked(self.data, self.name, self.max_pixels, self.hint)
        notes: list[str] = []
        if img.width * img.height > SMALL:
            _decodes.acquire()
            self.slot = True
        try:
            if getattr(img, "is_animated", False) and getattr(img, "n_frames", 1) > 1:
                img.seek(0)
                notes.append(f"animated {img.format} with {img.n_frames} frames: used the first frame")
            _decode(img, self.name, self.max_pixels)
        except BaseException:
            self.__exit__()
            raise
        return img, notes

    def __exit__(self, *exc) -> None:
        if self.slot:
            self.slot = False
            _decodes.release()


def _open_checked(data: bytes, name: str, max_pixels: int, hint: str) -> Image.Image:
    """Read the header only, and refuse what we will not decode: unknown formats, too many pixels
    (with the size the header really declares), sides out of range."""
    try:
        img = Image.open(io.BytesIO(data))  # reads the header only
    except UnidentifiedImageError:
        raise BadInputError(f"{name} is not an image Taleloom can read", hint) from None
    except Image.DecompressionBombError as e:
        raise _too_many_pixels(name, _header_size(data), max_pixels, _bomb_pixels(e)) from None
    except Exception as e:  # a header that breaks a format plugin is a bad file, whatever it raises
        raise BadInputError(f"{name} could not be read as an image ({_short(e)})", hint) from None
    fmt = img.format or "unknown"
    if fmt not in FORMATS:
        raise BadInputError(f"{name} is a {fmt} file, which Taleloom does not take", hint)
    _check_size(name, *img.size, max_pixels)
    return img


def _decode(img: Image.Image, name: str, max_pixels: int) -> None:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            _load_strictly(img)
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise _too_many_pixels(name, img.size, max_pixels) from None
    except MemoryError:
        raise TooLargeError(f"{name} needs more memory to decode than this server can give it",
                            "resize the photo (2000 pixels on the long side is plenty)") from None
    except Exception as e:  # truncated, damaged, or a decoder that chokes: the file's fault, never a 500
        raise BadInputError(f"{name} is truncated or damaged ({_short(e)})",
                            "the file did not arrive whole: copy or upload it again, or re-save it") from None


def _short(e: Exception) -> str:
    return (str(e) or type(e).__name__)[:200]


def _header_size(data: bytes) -> tuple[int, int] | None:
    """The width and height a header declares, read by the format plugins directly: `Image.open` hides
    them behind its decompression-bomb error, and the user should hear the size of the file they sent."""
    Image.init()
    for fmt in Image.ID:
        factory, accept = Image.OPEN[fmt]
        try:
            if accept and not accept(data[:16]):
                continue
            return factory(io.BytesIO(data), "").size
        except Exception:
            continue
    return None


def _load_strictly(img: Image.Image) -> None:
    """Decode the pixels, failing on a truncated file.

    WeasyPrint sets PIL's process-wide `LOAD_TRUNCATED_IMAGES = True` when it is imported,
    which would let a half-uploaded photo through with a grey bottom; we turn it off for
    our own decode and put back whatever was there.
    """
    before = ImageFile.LOAD_TRUNCATED_IMAGES
    ImageFile.LOAD_TRUNCATED_IMAGES = False
    try:
        img.load()
    finally:
        ImageFile.LOAD_TRUNCATED_IMAGES = before


def to_rgb(img: Image.Image, notes: list[str] | None = None) -> Image.Image:
    """Any PIL mode → 8-bit RGB; transparency is laid on white (a page is white)."""
    notes = notes if notes is not None else []
    mode = img.mode
    if mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        arr = np.asarray(img, dtype=np.float64)
        top = 65535.0 if mode.startswith("I;16") or arr.max(initial=0) > 255 else 255.0
        if mode == "F" and arr.max(initial=0) <= 1.0:
            top = 1.0
        img = Image.fromarray(np.clip(arr / top * 255.0 + 0.5, 0, 255).astype(np.uint8), "L")
        notes.append(f"{'16-bit' if top == 65535.0 else mode} image reduced to 8 bits")
    if mode == "P" and "transparency" in img.info:
        img = img.convert("RGBA")
    elif mode == "P":
        img = img.convert("RGB")
    if img.mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        rgba = img.convert("RGBA")
        if rgba.getextrema()[3][0] < 255:
            notes.append("transparent areas filled with white")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        img = Image.alpha_composite(white, rgba)
    if mode == "CMYK":
        notes.append("CMYK image converted to RGB")
    if img.mode != "RGB":
        img = img.convert("RGB")
    return img


def _read(source: bytes | str | Path, name: str | None, max_bytes: int, default_name: str) -> tuple[bytes, str]:
    if isinstance(source, bytes | bytearray | memoryview):
        data, name = bytes(source), name or default_name
    else:
        path = Path(source)
        name = name or str(path)
        if not path.exists():
            raise BadInputError(f"{name} does not exist", "check the path of the photo")
        if not path.is_file():
            raise BadInputError(f"{name} is not a file", "give the path of a photo file")
        size = path.stat().st_size
        if size > max_bytes:
            raise _too_big(name, size, max_bytes)
        data = path.read_bytes()
    if not data:
        raise BadInputError(f"{name} is empty (0 bytes)", FORMAT_HINT)
    if len(data) > max_bytes:
        raise _too_big(name, len(data), max_bytes)
    return data, name


def _check_size(name: str, w: int, h: int, max_pixels: int) -> None:
    if w * h > max_pixels:
        raise _too_many_pixels(name, (w, h), max_pixels)
    if max(w, h) > MAX_SIDE_IN:
        raise TooLargeError(f"{name} is {w}×{h} pixels; the longest side may be at most {MAX_SIDE_IN}",
                            "resize the photo (2000 pixels on the long side is plenty)")
    if min(w, h) < MIN_SIDE:
        raise BadInputError(f"{name} is only {w}×{h} pixels", f"use a photo at least {MIN_SIDE}×{MIN_SIDE}")
    if max(w, h) / min(w, h) > MAX_ASPECT:
        raise BadInputError(f"{name} is {w}×{h} pixels, a strip rather than a photo",
                            f"crop it to an aspect ratio under {MAX_ASPECT:g}:1")


def _too_big(name: str, size: int, max_bytes: int) -> TooLargeError:
    return TooLargeError(f"{name} is {size / 1e6:.1f} MB; the limit is {max_bytes / 1e6:.1f} MB",
                         "resize or re-compress the photo (a JPEG of 2000 pixels is about 1 MB)")


def _bomb_pixels(e: Exception) -> int | None:
    """Pillow's bomb error says 'Image size (N pixels) exceeds limit ...': the size the header declares."""
    m = re.search(r"\((\d+) pixels\)", str(e))
    return int(m.group(1)) if m else None


def _too_many_pixels(name: str, size: tuple[int, int] | None, max_pixels: int,
                     pixels: int | None = None) -> TooLargeError:
    if size:
        dims = f"{size[0]}×{size[1]} = {size[0] * size[1] / 1e6:.0f} million pixels"
    else:
        dims = f"{pixels / 1e6:.0f} million pixels" if pixels else "too large an image"
    return TooLargeError(f"{name} is {dims}; the limit is {max_pixels / 1e6:.0f} million "
                         "(a file this large is often a decompression bomb)",
                         "resize the photo (2000 pixels on the long side is plenty)")


def _upright(img: Image.Image, notes: list[str]) -> Image.Image:
    """Apply the EXIF orientation tag, so the picture stands as the camera saw it."""
    try:
        orientation = img.getexif().get(0x0112, 1)
    except Exception:  # a broken EXIF block is no reason to refuse a photo
        notes.append("unreadable EXIF data ignored")
        return img
    if orientation in (None, 1):
        return img
    try:
        out = ImageOps.exif_transpose(img)
    except Exception:
        notes.append(f"EXIF orientation {orientation} could not be applied")
        return img
    notes.append(f"rotated upright (EXIF orientation {orientation})")
    return out if out is not None else img
