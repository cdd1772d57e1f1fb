"""Check the design document's claims against a results folder; scaling plots; the report."""
