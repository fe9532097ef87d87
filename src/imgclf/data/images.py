"""The one safe image decoder used everywhere: training, prediction, serving, downloads.

Every input becomes the same thing: an RGB ``PIL.Image`` with EXIF orientation applied,
the first frame of an animation, alpha composited on white, CMYK / palette / grayscale /
16-bit converted. The format is named by the file's first bytes (its magic number), and only
that format's Pillow plugin ever parses the data: untrusted bytes never reach the decoders of
other formats (PSD, EPS, FITS, ...), where Pillow's recent CVEs live. Images with more pixels
than ``images.max_pixels`` (a limit sized for a classifier, which sees a few hundred pixels a
side) are refused after reading the header, before any pixel is decoded. With ``draft_size``
a large image is reduced while decoding (JPEG: DCT scaling) or right after it, before any
conversion copies it, so a full-size RGB array is never made where the format allows.

A path is read only when it names a regular file, and at most the bytes an image within the
pixel limit can take (:func:`read_bytes`): a FIFO, a device or a link to one is refused at once.
A JPEG is decoded only when libjpeg-turbo meets no damage in it (:func:`check_jpeg`): a file cut
short, even with an end marker appended, or whose header claims more rows than its data holds, is
refused rather than padded with grey.

:func:`read_header` is the check on its own (format, size, pixel limit, EXIF orientation),
for a decoder of our own that wants the same guarantees before it decodes.
"""
from __future__ import annotations

import errno
import io
import os
import re
import struct
from dataclasses import dataclass
from typing import BinaryIO

import numpy as np
from PIL import Image, ImageFile

from ..config.settings import ImagesConfig
from ..util.errors import ImageError, ImageTooLarge, UnsupportedFormat
from ..util.files import NotRegularFile, read_regular

__all__ = ["ALLOWED_FORMATS", "IMAGE_EXTENSIONS", "MAX_PIXELS", "ImageError", "ImageHeader", "ImageTooLarge",
           "UnsupportedFormat", "check_jpeg", "configure", "decode_image", "is_image_file", "max_file_bytes", "pixel_limit",
           "read_bytes", "read_header", "safe_thumbnail", "sniff_format"]

#: File extensions a dataset may hold (compared lower-case).
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff")
#: Pillow decoders we trust; recent Pillow CVEs live in the others (PSD, EPS, FITS, ...).
ALLOWED_FORMATS = ("JPEG", "PNG", "BMP", "GIF", "WEBP", "TIFF")
#: Default pixel limit (``images.max_pixels``): 40 M pixels, e.g. 8000 x 5000.
MAX_PIXELS = ImagesConfig().max_pixels

# Truncated files must be errors, never silently grey-padded images.
ImageFile.LOAD_TRUNCATED_IMAGES = False
# The largest file an image within the pixel limit needs: 8 bytes a pixel (16-bit RGBA stored raw)
# plus room for metadata (EXIF, ICC profiles, thumbnails, the frames of an animation).
_BYTES_PER_PIXEL = 8
_METADATA_BYTES = 64 << 20
# libjpeg warnings that leave the pixels whole: stray bytes before the end marker (some cameras write them),
# and metadata or headers that bend the standard; the others mean damaged image data.
_HARMLESS_JPEG_WARNINGS = re.compile(
    r"extraneous bytes before marker 0xd9|unknown JFIF revision|thumbnail image size does not match|bad ICC marker"
    r"|Unknown Adobe color transform|Invalid SOS parameters for sequential", re.IGNORECASE)

_limit = MAX_PIXELS  # the process's limit, set by configure()

