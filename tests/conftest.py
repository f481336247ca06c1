"""Shared pytest setup. Fixtures that start real parts live in ``tests/fixtures/*.py``;
every module there is loaded as a plugin, so a new part needs no edit here."""

from __future__ import annotations

from pathlib import Path

pytest_plugins = sorted(
    f"tests.fixtures.{path.stem}"
    for path in (Path(__file__).parent / "fixtures").glob("*.py")
    if not path.name.startswith("_")
)
