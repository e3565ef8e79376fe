"""Every bad or unusual photo either loads as an upright RGB image or fails with an error that names the file."""

from __future__ import annotations

import io
import struct
import zlib

import numpy as np
import pytest
from PIL import Image

from taleloom.errors import BadInputError, TooLargeError
from taleloom.imageio import load_photo


def png_bytes(img: Image.Image, **kw) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format="PNG", **kw)
    return buf.getvalue()


def png_header_only(width: int, height: int) -> bytes:
    """A PNG whose IHDR claims width×height, with a tiny (wrong) body: a decompression bomb's header."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b"")


def write(tmp_path, name: str, data: bytes):
    path = tmp_path / name
    path.write_bytes(data)
    return path


def test_plain_jpeg_loads_as_rgb(tmp_path):
    img = Image.new("RGB", (120, 80), (200, 30, 30))
    buf = io.BytesIO()
    img.save(buf, format="JPEG")
    photo = load_photo(write(tmp_path, "ok.jpg", buf.getvalue()))
    assert photo.image.mode == "RGB" and photo.image.size == (120, 80)
    assert photo.source_format == "JPEG" and photo.notes == []


def test_not_an_image_names_the_file(tmp_path):
    path = write(tmp_path, "notes.txt", b"this is a shopping list, not a photo\n" * 10)
    with pytest.raises(BadInputError) as e:
        load_photo(path)
    assert "notes.txt" in str(e.value) and "not an image" in e.value.message and "JPEG" in e.value.hint


def test_missing_and_empty_files(tmp_path):
    with pytest.raises(BadInputError, match="does not exist"):
        load_photo(tmp_path / "nope.jpg")
    with pytest.raises(BadInputError, match="empty"):
        load_photo(write(tmp_path, "empty.png", b""))
    with pytest.raises(BadInputError, match="not a file"):
        load_photo(tmp_path)


def test_truncated_jpeg(tmp_path):
    rng = np.random.default_rng(0)
    buf = io.BytesIO()
    Image.fromarray(rng.integers(0, 255, (200, 200, 3), dtype=np.uint8)).save(buf, format="JPEG")
    data = buf.getvalue()
    with pytest.raises(BadInputError) as e:
        load_photo(write(tmp_path, "cut.jpg", data[: len(data) // 2]))
    assert "cut.jpg" in e.value.message and "truncated" in e.value.message


def test_decompression_bomb_header_is_refused_before_decoding(tmp_path):
    path = write(tmp_path, "bomb.png", png_header_only(60_000, 60_000))
    assert path.stat().st_size < 200
    with pytest.raises(TooLargeError) as e:
        load_photo(path)
    assert "bomb.png" in e.value.message and "million" in e.value.message and e.value.status_code == 413


def test_pillow_bomb_check_also_maps_to_too_large(tmp_path):
    data = png_bytes(Image.new("RGB", (400, 400)))
    with pytest.raises(TooLargeError):
        load_photo(data, "upload.png", max_pixels=10_000)


def test_huge_dimensions_and_strips(tmp_path):
    with pytest.raises(TooLargeError, match="longest side"):
        load_photo(write(tmp_path, "wide.png", png_header_only(25_000, 1_000)))
    with pytest.raises(BadInputError, match="strip"):
        load_photo(png_bytes(Image.new("RGB", (2000, 20))), "strip.png")
    with pytest.raises(BadInputError, match="only 8×8"):
        load_photo(png_bytes(Image.new("RGB", (8, 8))), "tiny.png")


def test_file_over_the_byte_limit(tmp_path):
    noise = np.random.default_rng(1).integers(0, 255, (64, 64, 3), dtype=np.uint8)
    path = write(tmp_path, "big.png", png_bytes(Image.fromarray(noise)))
    with pytest.raises(TooLargeError, match="MB"):
        load_photo(path, max_bytes=100)


def test_unsupported_format(tmp_path):
    buf = io.BytesIO()
    Image.new("RGB", (32, 32)).save(buf, format="PPM")
    with pytest.raises(BadInputError, match="PPM"):
        load_photo(write(tmp_path, "x.ppm", buf.getvalue()))


def test_animated_gif_uses_first_frame(tmp_path):
    frames = [Image.new("RGB", (40, 40), c) for c in ((255, 0, 0), (0, 255, 0), (0, 0, 255))]
    buf = io.BytesIO()
    frames[0].save(buf, format="GIF", save_all=True, append_images=frames[1:], duration=100, loop=0)
    photo = load_photo(write(tmp_path, "anim.gif", buf.getvalue()))
    assert photo.image.mode == "RGB"
    r, g, b = photo.image.getpixel((20, 20))
    assert r > 200 and g < 50 and b < 50
    assert any("first frame" in n and "3 frames" in n for n in photo.notes)


def test_cmyk_jpeg(tmp_path):
    buf = io.BytesIO()
    Image.new("CMYK", (64, 64), (0, 255, 255, 0)).save(buf, format="JPEG")  # red in CMYK
    photo = load_photo(write(tmp_path, "print.jpg", buf.getvalue()))
    r, g, b = photo.image.getpixel((32, 32))
    assert photo.image.mode == "RGB" and r > 200 and g < 60 and b < 60
    assert any("CMYK" in n for n in photo.notes)


def test_16_bit_grayscale_png(tmp_path):
    arr = np.full((50, 50), 40000, dtype=np.uint16)
    photo = load_photo(write(tmp_path, "deep.png", png_bytes(Image.fromarray(arr))))
    assert photo.image.mode == "RGB"
    assert abs(photo.image.getpixel((10, 10))[0] - round(40000 / 65535 * 255)) <= 1
    assert any("16-bit" in n for n in photo.notes)


def test_alpha_is_laid_on_white(tmp_path):
    img = Image.new("RGBA", (40, 40), (0, 0, 0, 0))
    img.paste((0, 0, 255, 255), (0, 0, 20, 40))
    photo = load_photo(write(tmp_path, "cutout.png", png_bytes(img)))
    assert photo.image.getpixel((30, 20)) == (255, 255, 255)
    assert photo.image.getpixel((5, 20)) == (0, 0, 255)
    assert any("white" in n for n in photo.notes)


def test_palette_with_transparency(tmp_path):
    img = Image.new("P", (40, 40), 0)
    img.putpalette([0, 0, 0, 255, 0, 0] + [0] * 762)
    img.paste(1, (0, 0, 20, 40))
    photo = load_photo(write(tmp_path, "pal.png", png_bytes(img, transparency=0)))
    assert photo.image.getpixel((30, 20)) == (255, 255, 255)
    assert photo.image.getpixel((5, 20)) == (255, 0, 0)


def test_exif_rotation_is_applied(tmp_path):
    img = Image.new("RGB", (60, 30), (255, 255, 255))
    img.paste((255, 0, 0), (0, 0, 10, 10))  # a red mark top-left as stored
    exif = Image.Exif()
    exif[0x0112] = 6  # the camera was turned: display rotated 90° clockwise
    buf = io.BytesIO()
    img.save(buf, format="JPEG", exif=exif.tobytes(), quality=95)
    photo = load_photo(write(tmp_path, "phone.jpg", buf.getvalue()))
    assert photo.image.size == (30, 60)
    r, g, b = photo.image.getpixel((25, 4))  # top-left moved to top-right
    assert r > 200 and g < 80
    assert any("EXIF orientation 6" in n for n in photo.notes)


def test_large_photo_is_scaled_down_for_the_book():
    photo = load_photo(png_bytes(Image.new("RGB", (3000, 1500), (9, 9, 9))), "big.png")
    assert photo.image.size == (2048, 1024) and photo.source_size == (3000, 1500)


def test_upload_bytes_name_defaults():
    with pytest.raises(BadInputError, match="the uploaded photo"):
        load_photo(b"GIF89a-not-really")
