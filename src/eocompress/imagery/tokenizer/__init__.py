"""The learned imagery codec's tokenizer: a factorized-prior transform model, its data and its Lightning trainer.

``fp_model`` (analysis/synthesis transforms and the learned prior), ``fp_data`` (training crops),
``fp_train`` (``eocompress tokenizer train``), ``standardise`` (shared by training and encoding) and
``device`` (the one ``--device`` check). The codec that uses it is :mod:`eocompress.imagery.codec.learned`.
"""

from __future__ import annotations

from eocompress._extras import require

require("imagery", "the imagery tokenizer")
