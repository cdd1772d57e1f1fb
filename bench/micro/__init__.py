"""`qssm micro`: micro-benchmarks of the fast paths (chunked scan, torch statevector, training
steps) against their references, side by side in one run, with the targets of docs/performance.md.

Modules: cli (the command), suite (what is measured, derived ratios, targets, the table),
runner (a fresh child process per measurement), measure (the measurement inside the child).
"""
