"""One build step on top of pyproject.toml: the dashboard travels inside the package.

``dashboards/web/`` stays the source of truth in the repository (an editable install serves
it from there). A wheel (``pip install .``, the Dockerfile, the packaging test) gets a copy
in ``monitor/web/static/`` with the same layout: the pages, ``assets/``, and the uPlot files
the dashboard serves from ``node_modules/uplot/`` (installed by ``npm ci`` in
``scripts/setup.sh``; the Dockerfile runs it in its first stage).
"""

from __future__ import annotations

import shutil
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

ROOT = Path(__file__).resolve().parent
WEB = ROOT / "dashboards" / "web"
FILES = (
    "*.html",
    "manifest.webmanifest",
    "sw.js",
    "assets/*.js",
    "assets/*.css",
    "assets/*.svg",
    "node_modules/uplot/LICENSE",
    "node_modules/uplot/dist/uPlot.iife.min.js",
    "node_modules/uplot/dist/uPlot.min.css",
)
REQUIRED = (
    "caregiver.html",
    "patient.html",
    "sw.js",
    "manifest.webmanifest",
    "node_modules/uplot/dist/uPlot.iife.min.js",
)


class BuildWithDashboard(build_py):
    """``build_py``, then the dashboard's files into ``monitor/web/static``."""

    def run(self) -> None:
        super().run()
        if getattr(self, "editable_mode", False):
            return  # an editable install serves dashboards/web itself
        missing = [name for name in REQUIRED if not (WEB / name).is_file()]
        if missing:
            raise SystemExit(
                f"heatmon build: {', '.join(missing)} missing in dashboards/web "
                "(run `npm ci` there, or scripts/setup.sh, before building the package)"
            )
        target = Path(self.build_lib) / "monitor" / "web" / "static"
        shutil.rmtree(target, ignore_errors=True)
        for pattern in FILES:
            for source in sorted(WEB.glob(pattern)):
                dest = target / source.relative_to(WEB)
                dest.parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(source, dest)


setup(cmdclass={"build_py": BuildWithDashboard})
