"""Shared pytest setup. Fixtures that start real parts live in ``tests/fixtures/*.py``;
every module there is loaded as a plugin, so a new part needs no edit here."""

from __future__ import annotations

from pathlib import Path

import pytest

pytest_plugins = sorted(
    f"tests.fixtures.{path.stem}"
    for path in (Path(__file__).parent / "fixtures").glob("*.py")
    if not path.name.startswith("_")
)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Tests marked ``slow`` first (otherwise in their usual order): with ``-n 2`` the long
    ones then run side by side from the start, and the many short ones that follow fill in
    whichever worker is free, instead of one worker still running a 30-s test at the end
    while the other is idle. xdist's workers each collect and sort the same way."""
    items.sort(key=lambda item: item.get_closest_marker("slow") is None)
