"""One declared configuration: every key carries its help, unit and constraint; one validator and one
message format read them; mistakes get the closest key; a command refuses a key it would ignore; what a
preset or command changes is said and recorded."""
from __future__ import annotations

import json
import tomllib
import typing
from pathlib import Path

import pytest

from imgclf.cli import main
from imgclf.config.schema import check_section, fields_of, spec_of
from imgclf.config.settings import (
    BUNDLE_FIXED,
    SECTIONS,
    Config,
    ConfigError,
    ServeConfig,
    Uses,
    all_keys,
    config_from_dict,
    load_config,
    to_toml,
)


def test_every_key_is_declared_with_help_and_every_number_with_a_range():
    for sec, cls in SECTIONS.items():
        for f, tp in fields_of(cls):
            spec = spec_of(f)
            assert spec.help and "\n" not in spec.help, f"{sec}.{f.name}"
            if tp in (int, float) or typing.get_origin(tp) is list and typing.get_args(tp)[0] in (int, float):
                bounded = any(b is not None for b in (spec.ge, spec.gt, spec.le, spec.lt))
                assert bounded, f"{sec}.{f.name} has no range"
    assert len(all_keys()) == len(set(all_keys())) > 90


@pytest.mark.parametrize("item, expected", [
    ("data.duplicate_distance=257", "an integer from 0 to 256 (in bits); got 257"),
    ("data.duplicate_distance=-1", "an integer from 0 to 256 (in bits); got -1"),
    ("data.min_images_per_class=1", "an integer >= 2 (in images); got 1"),
    ("engine.streams=-1", "0 (auto: one per thread) or an integer >= 1; got -1"),
    ("svm.max_iter=0", "an integer >= 1; got 0"),
    ("serve.port=0", "an integer from 1 to 65535; got 0"),
    ("serve.port=70000", "an integer from 1 to 65535; got 70000"),
    ("train.time_limit_s=-5", "0 (no limit) or a number > 0 (in s); got -5.0"),
    ("refine.resolution=100", "0 (auto: model.resolution) or a multiple of 32 from 32 to 896 (in px); got 100"),
    ("svm.c_values=[1, -1]", "a non-empty list of numbers, each > 0; got [1.0, -1.0]"),
    ("train.ensemble_weights=[1, 1]", "a list of 3 numbers, each >= 0, not all 0, [] = equal; got [1.0, 1.0]"),
    ("data.train_ratio=nan", "a number in (0, 1); got nan"),
])
def test_one_message_names_the_key_what_it_accepts_and_what_it_got(item, expected):
    """Keys never range-checked before (duplicate_distance, min_images_per_class, streams, max_iter, port) too."""
    with pytest.raises(ConfigError) as e:
        load_config(None, [item])
    assert str(e.value) == f"{item.split('=')[0]} must be {expected}"
    assert "imgclf config --explain" in e.value.hint


@pytest.mark.parametrize("item", ["train.time_limit_s=0", "svm.max_s=0", "refine.max_s=0", "engine.threads=0", "engine.streams=0",
                                  "refine.resolution=0", "refine.decode_threads=0", "refine.max_images_per_epoch=0",
                                  'refine.backbone=""', 'data.images=""', "train.candidates=[]"])
def test_zero_and_empty_mean_no_limit_auto_or_not_set(item):
    load_config(None, [item])


def test_a_section_built_in_code_meets_the_same_validator():
    check_section("serve", ServeConfig())
    with pytest.raises(ConfigError, match=r"^serve.port must be an integer from 1 to 65535; got 0$"):
        check_section("serve", ServeConfig(port=0))
    with pytest.raises(ConfigError, match=r"^serve.port must be an integer; got '80'$"):
        check_section("serve", ServeConfig(port="80"))  # its type too
    with pytest.raises(ConfigError, match=r"^serve.allowed_hosts\[0\] must be a string; got 1$"):
        check_section("serve", ServeConfig(allowed_hosts=[1]))


@pytest.mark.parametrize("item, guess", [
    ("model.resolutoin=320", "did you mean model.resolution?"),
    ("svm.max_secs=3", "did you mean svm.max_s?"),
    ("train.featurizers=[]", "did you mean model.featurizers?"),  # the right key in another section
    ("modle.resolution=320", "did you mean [model]?"),
])
def test_unknown_keys_and_sections_get_the_closest_name(item, guess):
    with pytest.raises(ConfigError) as e:
        load_config(None, [item])
    assert guess in str(e.value) and "imgclf config --explain" in e.value.hint
    assert "--help" not in e.value.hint


