"""What evaluating a claim produces: ``Check`` (one sub-check: a model series, a matched pair
series or an ordered pair) and ``ClaimResult`` (the verdict of one claim on one implementation,
with its checks, evidence and, when data are lacking, the cells to add).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

from . import stats as S
from .claims import Claim


@dataclass
class Check:
    claim_id: str
    implementation: str
    subject: str
    context: str
    verdict: str
    reason: str
    estimate: float = math.nan
    ci_lo: float = math.nan
    ci_hi: float = math.nan
    expected: float = math.nan
    n_cells: int = 0
    detail: str = ""            # x range, ratios per point, medians per model...


@dataclass
class ClaimResult:
    claim: Claim
    implementation: str
    impl: dict
    verdict: str
    subject_verdicts: dict[str, str]
    subject_evidence: dict[str, str]
    checks: list[Check]
    suggestions: list[str] = field(default_factory=list)
    suggestion_yaml: dict | None = None

    @property
    def evidence(self) -> str:
        parts = []
        for s, v in self.subject_verdicts.items():
            ev = self.subject_evidence.get(s, "")
            parts.append(f"{s}: {_MARK[v]} {ev}".rstrip())
        return "; ".join(parts)


_MARK = {S.SUPPORTED: "✓", S.CONTRADICTED: "✗", S.INCONCLUSIVE: "?"}
