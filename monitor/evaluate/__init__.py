"""``heatmon evaluate``: score detection against a measured core temperature.

:mod:`~monitor.evaluate.metrics` (per-session metrics, pure), :mod:`~monitor.evaluate.summary`
(totals, targets, JSON), :mod:`~monitor.evaluate.run` (replay with the core held out, read the
truth), :mod:`~monitor.evaluate.report` (PNG and HTML). How a study uses it: docs/research.md.
"""

from monitor.evaluate.run import Evaluation, evaluate

__all__ = ["Evaluation", "evaluate"]