def test_a_command_refuses_a_key_it_does_not_read(tmp_path: Path):
    predict = Uses("predict", ("engine", "predict", "images"), fixed=BUNDLE_FIXED)
    assert load_config(None, ["predict.min_confidence=0.5", "engine.threads=2"], uses=predict).predict.min_confidence == 0.5
    with pytest.raises(ConfigError, match="predict does not use model.resolution: the model bundle decides it") as e:
        load_config(None, ["model.resolution=320"], uses=predict)
    assert "drop --set model.resolution" in e.value.hint
    with pytest.raises(ConfigError, match=r"predict does not use serve.port; it reads engine.\*, predict.\*, images.\*"):
        load_config(None, ["serve.port=9000"], uses=predict)
    with pytest.raises(ConfigError, match="model.featurizers: the model bundle decides it"):
        load_config(None, ['model.ensemble=["efficientnet_lite0@96"]'], uses=predict)  # an old name too
    f = tmp_path / "all.toml"
    f.write_text(to_toml(load_config(None, ["model.resolution=320"])))  # a --config file may hold every key: only --set is refused
    assert load_config(f, uses=predict).model.resolution == 320


def test_predict_on_the_command_line_refuses_model_resolution(tmp_path: Path, capsys):
    assert main(["predict", str(tmp_path / "model"), str(tmp_path / "x.jpg"), "--set", "model.resolution=320"]) == 2
    err = capsys.readouterr().err
    assert "predict does not use model.resolution: the model bundle decides it" in err
    help_text = " ".join(_help(["predict", "--help"], capsys).split())
    assert "model.resolution=320" not in help_text and "predict.min_confidence=0.5" in help_text


def _help(argv: list[str], capsys) -> str:
    assert main(argv) == 0
    return capsys.readouterr().out


def test_a_pinned_featurizer_is_recorded_as_a_change(caplog):
    with caplog.at_level("INFO", logger="imgclf.config.settings"):
        cfg = load_config(None, ["model.resolution=320", "train.preset=balanced"])
    assert cfg.train.candidates == ["efficientnet_lite0@320"]
    assert cfg.changed == [{"key": "train.candidates", "from": [], "to": ["efficientnet_lite0@320"],
                            "by": "the featurizer given (model.resolution)"}]
    assert any("train.candidates = " in r.getMessage() and "model.resolution" in r.getMessage() for r in caplog.records)
    saved = json.loads(json.dumps(cfg.to_dict()))  # what config.json holds
    assert saved["changed"] == cfg.changed and config_from_dict(saved).changed == cfg.changed
    assert "changed" not in Config().to_dict()  # nothing changed: nothing recorded
    toml = to_toml(cfg)
    assert "# changed: train.candidates" in toml and tomllib.loads(toml)["train"]["candidates"] == ["efficientnet_lite0@320"]


def test_with_change_says_and_records_who_changed_what(caplog):
    cfg = load_config()
    with caplog.at_level("INFO", logger="imgclf.config.settings"):
        out = cfg.with_change("train.classifier", "dnn", by="imgclf refine")
    assert (cfg.train.classifier, out.train.classifier) == ("svm", "dnn") and not cfg.changed
    assert out.changed == [{"key": "train.classifier", "from": "svm", "to": "dnn", "by": "imgclf refine"}]
    assert [r.getMessage() for r in caplog.records] == ['train.classifier = "dnn" (was "svm"): set by imgclf refine']
    assert out.with_change("train.classifier", "dnn", by="again") is out  # no change, no record


def test_config_prints_toml_with_each_keys_help(capsys):
    text = _help(["config", "--set", "serve.port=9000"], capsys)
    assert tomllib.loads(text)["serve"]["port"] == 9000
    assert "# TCP port (an integer from 1 to 65535)\nport = 9000" in text
    assert text.count("\n# ") >= len(all_keys())


def test_config_explain_lists_every_key_with_default_unit_constraint_and_help(capsys):
    text = _help(["config", "--explain"], capsys)
    for key in all_keys():
        assert f"\n{key} = " in text
    assert 'serve.timeout_s = 30  [a number > 0; unit: s]\n    per-request deadline (504 after it)' in text
    assert 'engine.backend = "openvino" on x86, else "onnxruntime"  [one of ' in text
    assert main(["config", "--markdown"]) == 2  # --markdown formats --explain's reference only


def test_a_runs_config_json_given_as_config_file_sets_its_settings_not_its_record(tmp_path: Path):
    cfg = load_config(None, ["model.resolution=320", "data.seed=5"])
    f = tmp_path / "config.json"
    f.write_text(json.dumps(cfg.to_dict()))
    again = load_config(f)
    assert again == cfg and again.data.seed == 5
    assert again.changed == []  # the record describes that run; this load pinned nothing itself (candidates given)
