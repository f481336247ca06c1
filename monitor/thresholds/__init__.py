"""Personal thresholds that learn, with the clinician in charge.

``store.py`` keeps symptom onsets, suggestions and decisions in SQLite; ``learner.py`` is
the ``thresholds`` sink that feeds it from the service and applies accepted thresholds to
the running engine. The maths is pure, in :mod:`monitor.engine.learning`.
"""
