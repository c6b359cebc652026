"""pyproject.toml is the one pin list; environment.yml and binder/ pin the same package versions."""
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


def _pyproject() -> tuple[dict[str, str], dict[str, dict[str, str]]]:
    """(runtime pins, {extra: its pins})."""
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    runtime = _pins(project["dependencies"], "pyproject [project.dependencies]")
    extras = {name: _pins(reqs, f"pyproject [{name}]") for name, reqs in project["optional-dependencies"].items()}
    return runtime, extras


def _merged(*groups: dict[str, str]) -> dict[str, str]:
    """The union of pin groups; a package pinned in two groups must have one version."""
    merged: dict[str, str] = {}
    for group in groups:
        for name, version in group.items():
            assert merged.setdefault(name, version) == version, f"{name} is pinned to {merged[name]} and {version}"
    return merged


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


def test_extras_agree_with_each_other_and_the_runtime_pins():
    runtime, extras = _pyproject()
    _merged(runtime, *extras.values())
    assert set(extras) >= {"offline", "bench", "test", "browser"}
    assert _merged(extras["offline"], extras["bench"]).items() <= extras["test"].items()  # make test installs both


def test_widget_imports_are_declared():
    runtime, _ = _pyproject()
    assert {"pillow", "ipython", "ipywidgets", "matplotlib"} <= set(runtime)
    assert "mlxtend" not in runtime and "psutil" not in runtime  # optional: offline fallback, benchmarks


def test_environment_yml_pins_runtime_and_test_packages_as_pyproject():
    runtime, extras = _pyproject()
    _, pins = _conda(REPO / "environment.yml")
    assert pins == _merged(runtime, extras["offline"], extras["bench"], extras["test"])


def test_binder_pins_runtime_and_offline_packages_as_pyproject():
    runtime, extras = _pyproject()
    _, pins = _conda(REPO / "binder" / "environment.yml")
    assert pins == _merged(runtime, extras["offline"])


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
    with pytest.raises(AssertionError, match="numpy is pinned to 1 and 2"):
        _merged({"numpy": "1"}, {"numpy": "2"})
