"""The configuration reference, written from the declarations: ``imgclf config --explain`` (text) and
docs/configuration.md (``imgclf config --explain --markdown``). A test compares the file with
:func:`markdown` so the two cannot drift."""
from __future__ import annotations

from typing import Iterator

from .schema import describe, describe_value, fields_of, spec_of
from .settings import RENAMED, SECTIONS, Config

DOC_PATH = "docs/configuration.md"


def rows() -> Iterator[tuple[str, str, str, str, str]]:
    """``(section.key, default, unit, accepts, help)`` of every setting, in declaration order."""
    defaults = Config()
    for sec, cls in SECTIONS.items():
        for f, tp in fields_of(cls):
            spec = spec_of(f)
            yield f"{sec}.{f.name}", spec.shown_default or describe_value(getattr(getattr(defaults, sec), f.name)), spec.unit, describe(tp, spec), spec.help


def text() -> str:
    """Every key, its default and unit, what it accepts and its help: two lines each, grouped by section."""
    out: list[str] = []
    section = ""
    for key, default, unit, accepts, help_ in rows():
        if key.split(".")[0] != section:
            section = key.split(".")[0]
            out.append(f"{'' if not out else chr(10)}[{section}]")
        out.append(f"{key} = {default}  [{accepts}{'; unit: ' + unit if unit else ''}]")
        out.append(f"    {help_}")
    return "\n".join(out)


def _cell(text: str) -> str:
    return text.replace("|", "\\|")


def markdown() -> str:
    """docs/configuration.md: how settings are given, the conventions, then one table per section."""
    out = [
        "# Configuration reference",
        "",
        "<!-- Written by `imgclf config --explain --markdown > docs/configuration.md` from the declarations in",
        "     src/imgclf/config/settings.py; tests/config/test_reference.py fails when the two differ. -->",
        "",
        "Every setting is `section.key`. Give them in a TOML file (`--config my.toml`, sections as tables; "
        "`imgclf config` prints the resolved settings as such a file, each key under its help) or one at a time "
        "(`--set section.key=value`, the value in TOML syntax). Later wins: the defaults (or a run's saved "
        "config, or a bundle's engine) < `--config` < the command's own options (`--images`, `--preset`, ...) "
        "< `--set`. `imgclf config --explain` prints this table on the terminal.",
        "",
        "Conventions:",
        "",
        "- units are in the names: `_s` seconds, `_ms` milliseconds, `_mb` megabytes;",
        "- a 0 outside a key's range means **no limit** (a cap or a time limit) or **auto** (a size the tool "
        "picks: threads, streams, a resolution taken from another key), as its row says;",
        '- an empty string `""` means **not set**: the tool derives the value from the key its row names; '
        "an empty list `[]` likewise;",
        "- a command refuses a `--set` of a key it does not read (e.g. `predict --set model.resolution=320`: "
        "the bundle decides it) instead of ignoring it;",
        "- a preset or command that changes a setting (preset `best` trains `ensemble` where `train.classifier` "
        "is `svm`; preset `balanced` sets `model.*` to its choice; `imgclf refine` trains `dnn`; a featurizer key "
        "given pins `train.candidates`; `train.time_limit_s` gives the C search and refinement what is left: "
        "`svm.max_s`, `refine.max_s`, `refine.epochs`) says so and lists it under `changed` in the run's "
        "config.json.",
        "",
        "Keys renamed since the previous release are still read (from `--set`, `--config` files and saved "
        "runs) and reported once:",
        "",
        "| old name | new name |",
        "|---|---|",
        *(f"| `{old}` | `{new}` |" for old, new in RENAMED.items()),
    ]
    section = ""
    for key, default, unit, accepts, help_ in rows():
        if key.split(".")[0] != section:
            section = key.split(".")[0]
            out += ["", f"## [{section}]", "", "| key | default | unit | accepts | what it does |", "|---|---|---|---|---|"]
        out.append(f"| `{key}` | `{_cell(default)}` | {unit} | {_cell(accepts)} | {_cell(help_)} |")
    return "\n".join(out) + "\n"
