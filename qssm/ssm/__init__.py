"""Selective scan (reference loop + chunked fast path) and the Mamba/Hydra blocks."""
from .scan import SCAN_IMPLS, scan_reference, selective_scan

__all__ = ["selective_scan", "scan_reference", "SCAN_IMPLS"]
