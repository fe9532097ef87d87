from pathlib import Path

import pytest

from imgclf.config.settings import Config, ConfigError, config_from_dict, flatten, load_config, to_toml


def test_defaults_match_the_documented_values():
    cfg = load_config()
    assert cfg.data.train_ratio == 0.75
    assert cfg.model.backbone == "efficientnet_lite0" and cfg.model.resolution == 224
    assert cfg.svm.l2_normalize is True
    assert cfg.svm.c_values == [1e-4, 1e-3, 1e-2, 0.1, 1.0, 10.0, 100.0]
    assert cfg.train.classifier == "svm"


def test_env_var_sets_default_data_root(monkeypatch):
    monkeypatch.setenv("IMGCLF_DATA_DIR", "/somewhere/else")
    assert Config().data.root == "/somewhere/else"


def test_toml_file_then_set_overrides(tmp_path: Path):
    f = tmp_path / "c.toml"
    f.write_text('[model]\nresolution = 320\n[svm]\nc_values = [1, 10]\n[data]\nsplit_by = "subdir"\n')
    cfg = load_config(f, ["model.resolution=256", "data.seed=7", "data.dataset=shirts"])
    assert cfg.model.resolution == 256  # --set wins over the file
    assert cfg.svm.c_values == [1.0, 10.0] and all(isinstance(c, float) for c in cfg.svm.c_values)
    assert cfg.data.split_by == "subdir" and cfg.data.seed == 7 and cfg.data.dataset == "shirts"


@pytest.mark.parametrize(
    "override, words",
    [
        ("model.resolutoin=320", ["model.resolutoin", "resolution"]),
        ("modle.resolution=320", ["modle", "model"]),
        ("model.resolution=big", ["model.resolution", "integer"]),
        ("data.split_by=folder", ["data.split_by", "'file'", "'subdir'"]),
        ("svm.l2_normalize=1", ["svm.l2_normalize", "true or false"]),
        ("model.resolution=300", ["multiple of 32"]),
        ("model.resolution=1024", ["896"]),
        ("data.train_ratio=1.5", ["data.train_ratio"]),
        ("svm.c_values=[]", ["svm.c_values"]),
        ("nodot=3", ["section.key"]),
        ("engine.precision=fp16", ["engine.precision", "'auto'", "'bf16'", "'fp32'", "'int8'"]),
    ],
)
def test_bad_values_name_the_key_and_what_is_accepted(override, words):
    with pytest.raises(ConfigError) as e:
        load_config(None, [override])
    for w in words:
        assert w in str(e.value)


def test_unknown_key_in_file_is_an_error(tmp_path: Path):
    f = tmp_path / "c.toml"
    f.write_text("[svm]\ncv_fold = 3\n")
    with pytest.raises(ConfigError, match="svm.cv_fold"):
        load_config(f)


def test_resolved_config_round_trips_through_toml_and_dict(tmp_path: Path):
    cfg = load_config(None, ["model.resolution=320", 'data.test_list="a b.tsv"', "svm.c_values=[0.5]"])
    f = tmp_path / "resolved.toml"
    f.write_text(to_toml(cfg))
    assert load_config(f) == cfg
    assert config_from_dict(cfg.to_dict()) == cfg
    flat = flatten(cfg)
    assert flat["model.resolution"] == 320 and flat["data.test_list"] == "a b.tsv"


def test_one_precedence_rule_base_file_flags_set(tmp_path: Path):
    base = load_config(None, ["svm.max_iter=1111", "data.seed=11", "svm.cv_folds=2", "serve.port=1"])
    f = tmp_path / "c.toml"
    f.write_text('[data]\nseed = 22\n[svm]\ncv_folds = 3\n[serve]\nport = 2\nhost = "file"\n')
    cfg = load_config(f, ["serve.port=4"], base=base, flags=["serve.port=3", "serve.host=flag", "svm.cv_folds=5"])
    assert cfg.svm.max_iter == 1111  # base only: kept although a file is given
    assert cfg.data.seed == 22  # the file beats the base
    assert (cfg.svm.cv_folds, cfg.serve.host) == (5, "flag")  # flags beat the file
    assert cfg.serve.port == 4  # --set beats everything
    assert (base.data.seed, base.serve.port) == (11, 1)  # the base itself is left alone
    with pytest.raises(ConfigError, match="svm.bogus in the command line"):
        load_config(None, base=base, flags=["svm.bogus=1"])


def test_engine_precisions_come_from_the_registry(monkeypatch):
    """A precision an engine declares in imgclf.registry is accepted by the config with no other change."""
    from imgclf.util import registry

    monkeypatch.setitem(registry.ENGINE_PRECISIONS, "onnxruntime", (*registry.ENGINE_PRECISIONS["onnxruntime"], "fp16"))
    assert load_config(None, ["engine.backend=onnxruntime", "engine.precision=fp16"]).engine.precision == "fp16"
    with pytest.raises(ConfigError, match="cannot run engine.precision 'fp16'"):
        load_config(None, ["engine.backend=torch", "engine.precision=fp16"])