# Magic numbers of the accepted formats: (offset, bytes) pairs that must all match.
_ALLOWED_MAGIC: tuple[tuple[str, tuple[tuple[int, bytes], ...]], ...] = (
    ("JPEG", ((0, b"\xff\xd8\xff"),)),
    ("PNG", ((0, b"\x89PNG\r\n\x1a\n"),)),
    ("GIF", ((0, b"GIF87a"),)),
    ("GIF", ((0, b"GIF89a"),)),
    ("BMP", ((0, b"BM"),)),
    ("WEBP", ((0, b"RIFF"), (8, b"WEBP"))),
    ("TIFF", ((0, b"II*\x00"),)),
    ("TIFF", ((0, b"MM\x00*"),)),
    ("TIFF", ((0, b"II+\x00"),)),  # BigTIFF
    ("TIFF", ((0, b"MM\x00+"),)),
)
# Magic numbers of formats we refuse, only to name them in the message (no plugin runs).
_REFUSED_MAGIC: tuple[tuple[str, tuple[tuple[int, bytes], ...]], ...] = (
    ("PSD", ((0, b"8BPS"),)), ("PDF", ((0, b"%PDF"),)), ("EPS", ((0, b"%!PS"),)), ("EPS", ((0, b"\xc5\xd0\xd3\xc6"),)),
    ("FITS", ((0, b"SIMPLE  ="),)),
    ("JPEG2000", ((0, b"\x00\x00\x00\x0cjP  "),)), ("JPEG2000", ((0, b"\xffO\xffQ"),)),
    ("HEIF", ((4, b"ftypheic"),)), ("HEIF", ((4, b"ftypmif1"),)), ("AVIF", ((4, b"ftypavif"),)),
    ("QOI", ((0, b"qoif"),)), ("DDS", ((0, b"DDS "),)), ("ICNS", ((0, b"icns"),)), ("SGI", ((0, b"\x01\xda"),)),
    ("PPM", ((0, b"P1"),)), ("PPM", ((0, b"P2"),)), ("PPM", ((0, b"P3"),)), ("PPM", ((0, b"P4"),)),
    ("PPM", ((0, b"P5"),)), ("PPM", ((0, b"P6"),)), ("PPM", ((0, b"P7"),)), ("PPM", ((0, b"Pf"),)), ("PPM", ((0, b"PF"),)),
    ("PCX", ((0, b"\x0a\x05\x01"),)), ("PCX", ((0, b"\x0a\x00\x01"),)), ("PCX", ((0, b"\x0a\x02\x01"),)),
    ("PCX", ((0, b"\x0a\x03\x01"),)), ("XBM", ((0, b"#define"),)), ("XPM", ((0, b"/* XPM */"),)),
)
# ICO and CUR: a reserved 0, the type (1 or 2), then an image count of at least 1 (a TGA header without a
# colour map starts 00 00 02 00 too, but its next two bytes are 0).
_ICON_TYPES = {b"\x00\x00\x01\x00": "ICO", b"\x00\x00\x02\x00": "CUR"}
_TGA_FOOTER = b"TRUEVISION-XFILE.\x00"
_TGA_TYPES = (1, 2, 3, 9, 10, 11, 32, 33)  # colour-mapped, true-colour, grey; raw or run-length encoded
_TGA_DEPTHS = (1, 8, 15, 16, 24, 32)
_TRANSPOSE = {2: Image.Transpose.FLIP_LEFT_RIGHT, 3: Image.Transpose.ROTATE_180, 4: Image.Transpose.FLIP_TOP_BOTTOM,
              5: Image.Transpose.TRANSPOSE, 6: Image.Transpose.ROTATE_270, 7: Image.Transpose.TRANSVERSE,
              8: Image.Transpose.ROTATE_90}
_REDUCIBLE = ("RGB", "RGBA", "L", "LA", "CMYK")  # modes Image.reduce takes


def configure(cfg: ImagesConfig) -> None:
    """Make ``cfg.max_pixels`` the limit of every decode in this process that does not pass its own."""
    global _limit
    if cfg.max_pixels < 1:
        raise ValueError(f"images.max_pixels must be >= 1; got {cfg.max_pixels}")
    _limit = int(cfg.max_pixels)


def pixel_limit() -> int:
    """The pixel limit decodes use when they pass none (``images.max_pixels``)."""
    return _limit


def is_image_file(path: str | os.PathLike) -> bool:
    """True when the file name has an accepted image extension (any letter case)."""
    return str(path).lower().endswith(IMAGE_EXTENSIONS)


