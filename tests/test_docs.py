"""Every public object of the core modules says, in its docstring, which notebook teaches it."""
from __future__ import annotations

import re

import pytest

import infernet_tutorial as it

CORE = {"data", "device", "families", "importance", "inference", "mixture", "models", "objectives", "posterior_grid",
        "settings", "wake_sleep"}


@pytest.mark.parametrize("name", sorted(n for n in it.__all__ if it._WHERE[n] in CORE))
def test_public_docstring_names_its_notebook(name):
    doc = getattr(it, name).__doc__ or ""
    assert re.search(r"notebooks? \d\d|every notebook|the CLI", doc), f"{name}: {doc.strip()[:120]!r}"
