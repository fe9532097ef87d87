"""The fast decode path: libjpeg-turbo with DCT scaling for JPEGs, the safe decoder for the rest, one preprocessing."""
import dataclasses
import io

import numpy as np
import pytest
from PIL import Image, ImageOps

from imgclf.data.images import decode_image
from imgclf.features.backbones import create_backbone
from imgclf.features.decode import _fast_jpeg, decode_rgb
from imgclf.features.preprocess import crop_resize_array, load_and_preprocess, preprocess
from imgclf.util.errors import ImageError, ImageTooLarge


def _scene(w: int = 240, h: int = 160) -> Image.Image:
    """An asymmetric picture: which way is up is visible in its pixels."""
    y, x = np.mgrid[0:h, 0:w]
    a = np.stack([x * 255 // w, y * 255 // h, ((x // 20 + y // 20) % 2) * 200], axis=-1).astype(np.uint8)
    a[: h // 4, : w // 4] = (255, 0, 0)  # a red corner, top left
    return Image.fromarray(a)


def _jpeg(img: Image.Image, **kw) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format="JPEG", quality=95, **kw)
    return buf.getvalue()


@pytest.fixture(scope="module")
def spec():
    return create_backbone("efficientnet_lite0", 224, pretrained=False)[1]


def test_jpeg_takes_the_fast_path_and_matches_pillow_at_full_size():
    data = _jpeg(_scene())
    fast = _fast_jpeg(data, 10_000, 10**8)
    assert fast is not None and fast.shape == (160, 240, 3) and fast.dtype == np.uint8
    assert np.abs(fast.astype(int) - np.asarray(decode_image(data)).astype(int)).mean() < 1.0


def test_dct_scaling_keeps_the_shorter_side_at_least_the_size_asked():
    data = _jpeg(_scene(800, 600))
    for side in (256, 300):
        a = decode_rgb(data, side)
        assert min(a.shape[:2]) >= side and a.shape[0] < 600  # smaller than a full decode
    assert decode_rgb(data, 600).shape[:2] == (600, 800)
    assert decode_rgb(data, 256).shape[:2] == (300, 400)  # 4/8 of 800x600 is the smallest k/8 at or above 256


@pytest.mark.parametrize("orientation", range(1, 9))
def test_exif_orientation_turns_the_image_upright_like_pillow(orientation):
    exif = Image.Exif()
    exif[0x0112] = orientation
    data = _jpeg(_scene(), exif=exif.tobytes())
    want = np.asarray(ImageOps.exif_transpose(Image.open(io.BytesIO(data))).convert("RGB")).astype(int)
    got = decode_rgb(data, 10_000).astype(int)
    assert got.shape == want.shape and np.abs(got - want).mean() < 1.0


def test_cmyk_and_other_formats_go_through_the_safe_decoder(spec):
    cmyk = _jpeg(_scene().convert("CMYK"))
    assert _fast_jpeg(cmyk, 256, 10**8) is None
    assert decode_rgb(cmyk, 64).shape[2] == 3
    png = io.BytesIO()
    _scene().save(png, format="PNG")
    np.testing.assert_array_equal(load_and_preprocess(png.getvalue(), spec), preprocess(decode_image(png.getvalue()), spec))


def test_bad_jpegs_are_image_errors_with_reasons():
    data = _jpeg(_scene())
    with pytest.raises(ImageError) as e:
        decode_rgb(data[: len(data) // 3], 64)
    assert e.value.reason in ("truncated", "corrupt")
    with pytest.raises(ImageTooLarge):
        decode_rgb(data, 64, max_pixels=1000)  # refused from the header, before any pixel is decoded
    with pytest.raises(ImageError) as e:
        decode_rgb(b"", 64)
    assert e.value.reason == "empty"


def test_area_and_native_resamplers_agree_on_what_the_crop_shows(spec):
    a = np.asarray(_scene(400, 300))
    area = crop_resize_array(a, dataclasses.replace(spec, interpolation="area"))
    native = crop_resize_array(a, spec)
    assert area.shape == native.shape == (224, 224, 3) and area.dtype == np.uint8
    assert np.abs(area.astype(int) - native.astype(int)).mean() < 6  # the same crop, two filters
    flat = np.full((50, 70, 3), 77, np.uint8)  # enlarging a small image: Pillow bicubic, no ringing on a flat field
    assert (crop_resize_array(flat, dataclasses.replace(spec, interpolation="area")) == 77).all()
    small = np.asarray(_scene(120, 90))  # nothing to average when enlarging: area mode is the native bicubic there
    np.testing.assert_array_equal(crop_resize_array(small, dataclasses.replace(spec, interpolation="area")),
                                  crop_resize_array(small, spec))


def test_fast_resampler_is_cubic_near_the_network_size_and_area_beyond(spec):
    """"fast": a crop that shrinks by at most FAST_CUBIC_MAX is resized by bicubic, a larger shrink by the
    area average (no aliasing of fine patterns), an enlargement by Pillow's bicubic, like "area"."""
    import cv2

    from imgclf.features.preprocess import FAST_CUBIC_MAX, crop_box

    fast, area = dataclasses.replace(spec, interpolation="fast"), dataclasses.replace(spec, interpolation="area")
    near = np.asarray(_scene(300, 282))  # crop side 246.75 for 224: a 1.10x shrink
    left, top, side = crop_box(300, 282, spec)
    assert 1 < side / 224 < FAST_CUBIC_MAX
    box = near[round(top):round(top + side), round(left):round(left + side)]
    cubic = cv2.resize(np.ascontiguousarray(box), (224, 224), interpolation=cv2.INTER_CUBIC)
    np.testing.assert_array_equal(crop_resize_array(near, fast), cubic)
    assert np.abs(crop_resize_array(near, fast).astype(int) - crop_resize_array(near, area).astype(int)).mean() < 4
    far = np.asarray(_scene(800, 600))  # a 2.4x shrink: the area average, exactly as "area"
    np.testing.assert_array_equal(crop_resize_array(far, fast), crop_resize_array(far, area))
    stripes = np.zeros((600, 800, 3), np.uint8)
    stripes[:, ::2] = 255  # one-pixel stripes: averaged towards grey, where a cubic kernel would alias them into bands
    grey = crop_resize_array(stripes, fast).astype(int)
    aliased = cv2.resize(stripes[:, 100:700], (224, 224), interpolation=cv2.INTER_CUBIC).astype(int)
    assert abs(grey.mean() - 127.5) < 3 and 3 * grey.std() < aliased.std()
    small = np.asarray(_scene(120, 90))
    np.testing.assert_array_equal(crop_resize_array(small, fast), crop_resize_array(small, spec))


def test_feature_ids_name_the_resampler():
    from imgclf.config.settings import EngineConfig, ModelConfig
    from imgclf.features.featurize import feature_id_of
    from imgclf.features.ids import FeatureId

    for resampler, part in (("fast", "r224.fast"), ("area", "r224.area"), ("native", "r224")):
        fid = feature_id_of(ModelConfig(resampler=resampler), EngineConfig(precision="bf16"))
        assert str(fid) == f"efficientnet_lite0-{part}-imagenet-bf16" and FeatureId.parse(str(fid)) == fid
