"""Applications built on the public API: the medical demo (``deepscm demo``) and the
Morpho-digits case study (``deepscm demo --example morpho``)."""
