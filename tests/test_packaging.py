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


def test_pycryptodome__never_a_runtime_dependency() -> None:
    # pycryptodome's `Crypto` is one letter away from our `crypto` (STYLE.md). It is present
    # in the test environment only because `httpsig`, the independent draft-cavage oracle the
    # federation issue asks for, needs it; nothing we ship may depend on it, and our `crypto`
    # must stay ours (checked above).
    runtime = [r for r in importlib.metadata.requires("hearthside") or [] if "extra ==" not in r]
    assert not [r for r in runtime if r.lower().startswith(("pycryptodome", "httpsig"))]
    owners = importlib.metadata.packages_distributions().get("Crypto", [])
    assert set(owners) <= {"pycryptodome"}
