"""heatmon: warns people with MS to cool down before exercise heat brings on symptoms.

heatmon is not a medical device. Thresholds are set with a clinician.
"""

__version__ = "0.1.0"