def _matches(head: bytes, rules: tuple[tuple[int, bytes], ...]) -> bool:
    return all(head[off:off + len(magic)] == magic for off, magic in rules)


def sniff_format(head: bytes) -> str | None:
    """The accepted format whose magic number ``head`` (a file's first 16 bytes or more) starts with, else None."""
    return next((fmt for fmt, rules in _ALLOWED_MAGIC if _matches(head, rules)), None)


def _refused_format(fp: BinaryIO, head: bytes) -> str | None:
    """The name of a format we refuse that ``head`` starts like, only to name it in the message (no plugin runs)."""
    if _has_tga_footer(fp):
        return "TGA"
    name = next((fmt for fmt, rules in _REFUSED_MAGIC if _matches(head, rules)), None)
    if name is None and head[:4] in _ICON_TYPES and head[4:6] != b"\x00\x00":
        name = _ICON_TYPES[head[:4]]
    if name is None and _looks_like_tga(head):
        name = "TGA"
    return name


def _has_tga_footer(fp: BinaryIO) -> bool:
    try:
        fp.seek(-len(_TGA_FOOTER), os.SEEK_END)
        return fp.read(len(_TGA_FOOTER)) == _TGA_FOOTER
    except (OSError, ValueError):
        return False


def _looks_like_tga(head: bytes) -> bool:
    """A TGA 1.0 header (TGA has no magic number): colour-map flag, image type, sizes and depth all valid."""
    if len(head) < 18:
        return False
    width, height = struct.unpack_from("<HH", head, 12)
    return head[1] in (0, 1) and head[2] in _TGA_TYPES and head[16] in _TGA_DEPTHS and width > 0 and height > 0


@dataclass(frozen=True)
class ImageHeader:
    """What an image file's header says: ``format`` (one of ALLOWED_FORMATS), stored ``width`` x ``height``,
    EXIF ``orientation`` (1-8; 5-8 swap the displayed width and height)."""

    format: str
    width: int
    height: int
    orientation: int = 1

    @property
    def pixels(self) -> int:
        return self.width * self.height

    @property
    def display_size(self) -> tuple[int, int]:
        """(width, height) once EXIF orientation is applied."""
        return (self.height, self.width) if self.orientation in (5, 6, 7, 8) else (self.width, self.height)


def _bomb_message(e: Exception, max_pixels: int) -> str:
    m = re.search(r"\((\d+) pixels\)", str(e))
    got = f"{int(m.group(1)):,} pixels" if m else "its size"
    limit = min(max_pixels, 2 * (Image.MAX_IMAGE_PIXELS or max_pixels))
    return (f"{got} exceeds the limit of {limit:,} pixels (images.max_pixels); "
            "a classifier needs far fewer: downscale the image")


def _open(fp: BinaryIO, max_pixels: int) -> Image.Image:
    head = fp.read(32)
    fp.seek(0)
    fmt = sniff_format(head)
    if fmt is None:
        refused = _refused_format(fp, head)
        fp.seek(0)
        if refused:
            raise UnsupportedFormat(
                "unsupported_format", f"{refused} images are not accepted; use one of {', '.join(ALLOWED_FORMATS)}"
            ) from None
        raise ImageError("not_an_image", "the data is not a recognisable image "
                                         f"(expected a {', '.join(ALLOWED_FORMATS)} file)") from None
    try:
        img = Image.open(fp, formats=(fmt,))  # only this format's plugin parses the bytes
    except Image.DecompressionBombError as e:
        raise ImageTooLarge("too_large", _bomb_message(e, max_pixels)) from None
    except Image.UnidentifiedImageError:
        raise ImageError("corrupt", f"the data starts like a {fmt} file but its header is not valid") from None
    except (OSError, SyntaxError, ValueError, EOFError, IndexError, struct.error) as e:  # cut off inside the header
        msg = str(e) or type(e).__name__
        raise ImageError("truncated" if "truncated" in msg.lower() else "corrupt", msg) from None
    w, h = img.size
    if w <= 0 or h <= 0:
        raise ImageError("corrupt", f"invalid size {w}x{h}")
    if w * h > max_pixels:
        raise ImageTooLarge("too_large", f"{w}x{h} = {w * h:,} pixels exceeds the limit of {max_pixels:,} pixels "
                                         "(images.max_pixels); a classifier needs far fewer: downscale the image")
    return img


