"""The one safe decoder against the hazards of untrusted image input: empty, truncated and corrupt files,
decompression bombs, formats outside the allowlist, every colour mode, EXIF rotation, animations."""
import io
import struct
import zlib

import numpy as np
import pytest
from PIL import Image

from imgclf.data.images import ImageError, ImageTooLarge, UnsupportedFormat, decode_image, is_image_file
from imgclf.util.errors import ImgclfError


def _jpeg(img: Image.Image, **kw) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format="JPEG", quality=92, **kw)
    return buf.getvalue()


def _png(img: Image.Image) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return buf.getvalue()


@pytest.fixture
def photo() -> Image.Image:
    rng = np.random.default_rng(0)
    arr = np.zeros((60, 80, 3), np.uint8)
    arr[:, :40] = (200, 30, 30)
    arr[:, 40:] = (20, 40, 220)
    arr[:20] = (250, 250, 0)
    return Image.fromarray(np.clip(arr + rng.integers(0, 5, arr.shape), 0, 255).astype(np.uint8))


@pytest.mark.parametrize("data, reason", [(b"", "empty"), (b"hello, I am text" * 10, "not_an_image")])
def test_empty_and_non_image_bytes(data, reason):
    with pytest.raises(ImageError) as e:
        decode_image(data)
    assert e.value.reason == reason and isinstance(e.value, ImgclfError)


def test_truncated_jpeg_is_an_error_not_a_grey_image(photo):
    data = _jpeg(photo)
    with pytest.raises(ImageError) as e:
        decode_image(data[: len(data) // 2])
    assert e.value.reason in ("truncated", "corrupt")


def test_corrupt_png_checksum(photo):
    data = bytearray(_png(photo))
    data[60:80] = b"\x00" * 20  # inside IDAT
    with pytest.raises(ImageError):
        decode_image(bytes(data))


def test_missing_file_is_an_error(tmp_path):
    with pytest.raises(ImageError) as e:
        decode_image(tmp_path / "nope.jpg")
    assert e.value.reason == "unreadable"


def test_decompression_bomb_refused_before_decoding():
    # a valid PNG header claiming 20000 x 20000 pixels, with almost no data
    def chunk(kind, payload):
        return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload))

    png = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", 20000, 20000, 8, 2, 0, 0, 0))
    png += chunk(b"IDAT", zlib.compress(b"\x00" * 100)) + chunk(b"IEND", b"")
    with pytest.raises(ImageTooLarge) as e:
        decode_image(png)
    assert e.value.reason == "too_large"


def test_bomb_limit_is_configurable(photo):
    with pytest.raises(ImageTooLarge):
        decode_image(_png(photo), max_pixels=100)


@pytest.mark.parametrize("fmt", ["TGA", "PCX", "ICO", "PPM"])
def test_formats_outside_the_allowlist_are_refused(photo, fmt):
    buf = io.BytesIO()
    photo.save(buf, format=fmt)
    with pytest.raises(UnsupportedFormat) as e:
        decode_image(buf.getvalue())
    assert e.value.reason == "unsupported_format" and "not accepted" in str(e.value)


def test_cmyk_jpeg_becomes_rgb(photo):
    out = decode_image(_jpeg(photo.convert("CMYK")))
    assert out.mode == "RGB" and out.size == photo.size
    assert np.abs(np.asarray(out, float) - np.asarray(photo, float)).mean() < 12


def test_16bit_png_becomes_rgb():
    arr = (np.linspace(0, 65535, 64 * 32).reshape(32, 64)).astype(np.uint16)
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format="PNG")
    out = decode_image(buf.getvalue())
    a = np.asarray(out)
    assert out.mode == "RGB" and a.shape == (32, 64, 3)
    assert a[0, 0, 0] == 0 and a[-1, -1, 0] == 255  # full range kept, not clipped to 255/65535


def test_palette_with_transparency_and_rgba_composite_on_white():
    rgba = Image.new("RGBA", (10, 10), (255, 0, 0, 0))
    rgba.paste((0, 0, 255, 255), (0, 0, 5, 10))
    out = np.asarray(decode_image(_png(rgba)))
    assert tuple(out[5, 2]) == (0, 0, 255) and tuple(out[5, 8]) == (255, 255, 255)
    pal = rgba.convert("P")
    pal.info["transparency"] = pal.getpixel((8, 5))
    out_p = decode_image(_png(pal))
    assert out_p.mode == "RGB"


def test_grayscale_becomes_rgb(photo):
    out = decode_image(_png(photo.convert("L")))
    a = np.asarray(out)
    assert out.mode == "RGB" and (a[..., 0] == a[..., 1]).all()


def test_exif_rotated_file_decodes_like_its_upright_copy(photo):
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 CW to display": stored pixels are the upright image turned CCW
    stored = photo.transpose(Image.Transpose.ROTATE_90)
    upright = decode_image(_png(photo))
    rotated = decode_image(_jpeg(stored, exif=exif.tobytes()))
    assert rotated.size == upright.size
    assert np.abs(np.asarray(rotated, float) - np.asarray(upright, float)).mean() < 6


def test_animated_gif_uses_first_frame():
    frames = [Image.new("RGB", (16, 16), c) for c in ((255, 0, 0), (0, 255, 0), (0, 0, 255))]
    buf = io.BytesIO()
    frames[0].save(buf, format="GIF", save_all=True, append_images=frames[1:], duration=50, loop=0)
    out = np.asarray(decode_image(buf.getvalue()))
    assert out.shape == (16, 16, 3) and out[8, 8, 0] > 200 and out[8, 8, 1] < 50


def test_draft_downscales_large_jpegs_but_keeps_enough_pixels():
    big = Image.new("RGB", (2000, 1500), (10, 200, 30))
    out = decode_image(_jpeg(big), draft_size=256)
    assert min(out.size) >= 256 and out.size[0] <= 1000


@pytest.mark.parametrize("name, ok", [("a.JPG", True), ("b c.Jpeg", True), ("x.webp", True), ("y.TIFF", True),
                                      ("z.gif", True), ("notes.txt", False), ("img.psd", False)])
def test_accepted_extensions_in_any_case(name, ok):
    assert is_image_file(name) is ok
