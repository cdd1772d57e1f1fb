"""Check the design document's claims against a results folder; scaling plots; the report.

``qssm analyze RESULTS [--out DIR]`` (``analysis.cli``) reads a results folder, evaluates every
claim of the registry and writes ``report.md``, ``claims.csv`` and the plots (default folder
``RESULTS/_report``). Modules:

- ``claims``    the registry: each measurable claim of the document as data (section, quote,
                measurement, test)
- ``catalog``   model names, the fields each model uses, the §8.2 table and the seed config
- ``io``        reading a results folder (pyarrow; refuses mixed schema versions, reports corrupt
                files); ``bench.schema`` is the only ``bench`` module imported anywhere here
- ``scaling``   overhead-aware scaling models (Extra-P normal form) for the complexity claims
- ``stats``     log–log slopes with bootstrap CIs, ratios, pairwise order; the written tolerance
                rules (``stats.RULES``)
- ``checks``    applying the rules to the rows: a verdict per claim and implementation, with the
                evidence and, when data are lacking, the cells to add; built from ``findings``
                (the result types), ``rows`` (grouping and selecting rows), ``kinds`` (one
                evaluator per kind of claim) and ``suggest`` (the cells to add)
- ``plots``     seaborn figures (Agg canvas, PNG)
- ``report``    report.md and claims.csv, written atomically
- ``fabricate`` results folders with planted answers (tests, demonstrations)
- ``errors``    ``AnalysisError`` (a ValueError): the user-facing error
"""