def _orientation(img: Image.Image, loaded: bool) -> int:
    if img.format == "PNG" and "exif" not in img.info and not loaded:
        return 1  # PNG's getexif() would decode every pixel to look for an eXIf chunk after the image data
    try:
        value = int(img.getexif().get(0x0112, 1))
    except (SyntaxError, ValueError, TypeError, KeyError, IndexError, struct.error):  # damaged EXIF: the pixels are still usable
        return 1
    return value if value in _TRANSPOSE else 1


def max_file_bytes(max_pixels: int | None = None) -> int:
    """The largest image file read (bytes): what an image of ``max_pixels`` (default ``images.max_pixels``)
    can take in an accepted format, metadata included."""
    return _BYTES_PER_PIXEL * (_limit if max_pixels is None else max_pixels) + _METADATA_BYTES


def read_bytes(source: bytes | str | os.PathLike, *, max_pixels: int | None = None) -> bytes:
    """The bytes of an image given as bytes or a path; ImageError when there are none to use.

    A path is read only when it is a regular file (``not_a_file`` for a FIFO, a device, a folder, a
    link to one), of at most :func:`max_file_bytes` (``too_large``); ``unreadable`` when it cannot
    be read (missing, a link loop, no permission), ``empty`` for zero bytes."""
    if isinstance(source, (bytes, bytearray, memoryview)):
        data = bytes(source)
    else:
        try:
            data = read_regular(source, max_file_bytes(max_pixels))
        except NotRegularFile as e:
            raise ImageError("not_a_file", f"{os.fspath(source)} is {e.kind}, not an image file") from None
        except OSError as e:
            if e.errno == errno.EFBIG:
                raise ImageTooLarge("too_large", f"the file holds {e.strerror}; no image within images.max_pixels "
                                                 "needs that much: downscale it or raise images.max_pixels") from None
            raise ImageError("unreadable", f"{e.strerror or e}") from None
    if not data:
        raise ImageError("empty", "zero bytes")
    return data


def _source_fp(source: bytes | str | os.PathLike | BinaryIO, max_pixels: int | None = None) -> io.BytesIO:
    if isinstance(source, (bytes, bytearray, memoryview, str, os.PathLike)):
        return io.BytesIO(read_bytes(source, max_pixels=max_pixels))
    return io.BytesIO(source.read())


def check_jpeg(data: bytes) -> None:
    """ImageError unless libjpeg-turbo decodes the JPEG ``data`` without meeting damage.

    libjpeg only warns when the entropy-coded data ends early or is corrupt and pads the rest of the
    image grey; Pillow ignores its warnings. Here every warning but a harmless one refuses the file:
    a decode at 1/8 scale with simplejpeg's strict mode reads every coefficient at a fraction of a
    full decode's cost. Strict mode stops at the first warning, so a file whose header draws a
    harmless one is accepted without its data being checked (as Pillow alone would)."""
    import simplejpeg

    try:
        colorspace = simplejpeg.decode_jpeg_header(data)[2]
        simplejpeg.decode_jpeg(data, colorspace="CMYK" if colorspace in ("CMYK", "YCCK") else "GRAY",
                               min_height=1, min_width=1, strict=True)
    except ValueError as e:
        msg = str(e) or type(e).__name__
        if _HARMLESS_JPEG_WARNINGS.search(msg):
            return
        low = msg.lower()
        reason = "truncated" if "premature end" in low or "truncated" in low else "corrupt"
        raise ImageError(reason, f"damaged JPEG data ({msg}); re-export or remove the file") from None


def read_header(source: bytes | str | os.PathLike | BinaryIO, *, max_pixels: int | None = None) -> ImageHeader:
    """Check an image without decoding its pixels: format by magic bytes (only that format's
    Pillow plugin reads the header), size against the pixel limit, EXIF orientation.

    Raises :class:`ImageError` (``UnsupportedFormat``, ``ImageTooLarge``, ...) like :func:`decode_image`.
    """
    img = _open(_source_fp(source, max_pixels), _limit if max_pixels is None else max_pixels)
    try:
        return ImageHeader(img.format or "", img.width, img.height, _orientation(img, loaded=False))
    finally:
        img.close()


