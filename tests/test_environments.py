"""pyproject.toml, environment.yml and binder/ pin the same package versions."""
from __future__ import annotations

import re
import tomllib
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)(?:\[[^\]]*\])?==([^\s;]+)$")


def _name(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()  # PEP 503 normalization


def _pins(requirements, where: str) -> dict[str, str]:
    pins = {}
    for req in requirements:
        match = PIN.match(req.strip())
        assert match, f"{where}: {req!r} is not pinned as name==version"
        name = _name(match.group(1))
        assert name not in pins, f"{where}: {name} is listed twice"
        pins[name] = match.group(2)
    return pins


def _pyproject() -> tuple[dict[str, str], dict[str, str]]:
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    runtime = _pins(project["dependencies"], "pyproject [project.dependencies]")
    test = _pins(project["optional-dependencies"]["test"], "pyproject [test]")
    return runtime, test


def _conda(path: Path) -> tuple[list, dict[str, str]]:
    env = yaml.safe_load(path.read_text())
    deps = env["dependencies"]
    conda = [d for d in deps if isinstance(d, str)]
    pip_sections = [d["pip"] for d in deps if isinstance(d, dict) and "pip" in d]
    assert len(pip_sections) == 1, f"{path.name}: expected one pip: section, found {len(pip_sections)}"
    return conda, _pins(pip_sections[0], str(path.relative_to(REPO)))


@pytest.mark.parametrize("relpath", ["environment.yml", "binder/environment.yml"])
def test_conda_part_is_minimal(relpath):
    conda, _ = _conda(REPO / relpath)
    assert sorted(conda) == ["pip", "python=3.11"], f"{relpath}: conda part must be only python=3.11 and pip, got {conda}"


def test_environment_yml_pins_runtime_and_test_packages_as_pyproject():
    runtime, test = _pyproject()
    _, pins = _conda(REPO / "environment.yml")
    assert pins == {**runtime, **test}


def test_binder_pins_runtime_packages_as_pyproject():
    runtime, _ = _pyproject()
    _, pins = _conda(REPO / "binder" / "environment.yml")
    assert pins == runtime


def test_binder_postbuild_installs_the_package_and_start_sets_quick_mode():
    post = REPO / "binder" / "postBuild"
    start = REPO / "binder" / "start"
    assert post.stat().st_mode & 0o111 and start.stat().st_mode & 0o111, "binder scripts must be executable"
    assert re.search(r"pip install .*-e \.\s*$", post.read_text(), re.M)
    text = start.read_text()
    assert "INFERNET_QUICK" in text and 'exec "$@"' in text


def test_pin_parser_rejects_unpinned_and_duplicates():
    with pytest.raises(AssertionError, match="not pinned"):
        _pins(["numpy>=2"], "x")
    with pytest.raises(AssertionError, match="listed twice"):
        _pins(["tf_keras==1", "tf-keras==1"], "x")
    assert _pins(["Foo.Bar[extra]==1.2"], "x") == {"foo-bar": "1.2"}
