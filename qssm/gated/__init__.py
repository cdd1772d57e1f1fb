"""Chunked gated (LSTM-style) recurrence of the Gated models (docs/models.md)."""
from .recurrence import ChunkedGatedRecurrence

__all__ = ["ChunkedGatedRecurrence"]
