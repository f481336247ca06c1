"""The validation corpus: sessions from thermoregulation models that are not heatmon's own
(JOS-3 and the two-node Gagge model from pythermalcomfort), with realistic wearable signals.
Regenerate with ``python -m bench.corpus``; see docs/research.md."""
