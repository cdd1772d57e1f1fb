"""Chunked gated (LSTM-style) recurrence of the Gated models (MODELS.md §4)."""
from .recurrence import ChunkedGatedRecurrence

__all__ = ["ChunkedGatedRecurrence"]
