"""Backbones: the registry, offline weights, and the (x - 127) / 128 preprocessing of the Lite weights."""
import numpy as np
import pytest
import torch
from PIL import Image

from imgclf.features.backbones import DataSpec, count_gflops, create_backbone, gflops, offline_backbones
from imgclf.features.preprocess import center_crop_resize, preprocess
from imgclf.util.errors import BackboneError
from imgclf.util.registry import BACKBONES

DAISY = 985  # ImageNet class index


@pytest.fixture(scope="module")
def lite0_1000():
    return create_backbone("efficientnet_lite0", 224, pretrained=True, num_classes=1000)


@pytest.fixture(scope="module")
def flower():
    from sklearn.datasets import load_sample_image

    return Image.fromarray(load_sample_image("flower.jpg"))


def test_lite_preprocessing_is_minus_127_over_128(lite0_1000):
    _, spec = lite0_1000
    assert spec.mean == (127 / 255,) * 3 and spec.std == (128 / 255,) * 3
    x = preprocess(Image.new("RGB", (300, 300), (127, 255, 0)), spec)
    np.testing.assert_allclose(x[:, 100, 100], [0.0, 128 / 128, -127 / 128], atol=1e-6)


def test_known_photo_is_classified_by_the_imagenet_head(lite0_1000, flower):
    model, spec = lite0_1000
    imagenet = DataSpec(224, spec.crop_pct, (0.485, 0.456, 0.406), (0.229, 0.224, 0.225))
    with torch.no_grad():
        p = model(torch.from_numpy(preprocess(flower, spec))[None]).softmax(1)[0]
        p_wrong = model(torch.from_numpy(preprocess(flower, imagenet))[None]).softmax(1)[0]
    assert int(p.argmax()) == DAISY and float(p[DAISY]) > 0.25
    # the wrong normalisation still "works" (a silent bug) but is clearly less confident
    assert float(p[DAISY]) > 2 * float(p_wrong[DAISY])


def test_first_batchnorm_statistics_match_the_preprocessing(lite0_1000, flower):
    """The stem BN's running variance was learned on inputs in [-1, 1]: ours must match it."""
    model, spec = lite0_1000
    from sklearn.datasets import load_sample_image

    imgs = [flower, Image.fromarray(load_sample_image("china.jpg"))]
    x = torch.from_numpy(np.stack([preprocess(i, spec) for i in imgs]))
    imagenet = DataSpec(224, spec.crop_pct, (0.485, 0.456, 0.406), (0.229, 0.224, 0.225))
    x_wrong = torch.from_numpy(np.stack([preprocess(i, imagenet) for i in imgs]))
    with torch.no_grad():
        ratio = model.conv_stem(x).var(dim=(0, 2, 3)).mean() / model.bn1.running_var.mean()
        ratio_wrong = model.conv_stem(x_wrong).var(dim=(0, 2, 3)).mean() / model.bn1.running_var.mean()
    assert 0.5 < float(ratio) < 2.0
    assert float(ratio_wrong) > 2.5


@pytest.mark.slow
@pytest.mark.parametrize("name, dim", [("efficientnet_lite0", 1280), ("efficientnet_lite1", 1280), ("efficientnet_lite2", 1280)])
def test_offline_backbones_give_pooled_features(name, dim):
    model, spec = create_backbone(name, 64)
    with torch.no_grad():
        y = model(torch.zeros(2, 3, 64, 64))
    assert y.shape == (2, dim) and torch.isfinite(y).all() and model.num_features == dim


@pytest.mark.slow
@pytest.mark.parametrize("name", ["efficientnet_lite0", "efficientnet_lite1", "efficientnet_lite2"])
def test_each_registry_entry_holds_the_cost_its_network_counts(name):
    entry = BACKBONES.lookup(name)
    assert gflops(name, entry.native_resolution) == entry.gflops
    assert gflops(name, 2 * entry.native_resolution) == pytest.approx(4 * entry.gflops)  # cost grows with the pixels
    assert count_gflops(name, entry.native_resolution) == pytest.approx(entry.gflops, rel=0.02)


def test_an_unregistered_backbone_cost_is_counted_not_assumed():
    small = gflops("mobilenetv3_small_100", 224)  # a timm network without a registry entry, built without weights
    assert "mobilenetv3_small_100" not in BACKBONES
    assert 0.05 < small < 0.3 and small != pytest.approx(gflops("efficientnet_lite0", 224), rel=0.5)
    assert gflops("mobilenetv3_small_100", 448) == pytest.approx(4 * small, rel=0.1)


def test_unknown_backbone_lists_the_offline_ones():
    with pytest.raises(BackboneError) as e:
        create_backbone("no_such_net", 224)
    assert "no_such_net" in str(e.value) and "efficientnet_lite0" in e.value.hint


def test_hub_backbone_offline_is_a_one_line_error(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(BackboneError) as e:
        create_backbone("resnet18", 224)
    assert "\n" not in str(e.value) and "resnet18" in str(e.value)
    assert set(offline_backbones()) <= set(e.value.hint.replace(",", " ").split())


def test_center_crop_matches_resize_then_crop():
    yy, xx = np.mgrid[0:300, 0:400]
    smooth = np.stack([xx * 255 / 400, yy * 255 / 300, (xx + yy) % 256], axis=-1)
    img = Image.fromarray(smooth.astype(np.uint8))
    spec = DataSpec(224, 0.875, (0.5,) * 3, (0.5,) * 3, "bilinear")
    fast = np.asarray(center_crop_resize(img, spec), float)
    resized = img.resize((341, 256), Image.Resampling.BILINEAR)
    left, top = (341 - 224) // 2, (256 - 224) // 2
    slow = np.asarray(resized.crop((left, top, left + 224, top + 224)), float)
    assert fast.shape == slow.shape == (224, 224, 3)
    assert np.abs(fast - slow).mean() < 3  # same region, same scale (resampling details differ)
