"""The refined network: what trains, learning-rate schedules, precision; and its checkpoints."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from imgclf.config.settings import Config, ConfigError, load_config
from imgclf.features.engines import cpu_has_bf16
from imgclf.refine.checkpoint import clear_checkpoints, load_checkpoint, save_checkpoint
from imgclf.refine.model import Precision, build_network, learning_rate, param_groups, set_train_mode
from imgclf.util.errors import ImgclfError


def _cfg(*overrides: str) -> Config:
    return load_config(None, ["model.resolution=64", "model.pretrained=false", *overrides])


def _trainable(net) -> set[str]:
    return {n for n, p in net.named_parameters() if p.requires_grad}


def test_freeze_stages_freezes_the_stem_and_leading_blocks_only():
    cfg = _cfg("refine.freeze_stages=3")
    net, spec = build_network(cfg.model, cfg.refine, 4, seed=0)
    names = _trainable(net)
    assert spec.resolution == 64 and net.head.out_features == 4 and net.head.in_features == net.backbone.num_features
    assert not any(n.startswith(("backbone.conv_stem", "backbone.bn1", "backbone.blocks.0.", "backbone.blocks.1.")) for n in names)
    assert any(n.startswith("backbone.blocks.2.") for n in names) and {"head.weight", "head.bias"} <= names
    all_layers = _trainable(build_network(cfg.model, _cfg("refine.freeze_stages=0").refine, 4, seed=0)[0])
    assert all_layers == {n for n, _ in net.named_parameters()}
    head_only = _trainable(build_network(cfg.model, _cfg("refine.freeze_backbone=true").refine, 4, seed=0)[0])
    assert head_only == {"head.weight", "head.bias"}


def test_head_is_seeded_and_train_mode_keeps_batchnorm_statistics_fixed():
    cfg = _cfg()
    a, b = (build_network(cfg.model, cfg.refine, 3, seed=5)[0] for _ in range(2))
    assert torch.equal(a.head.weight, b.head.weight)
    assert not torch.equal(a.head.weight, build_network(cfg.model, cfg.refine, 3, seed=6)[0].head.weight)
    set_train_mode(a, bn_freeze=True)
    bns = [m for m in a.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
    assert a.training and a.dropout.training and bns and not any(m.training for m in bns)
    before = bns[-1].running_mean.clone()
    a(torch.randn(2, 3, 64, 64))
    assert torch.equal(before, bns[-1].running_mean)
    set_train_mode(a, bn_freeze=False)  # statistics of trainable stages update, frozen stages stay fixed
    assert bns[-1].training and not a.backbone.bn1.training


def test_weight_decay_applies_to_weights_not_biases_or_batchnorm():
    cfg = _cfg("refine.weight_decay=0.001", "refine.head_lr_mult=3")
    net, _ = build_network(cfg.model, cfg.refine, 2, seed=0)
    groups = param_groups(net, cfg.refine)
    by_param = {id(p): g for g in groups for p in g["params"]}
    assert by_param[id(net.head.weight)]["weight_decay"] == 0.001 and by_param[id(net.head.weight)]["lr_mult"] == 3
    assert by_param[id(net.head.bias)]["weight_decay"] == 0.0
    assert by_param[id(net.backbone.bn2.weight)]["weight_decay"] == 0.0 and by_param[id(net.backbone.bn2.weight)]["lr_mult"] == 1
    assert sum(len(g["params"]) for g in groups) == len(_trainable(net))


def test_per_epoch_learning_rates_follow_the_list_and_repeat_the_last():
    r = _cfg("refine.lr=[0.01, 0.01, 0.001]", "refine.epochs=5").refine
    assert [learning_rate(r, e, 3, 10) for e in range(5)] == [0.01, 0.01, 0.001, 0.001, 0.001]


def test_cosine_onecycle_and_warmup_shapes():
    r = _cfg("refine.epochs=4", "refine.base_lr=0.1").refine
    lrs = [learning_rate(r, e, s, 10) for e in range(4) for s in range(10)]
    assert lrs[0] == pytest.approx(0.1) and lrs[-1] < 0.001 and all(a >= b for a, b in zip(lrs, lrs[1:]))
    r.lr_schedule = "onecycle"
    one = [learning_rate(r, e, s, 10) for e in range(4) for s in range(10)]
    peak = int(np.argmax(one))
    assert one[0] == pytest.approx(0.1 / 25) and one[peak] == pytest.approx(0.1, rel=0.05) and 10 <= peak <= 13 and one[-1] < 0.002
    r.lr_schedule, r.warmup_epochs = "cosine", 1
    warm = [learning_rate(r, 0, s, 10) for s in range(10)]
    assert warm == pytest.approx([0.1 * (s + 1) / 10 for s in range(10)])
    assert learning_rate(r, 1, 0, 10) == pytest.approx(0.1)


def test_precision_auto_uses_bf16_only_where_the_cpu_has_it():
    assert Precision("fp32", "cpu").name == "fp32"
    assert Precision("bf16", "cpu").name == "bf16"
    assert Precision("auto", "cpu").name == ("bf16" if cpu_has_bf16() else "fp32")


def test_refine_config_is_validated():
    for bad in ("refine.crop_scale=0", "refine.lr=[0.1, -1]", "refine.freeze_stages=-1", "refine.label_smoothing=1.0",
                "refine.head_lr_mult=0", "refine.resolution=100", "refine.resolution=1024"):
        with pytest.raises(ConfigError, match="refine"):
            load_config(None, [bad])
    with pytest.raises(ConfigError, match="refine.precision"):
        load_config(None, ["refine.precision=fp8"])


def test_refinement_refines_its_own_backbone_unless_told_to_use_the_model_one():
    cfg = load_config(None, [])
    assert (cfg.model.backbone, cfg.model.resolution) == ("efficientnet_lite0", 224)  # the SVM's fast default
    assert (cfg.refine_model().backbone, cfg.refine_model().resolution) == ("efficientnet_lite2", 320)
    r = load_config(None, ['model.backbone="efficientnet_lite1"', "model.resolution=256", 'refine.backbone=""', "refine.resolution=0"])
    assert (r.refine_model().backbone, r.refine_model().resolution) == ("efficientnet_lite1", 256)
    f = load_config(None, ["refine.resolution=192"]).for_refinement()
    assert (f.model.backbone, f.model.resolution, f.model.pretrained) == ("efficientnet_lite2", 192, True)
    assert f.for_refinement().model == f.model  # applying it twice changes nothing


# ---------------------------------------------------------------- checkpoints


def _trained_pair():
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.BatchNorm2d(4), torch.nn.Flatten(), torch.nn.LazyLinear(2))
    net(torch.randn(2, 3, 6, 6))
    net = net.to(memory_format=torch.channels_last)
    opt = torch.optim.SGD(net.parameters(), lr=0.1, momentum=0.9)
    for _ in range(2):
        opt.zero_grad()
        net(torch.randn(2, 3, 6, 6)).sum().backward()
        opt.step()
    return net, opt


def test_checkpoint_round_trip_restores_weights_and_momentum(tmp_path: Path):
    net, opt = _trained_pair()
    save_checkpoint(tmp_path, 1, net.state_dict(), opt.state_dict(), {"history": [{"epoch": 1}], "note": "x"})
    ck = load_checkpoint(tmp_path)
    assert ck.epoch == 1 and ck.info["history"] == [{"epoch": 1}] and ck.info["note"] == "x"
    assert all(torch.equal(ck.model[k], v) for k, v in net.state_dict().items())
    opt2 = torch.optim.SGD(net.parameters(), lr=0.5, momentum=0.9)
    opt2.load_state_dict(ck.optimizer)
    assert opt2.param_groups[0]["lr"] == 0.1
    for p in net.parameters():
        assert torch.equal(opt2.state[p]["momentum_buffer"], opt.state[p]["momentum_buffer"])


def test_a_new_checkpoint_replaces_the_old_and_a_half_written_one_is_ignored(tmp_path: Path):
    net, opt = _trained_pair()
    save_checkpoint(tmp_path, 1, net.state_dict(), opt.state_dict(), {})
    save_checkpoint(tmp_path, 2, net.state_dict(), opt.state_dict(), {})
    assert sorted(p.name for p in tmp_path.iterdir()) == ["checkpoint-e0002.safetensors", "checkpoint.json"]
    # a kill after the next tensors file but before its index: the index still names epoch 2
    (tmp_path / "checkpoint-e0003.safetensors").write_bytes(b"partial")
    assert load_checkpoint(tmp_path).epoch == 2
    clear_checkpoints(tmp_path)
    assert load_checkpoint(tmp_path) is None and not list(tmp_path.iterdir())


def test_a_tampered_checkpoint_is_refused(tmp_path: Path):
    net, opt = _trained_pair()
    save_checkpoint(tmp_path, 1, net.state_dict(), opt.state_dict(), {})
    f = tmp_path / "checkpoint-e0001.safetensors"
    data = bytearray(f.read_bytes())
    data[-1] ^= 0xFF
    f.write_bytes(bytes(data))
    with pytest.raises(ImgclfError, match="SHA-256"):
        load_checkpoint(tmp_path)


def test_linear_probe_fit_separates_separable_features_and_l2_shrinks_it():
    from imgclf.refine.loop import fit_softmax

    rng = np.random.default_rng(0)
    centers = rng.normal(0, 1, (3, 16)) * 4
    y = np.repeat(np.arange(3), 20)
    x = (centers[y] + rng.normal(0, 1, (60, 16))).astype(np.float32)
    w, b = fit_softmax(x, y, 3, l2=0.01)
    assert w.shape == (3, 16) and b.shape == (3,) and w.dtype == np.float32
    assert ((x @ w.T + b).argmax(1) == y).mean() == 1.0
    w2, _ = fit_softmax(x, y, 3, l2=1.0)
    assert np.linalg.norm(w2) < 0.5 * np.linalg.norm(w)
    assert np.array_equal(fit_softmax(x, y, 3, l2=0.01)[0], w)  # deterministic


def test_frozen_stages_on_an_inference_engine_give_the_same_logits_as_torch():
    from imgclf.features.ovcore import openvino_problem
    from imgclf.refine.model import onnx_prefix

    cfg = _cfg("refine.freeze_stages=3")
    net, spec = build_network(cfg.model, cfg.refine, 3, seed=0)
    net.eval()
    prefix = onnx_prefix(net, cfg.refine, spec, "cpu", threads=1)
    assert prefix is not None and prefix.stages == 3
    x = np.random.default_rng(0).normal(0, 1, (2, 3, 64, 64)).astype(np.float32)
    with torch.no_grad():
        plain = net(torch.from_numpy(x)).numpy()
        split = net(torch.from_numpy(prefix(x)), skip=3).numpy()
    assert np.abs(plain - split).max() < 1e-4 * max(1.0, np.abs(plain).max())
    assert prefix.engine == ("onnxruntime" if openvino_problem() else "openvino")
    bf16 = onnx_prefix(net, cfg.refine, spec, "cpu", threads=1, precision="bf16")
    with torch.no_grad():
        approx = net(torch.from_numpy(bf16(x)), skip=3).numpy()
    assert np.abs(plain - approx).max() < 0.05 * max(1.0, np.abs(plain).max())  # bf16: close, not equal
    assert onnx_prefix(net, _cfg("refine.onnx_frozen=false").refine, spec, "cpu", 1) is None
    assert onnx_prefix(net, _cfg("refine.freeze_stages=0").refine, spec, "cpu", 1) is None
    assert onnx_prefix(net, cfg.refine, spec, "cuda:0", 1) is None
