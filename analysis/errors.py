"""The one user-facing error of ``analysis``.

``AnalysisError`` is a ``ValueError``: a results folder that cannot be analysed (missing, empty,
no readable file, mixed schema versions, an unusable ``--out``). The ``qssm`` CLI prints it as one
line ``qssm: error: ...`` and exits with status 2. Anything else escaping ``analysis`` is a bug.
"""
from __future__ import annotations


class AnalysisError(ValueError):
    """A results folder or an output folder that cannot be used, described in one line."""
