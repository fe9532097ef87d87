"""The decoder against the hazards the attacker's probe found: formats named by magic bytes only
(no other Pillow plugin parses untrusted bytes), a pixel limit sized for a classifier, imgclf's
own limit in the message, large images reduced before they are converted."""
from __future__ import annotations

import io
import struct
import zlib

import numpy as np
import pytest
from PIL import Image

import imgclf.data.images as images
from imgclf.config.settings import ImagesConfig
from imgclf.data.images import ImageError, ImageTooLarge, UnsupportedFormat, decode_image, read_header


def _png_header(width: int, height: int) -> bytes:
    """A valid PNG that declares width x height pixels and holds almost nothing (11 KB decodes to GBs)."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\x00" * 64)) + chunk(b"IEND", b"")


def _encode(img: Image.Image, fmt: str, **kw) -> bytes:
    buf = io.BytesIO()
    img.save(buf, fmt, **kw)
    return buf.getvalue()


@pytest.fixture
def plugin_calls(monkeypatch) -> list[str]:
    """Every Pillow format plugin whose accept() or open() runs, recorded by name."""
    Image.init()
    calls: list[str] = []
    for name, (factory, accept) in list(Image.OPEN.items()):
        def rec_factory(fp, filename, _f=factory, _n=name):
            calls.append(_n)
            return _f(fp, filename)

        def rec_accept(prefix, _a=accept, _n=name):
            calls.append(_n)
            return _a(prefix)

        monkeypatch.setitem(Image.OPEN, name, (rec_factory, rec_accept if accept else None))
    return calls


REFUSED = {
    "PSD": b"8BPS\x00\x01" + b"\x00" * 6 + struct.pack(">HIIHH", 3, 4, 4, 8, 3) + b"\x00" * 64,
    "EPS": b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 4 4\n" + b"\x00" * 32,
    "PDF": b"%PDF-1.4\n" + b"\x00" * 64,
    "FITS": b"SIMPLE  =                    T" + b" " * 50 + b"\x00" * 32,
}


@pytest.mark.parametrize("fmt", sorted(REFUSED))
def test_format_outside_the_allowlist_is_named_by_magic_bytes_and_no_plugin_parses_it(plugin_calls, fmt):
    with pytest.raises(UnsupportedFormat) as e:
        decode_image(REFUSED[fmt])
    assert fmt in e.value.detail and e.value.reason == "unsupported_format"
    assert plugin_calls == [], f"Pillow plugins ran on {fmt} bytes: {plugin_calls}"


@pytest.mark.parametrize("fmt", ["TGA", "PCX", "ICO", "PPM", "SGI", "DDS", "QOI"])
def test_pillow_written_foreign_formats_reach_no_plugin(plugin_calls, fmt):
    data = _encode(Image.new("RGB", (16, 16), (9, 99, 199)), fmt)
    with pytest.raises(ImageError) as e:
        decode_image(data)
    assert e.value.reason in ("unsupported_format", "not_an_image")
    assert plugin_calls == [], f"Pillow plugins ran on {fmt} bytes: {plugin_calls}"


@pytest.mark.parametrize("fmt", ["JPEG", "PNG", "BMP", "GIF", "WEBP", "TIFF"])
def test_an_accepted_format_runs_its_own_plugin_only(plugin_calls, fmt):
    data = _encode(Image.new("RGB", (16, 12), (9, 99, 199)), fmt)
    assert decode_image(data).size == (16, 12)
    assert set(plugin_calls) == {fmt}, plugin_calls


def test_random_bytes_are_not_an_image_and_reach_no_plugin(plugin_calls):
    with pytest.raises(ImageError) as e:
        decode_image(np.random.default_rng(0).integers(0, 256, 4096, dtype=np.uint8).tobytes())
    assert e.value.reason == "not_an_image" and plugin_calls == []


def test_pixel_limit_sized_for_a_classifier_refuses_a_small_file_that_decodes_huge():
    data = _png_header(9450, 9450)  # 89.3 Mpx: just under Pillow's bomb limit, ~490 MB decoded
    assert len(data) < 200 and images.MAX_PIXELS == ImagesConfig().max_pixels == 40_000_000
    with pytest.raises(ImageTooLarge) as e:
        read_header(data)
    assert "89,302,500 pixels exceeds the limit of 40,000,000" in e.value.detail and "images.max_pixels" in e.value.detail
    with pytest.raises(ImageTooLarge):
        decode_image(data)


def test_bomb_message_quotes_imgclfs_limit_not_pillows():
    with pytest.raises(ImageTooLarge) as e:
        decode_image(_png_header(20000, 20000))  # 400 Mpx: Pillow's own check fires first
    assert "40,000,000" in e.value.detail and "178" not in e.value.detail.replace("400,000,000", "")


def test_images_max_pixels_is_configurable_for_the_process():
    data = _encode(Image.new("RGB", (50, 40)), "PNG")
    try:
        images.configure(ImagesConfig(max_pixels=1999))
        assert images.pixel_limit() == 1999
        with pytest.raises(ImageTooLarge, match="2,000 pixels exceeds the limit of 1,999"):
            decode_image(data)
        assert decode_image(data, max_pixels=2000).size == (50, 40)  # an explicit limit wins
    finally:
        images.configure(ImagesConfig())
    assert decode_image(data).size == (50, 40)


def test_read_header_names_format_size_and_orientation_without_decoding(monkeypatch):
    exif = Image.Exif()
    exif[0x0112] = 6
    data = _encode(Image.new("RGB", (40, 30)), "JPEG", exif=exif.tobytes())
    png = _encode(Image.new("L", (7, 5)), "PNG")
    png_exif = _encode(Image.new("RGB", (7, 5)), "PNG", exif=exif.tobytes())

    def no_decoding(self, *a, **k):
        raise AssertionError("read_header decoded pixels")

    monkeypatch.setattr(Image.Image, "load", no_decoding)
    from PIL import ImageFile
    monkeypatch.setattr(ImageFile.ImageFile, "load", no_decoding)
    h = read_header(data)
    assert (h.format, h.width, h.height, h.orientation, h.display_size, h.pixels) == ("JPEG", 40, 30, 6, (30, 40), 1200)
    assert (read_header(png).format, read_header(png).orientation) == ("PNG", 1)
    assert read_header(png_exif).orientation == 6


def test_large_png_is_reduced_before_it_is_converted_and_matches_a_full_decode():
    rng = np.random.default_rng(0)
    small = rng.integers(0, 256, (60, 90, 3), dtype=np.uint8)
    big = Image.fromarray(small).resize((1800, 1200), Image.Resampling.NEAREST)  # 2.2 Mpx, blocks of 20x20
    data = _encode(big, "PNG")
    out = decode_image(data, draft_size=256)
    assert out.size == (1800 // 4, 1200 // 4), "reduced by the largest whole factor keeping both sides >= 256"
    ref = np.asarray(big.resize(out.size, Image.Resampling.BOX), dtype=float)
    assert np.abs(np.asarray(out, dtype=float) - ref).max() <= 1.0
    assert decode_image(data).size == (1800, 1200), "no draft size: full resolution"


def test_reduced_decode_still_applies_exif_orientation():
    exif = Image.Exif()
    exif[0x0112] = 6
    stored = Image.new("RGB", (1200, 600), (200, 10, 10))
    stored.paste((10, 10, 200), (0, 0, 600, 600))  # left half blue as stored
    out = decode_image(_encode(stored, "PNG", exif=exif.tobytes()), draft_size=128)
    assert out.size == (600 // 4, 1200 // 4)
    top = np.asarray(out)[5, out.size[0] // 2]
    assert top[2] > 150, "rotated 90° clockwise for display: the stored left half is on top"


def test_images_max_pixels_must_be_positive():
    from imgclf.config.settings import load_config
    from imgclf.util.errors import ConfigError

    with pytest.raises(ConfigError, match="images.max_pixels must be an integer >= 1 \\(in pixels\\); got 0"):
        load_config(None, ["images.max_pixels=0"])
    assert load_config(None, ["images.max_pixels=1000000"]).images.max_pixels == 1_000_000
