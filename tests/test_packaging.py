"""Our four generic top-level import names belong to our distribution and nothing else."""

from __future__ import annotations

import importlib
import importlib.metadata
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
NAMES = ("crypto", "federation", "moderation", "server")


@pytest.mark.parametrize("name", NAMES)
def test_import_name__owned_only_by_hearthside(name: str) -> None:
    owners = importlib.metadata.packages_distributions().get(name, [])
    assert owners == ["hearthside"], f"{name} is provided by {owners}"


@pytest.mark.parametrize("name", NAMES)
def test_import_name__resolves_to_this_checkout(name: str) -> None:
    module = importlib.import_module(name)
    assert module.__file__ is not None
    assert Path(module.__file__).resolve().parent == ROOT / name


def test_pycryptodome__not_installed() -> None:
    # pycryptodome's `Crypto` would be one letter away from our `crypto` (STYLE.md).
    assert "Crypto" not in importlib.metadata.packages_distributions()