def _reduce(img: Image.Image, draft_size: int | None) -> Image.Image:
    """``img`` shrunk by a whole factor (box filter) that keeps both sides >= ``draft_size``: what JPEG's draft
    does while decoding, for the other formats right after it, before a conversion copies the full size."""
    if not draft_size or img.mode not in _REDUCIBLE:
        return img
    factor = min(img.size) // draft_size
    return img.reduce(factor) if factor >= 2 else img


def _to_rgb(img: Image.Image, orientation: int, draft_size: int | None) -> Image.Image:
    img = _reduce(img, draft_size)
    if orientation in _TRANSPOSE:
        img = img.transpose(_TRANSPOSE[orientation])
    mode = img.mode
    if mode in ("I;16", "I;16B", "I;16L", "I;16N", "I"):
        arr = np.asarray(img, dtype=np.float64)
        hi = 65535.0 if mode.startswith("I;16") or arr.max() > 255 else 255.0
        arr = np.clip(arr / hi * 255.0 + 0.5, 0, 255).astype(np.uint8)
        return _reduce(Image.fromarray(arr, "L").convert("RGB"), draft_size)
    if mode == "F":
        arr = np.asarray(img, dtype=np.float64)
        lo, hi = float(arr.min()), float(arr.max())
        arr = (arr - lo) / (hi - lo if hi > lo else 1.0) * 255.0
        return _reduce(Image.fromarray(arr.astype(np.uint8), "L").convert("RGB"), draft_size)
    if mode == "P":
        img = _reduce(img.convert("RGBA" if "transparency" in img.info else "RGB"), draft_size)
    elif mode in ("LA", "La", "PA"):
        img = img.convert("RGBA")
    if img.mode in ("RGBA", "RGBa"):
        background = Image.new("RGB", img.size, (255, 255, 255))
        background.paste(img, mask=img.getchannel("A"))
        return background
    if img.mode != "RGB":
        img = _reduce(img.convert("RGB"), draft_size)
    return img


def decode_image(
    source: bytes | str | os.PathLike | BinaryIO,
    *,
    draft_size: int | None = None,
    max_pixels: int | None = None,
) -> Image.Image:
    """Decode ``source`` (bytes, a path or a binary file) into an RGB image.

    ``draft_size`` lets decoding downscale (JPEG by 1/2, 1/4 or 1/8 while decoding, other formats
    by a whole factor right after) while keeping both sides at least ``draft_size`` pixels: a
    large photo decodes several times faster and in a fraction of the memory. ``max_pixels``
    defaults to ``images.max_pixels`` (see :func:`configure`).
    Raises :class:`ImageError` (or a subclass) with a ``reason`` for anything unusable.
    """
    limit = _limit if max_pixels is None else max_pixels
    fp = _source_fp(source, limit)
    img = _open(fp, limit)
    try:
        if img.format == "JPEG":
            check_jpeg(fp.getvalue())
        if draft_size and img.format == "JPEG":
            img.draft("RGB", (draft_size, draft_size))
        img.load()
        if getattr(img, "is_animated", False):
            img.seek(0)
        return _to_rgb(img, _orientation(img, loaded=True), draft_size)
    except ImageError:
        raise
    except Image.DecompressionBombError as e:
        raise ImageTooLarge("too_large", _bomb_message(e, limit)) from None
    except (OSError, SyntaxError, ValueError, EOFError, IndexError, TypeError) as e:
        msg = str(e) or type(e).__name__
        reason = "truncated" if "truncated" in msg.lower() else "corrupt"
        raise ImageError(reason, msg) from None


def safe_thumbnail(source: bytes | str | os.PathLike, size: int = 256) -> Image.Image:
    """An RGB thumbnail no larger than ``size`` on either side, decoded safely."""
    img = decode_image(source, draft_size=size)
    img.thumbnail((size, size))
    return img
