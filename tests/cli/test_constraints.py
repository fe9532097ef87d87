"""Locked installs: constraints.txt pins every package of imgclf[dev,ray]'s dependency tree to the version
the suite passed with, inside pyproject's ranges, and `make demo` / `make test` install with it."""
import subprocess
import tomllib
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parents[2]
CONSTRAINTS = ROOT / "constraints.txt"


def _pins() -> dict[str, str]:
    pins = {}
    for line in CONSTRAINTS.read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            name, sep, ver = line.strip().partition("==")
            assert sep and ver, f"constraints.txt: {line!r} is not NAME==VERSION"
            pins[canonicalize_name(name)] = ver
    return pins


def _requirements() -> list[Requirement]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    return [Requirement(r) for r in project["dependencies"] + sum(project["optional-dependencies"].values(), [])]


def test_every_dependency_is_pinned_inside_its_range():
    pins = _pins()
    for req in _requirements():
        name = canonicalize_name(req.name)
        assert name in pins, f"{req.name} is not in constraints.txt: run `make lock`"
        assert req.specifier.contains(pins[name], prereleases=True), f"constraints.txt pins {name}=={pins[name]}, outside {req}"
    assert "imgclf" not in pins


def test_the_pins_are_the_versions_installed_here():
    """The suite runs on the locked versions (a drifted environment, or a lock not refreshed, fails)."""
    drift = {}
    for name, pinned in _pins().items():
        try:
            installed = version(name)
        except PackageNotFoundError:  # a platform-specific package (CUDA wheels) absent here
            continue
        if installed != pinned:
            drift[name] = (pinned, installed)
    assert not drift, f"pinned vs installed: {drift}; `make test` installs the pins, `make lock` refreshes them"


def test_typer_has_an_upper_bound():
    typer = next(r for r in _requirements() if r.name == "typer")
    assert any(s.operator in ("<", "<=", "~=", "==") for s in typer.specifier)


def test_make_installs_with_the_constraints():
    out = subprocess.run(["make", "-n", "-B", "-C", str(ROOT), "install", "install-dev"], capture_output=True, text=True,
                         timeout=60, check=True).stdout
    installs = [line for line in out.splitlines() if "pip install" in line and " -e " in line]
    assert len(installs) == 2 and all("-c constraints.txt" in line for line in installs), out
    assert "installing the locked versions of constraints.txt" in out
