"""Applications built on the public API: the medical demo (``deepscm demo``) and the
Morpho-digits case study (``deepscm demo --example morpho``), and the digit-class Diff-SCM
study (:mod:`deepscm.studies.digit_class`, ``benchmarks/digit_class.py``)."""
