"""The registry of the design document's measurable claims, as data.

Each ``Claim`` carries the section it comes from, a short quote, the measurement it needs and its
test. ``kind`` selects the test (rules in ``analysis.stats``):

* ``slope``   — a scaling model ``c0 + c1·x^i·log2(x)^j`` of ``metric`` against ``x``
  (``x_transform="q2q"``: against q·2^q; ``"T/C"``: against seq_len / chunk_size) for each model
  of ``models`` (``analysis.scaling``); the leading term's exponent is ``expected`` ± ``tol``, with
  the log powers in ``log_powers``; the log–log slope is shown beside.
* ``share``   — the mean of a share column (``circuit_share``) at each size of each model's
  series is above ``expected`` ("dominated by").
* ``ratio``   — ratio of ``metric`` between the two models of each pair in ``pairs``; expected
  ``expected`` within a factor ``tol``.
* ``order``   — ``tiers`` of models, ascending in ``metric`` (each tier below the next).
* ``exact``   — ``n_params`` at the seed config equals the document's §8.2 count.
* ``relative``— ``n_params`` at the seed config divided by QuantumMambaGated's equals the §8.2
  "Relative Size" within ``tol`` (relative).

Claims stated for training and inference memory (or time) appear once per phase, with ids
ending ``.train``, ``.infer`` (and ``.saved`` for the bytes saved for backward: training
activations without the parameters and optimiser state that a CPU peak also counts).
"""
from __future__ import annotations

from dataclasses import dataclass, replace

from . import catalog as C
from . import stats

PHASE_METRIC = {
    ("time", "train"): "step_time_median_s",
    ("time", "infer"): "infer_time_median_s",
    ("mem", "train"): "peak_mem_train_bytes",
    ("mem", "infer"): "peak_mem_infer_bytes",
    ("mem", "saved"): "saved_bytes_per_step",
}
PHASE_WORDS = {"train": "training", "infer": "inference", "saved": "training (saved for backward)"}


@dataclass(frozen=True)
class Claim:
    id: str
    section: str
    quote: str
    kind: str
    metric: str
    measurement: str
    models: tuple[str, ...] = ()                      # slope / exact / relative subjects
    pairs: tuple[tuple[str, str], ...] = ()           # ratio: (numerator, denominator)
    tiers: tuple[tuple[str, ...], ...] = ()           # order: ascending in metric
    x: str | None = None                              # slope: the swept cell field
    x_transform: str = "identity"                     # or "q2q": x -> q * 2**q; "T/C": seq_len / x
    log_powers: tuple[int, ...] = (0,)                # slope: log2(x)^j factors the claim allows
    expected: float | None = None
    tol: float | None = None
    phase: str | None = None                          # train / infer / saved
    tie_abs: float = 0.0                              # order: absolute tie tolerance
    min_reps: int = 1                                 # order: replicates needed per model
    at_largest_seq_len: bool = False                  # order: only the largest T of each context
    implementation_free: bool = False                 # n_params: pool all implementations
    at_seed_config: bool = False                      # only cells at the §8.2 seed config (its widths)

    @property
    def test(self) -> str:
        k = self.kind
        if k == "slope":
            xs = {"q2q": "q·2^q", "T/C": "T/C"}.get(self.x_transform, self.x)
            if self.expected == 0:
                return (f"scaling model c0 + c1·f({xs}) of {self.metric}: growth over the range within "
                        f"what an exponent {self.tol:g} gives (97.5% of resamples)")
            logs = "" if self.log_powers == (0,) else " (log factors allowed)"
            xp = xs if xs.isidentifier() else f"({xs})"
            return (f"scaling model c0 + c1·{xp}^i·log2({xs})^j of {self.metric}: leading exponent i "
                    f"within {self.expected:g} ± {self.tol:g}{logs} in >= 90% of resamples")
        if k == "share":
            return (f"mean {self.metric} at each size: 95% CI above {self.expected:g} "
                    f"(the circuits are the larger part of a training step)")
        if k == "ratio":
            return (f"ratio of {self.metric} (matched cells): 95% CI within "
                    f"[{self.expected / self.tol:.2f}, {self.expected * self.tol:.2f}]")
        if k == "order":
            tiers = " < ".join("{" + ", ".join(C.short(m) for m in t) + "}" for t in self.tiers)
            tie = (f"ties within {self.tie_abs:g}" if self.tie_abs
                   else f"ties within {stats.TIE_REL:.0%}")
            reps = f"; >= {self.min_reps} replicates per model" if self.min_reps > 1 else ""
            return (f"{self.metric}: {tiers}; each pair compared per context (non-overlapping "
                    f"intervals, {tie}{reps}); a pair fails when violated in >= 2 contexts (or its only one) "
                    f"and more often than it holds")
        if k == "exact":
            return "n_params at the seed config equals the §8.2 count exactly"
        if k == "relative":
            return (f"n_params / n_params(QuantumMambaGated) at the seed config within "
                    f"{self.tol:.0%} of the §8.2 'Relative Size'")
        raise ValueError(k)

    @property
    def subjects(self) -> tuple[str, ...]:
        if self.kind == "ratio":
            return tuple(f"{C.short(a)}/{C.short(b)}" for a, b in self.pairs)
        if self.kind == "order":
            return ("ordering",)
        if self.kind == "relative":
            return tuple(m for m in self.models if m != "quantum_mamba_gated")
        return self.models

    @property
    def title(self) -> str:
        return self.quote if self.phase is None else f"{self.quote} [{PHASE_WORDS[self.phase]}]"


def _phases(base: Claim, family: str, phases: tuple[str, ...]) -> list[Claim]:
    out = []
    for ph in phases:
        metric = PHASE_METRIC[(family, ph)]
        out.append(replace(base, id=f"{base.id}.{ph}", phase=ph, metric=metric,
                           measurement=base.measurement.replace("{metric}", metric)))
    return out


ALL6 = C.MODEL_NAMES
QMG, QHG, CM, CH, QMS, QHS = ("quantum_mamba_gated", "quantum_hydra_gated", "classical_mamba",
                              "classical_hydra", "quantum_mamba_ssm", "quantum_hydra_ssm")
_T_SWEEP = "{metric} of all six models at >= 3 values of seq_len (all else fixed)"

CLAIMS: tuple[Claim, ...] = tuple([
    # ---- §8.2 parameters -------------------------------------------------------------------
    Claim("params.seed_counts", "§8.2",
          "QuantumMambaGated 49,296 · QuantumHydraGated 92,639 · ClassicalMamba 242,954 · "
          "ClassicalHydra 240,842 · QuantumMambaSSM 402,684 · QuantumHydraSSM 834,377",
          kind="exact", metric="n_params", models=ALL6, implementation_free=True,
          measurement="n_params of each model at the seed config (q=4, l=2, D=64, d=128, N=16, "
                      "L=2, O=10, H=64)"),
    Claim("params.relative_sizes", "§8.2",
          "Relative Size 1.0× / 1.9× / 4.9× / 4.9× / 8.2× / 16.9× (QuantumMambaGated baseline)",
          kind="relative", metric="n_params", models=ALL6, tol=stats.RELATIVE_SIZE_TOL,
          implementation_free=True,
          measurement="n_params of each model and of QuantumMambaGated at the seed config"),
    Claim("params.hydra_2x", "§8.2",
          "Hydra variants have ~2× parameters of Mamba due to bidirectional processing",
          kind="ratio", metric="n_params", pairs=C.HYDRA_MAMBA_PAIRS, expected=2.0,
          tol=stats.RATIO_FACTOR, implementation_free=True,
          measurement="n_params of each Hydra model and its Mamba twin at one config"),
    Claim("params.order", "§8.2/§8.10",
          "Fewest parameters: QuantumMambaGated, runner-up QuantumHydraGated; "
          "QuantumHydraSSM largest (table order)",
          kind="order", metric="n_params", tiers=((QMG,), (QHG,), (CH, CM), (QMS,), (QHS,)),
          implementation_free=True, at_seed_config=True,
          measurement="n_params of all six models at the seed config (the table's widths: at small "
                      "widths the Gated models' circuits outweigh the classical models)"),
    # ---- §8.3 / §2.3 time ---------------------------------------------------------------------
    *_phases(Claim("time.linear_T", "§8.3/§2.3",
                   "All models have linear complexity in sequence length T (Hydra: 'still linear!')",
                   kind="slope", metric="", models=ALL6, x="seq_len", expected=1.0,
                   tol=stats.SLOPE_TOL, measurement=_T_SWEEP), "time", ("train", "infer")),
    *_phases(Claim("time.qubits", "§8.3",
                   "Quantum models: O(T × n_qubits × 2^n_qubits), dominated by circuit simulation",
                   kind="slope", metric="", models=C.QUANTUM, x="n_qubits", x_transform="q2q",
                   expected=1.0, tol=stats.SLOPE_TOL,
                   measurement="{metric} of the four quantum models at >= 3 values of n_qubits "
                               "(fixed seq_len, all else fixed)"), "time", ("train", "infer")),
    *_phases(Claim("time.chunk", "§8.3",
                   "Gated models: O(T/C × n_qubits × 2^n_qubits): chunked models process T/C chunks",
                   kind="slope", metric="", models=C.GATED, x="chunk_size", x_transform="T/C",
                   expected=1.0, tol=stats.SLOPE_TOL,
                   measurement="{metric} of the two Gated models at >= 3 values of chunk_size "
                               "(fixed seq_len, all else fixed)"), "time", ("train", "infer")),
    Claim("time.circuit_dominated", "§8.3",
          "Quantum models: ... dominated by circuit simulation",
          kind="share", metric="circuit_share", models=C.QUANTUM, expected=0.5,
          measurement="circuit_share of the four quantum models (cells with circuit_probe_steps > 0), "
                      ">= 2 cells (seeds or repeats) per size"),
    # ---- §8.4 memory ---------------------------------------------------------------------------
    *_phases(Claim("mem.gated_flat_T", "§8.4",
                   "Gated models: memory O(B × C × d_model) — 'only chunk in memory' (flat in T)",
                   kind="slope", metric="", models=C.GATED, x="seq_len", expected=0.0,
                   tol=stats.FLAT_TOL,
                   measurement="{metric} of the two Gated models at >= 3 values of seq_len"),
             "mem", ("train", "infer", "saved")),
    *_phases(Claim("mem.ssm_linear_T", "§8.4",
                   "SSM models: memory O(B × T × d_model) — 'store full sequence'",
                   kind="slope", metric="", models=C.SSM, x="seq_len", expected=1.0,
                   tol=stats.SLOPE_TOL,
                   measurement="{metric} of the four SSM models at >= 3 values of seq_len"),
             "mem", ("train", "infer", "saved")),
    *_phases(Claim("mem.hydra_2x", "§8.4",
                   "Hydra variants require ~2× memory for bidirectional states",
                   kind="ratio", metric="", pairs=C.HYDRA_MAMBA_PAIRS, expected=2.0,
                   tol=stats.RATIO_FACTOR,
                   measurement="{metric} of each Hydra model and its Mamba twin at the same cells"),
             "mem", ("train", "infer", "saved")),
    *_phases(Claim("mem.quantum_minimal", "§8.4",
                   "Quantum circuit simulation adds minimal memory overhead (states are measured "
                   "immediately): flat in q·2^q",
                   kind="slope", metric="", models=C.QUANTUM, x="n_qubits", x_transform="q2q",
                   expected=0.0, tol=stats.FLAT_TOL,
                   measurement="{metric} of the four quantum models at >= 3 values of n_qubits"),
             "mem", ("train", "infer", "saved")),
    # ---- §8.6 / §8.7 / §8.10 orderings ---------------------------------------------------------
    *_phases(Claim("speed.classical_fastest", "§8.3/§8.6",
                   "Classical models are fastest per-step (Speed: Fast vs Medium/Slow/Slowest)",
                   kind="order", metric="", tiers=((CM, CH), (QMG, QHG, QMS, QHS)),
                   measurement="{metric} of all six models at the same cells"),
             "time", ("train", "infer")),
    *_phases(Claim("speed.gated_fastest_quantum", "§8.6/§8.7",
                   "Gated models are the fastest quantum models (Medium vs Slow/Slowest)",
                   kind="order", metric="", tiers=((QMG, QHG), (QMS, QHS)),
                   measurement="{metric} of the four quantum models at the same cells"),
             "time", ("train", "infer")),
    *_phases(Claim("speed.qhs_slowest", "§8.6/§8.7",
                   "QuantumHydraSSM is the slowest (Speed: Slowest; 'Slowest inference')",
                   kind="order", metric="", tiers=((QMG, QHG, CM, CH, QMS), (QHS,)),
                   measurement="{metric} of all six models at the same cells"),
             "time", ("train", "infer")),
    *_phases(Claim("speed.fastest_inference", "§8.10",
                   "Fastest inference: ClassicalMamba, runner-up ClassicalHydra",
                   kind="order", metric="", tiers=((CM,), (CH,), (QMG, QHG, QMS, QHS)),
                   measurement="{metric} of all six models at the same cells"),
             "time", ("infer",)),
    *_phases(Claim("mem.qmg_lowest", "§8.10",
                   "Lowest memory: QuantumMambaGated, runner-up QuantumHydraGated",
                   kind="order", metric="", tiers=((QMG,), (QHG,), (CM, CH, QMS, QHS)),
                   measurement="{metric} of all six models at the same cells"),
             "mem", ("train", "infer")),
    *_phases(Claim("mem.qhs_highest", "§8.6/§8.7",
                   "QuantumHydraSSM has the highest memory usage",
                   kind="order", metric="", tiers=((QMG, QHG, CM, CH, QMS), (QHS,)),
                   measurement="{metric} of all six models at the same cells"),
             "mem", ("train", "infer")),
    *_phases(Claim("mem.tiers", "§8.4/§8.6",
                   "Memory: Gated Low < Classical Medium < QuantumMambaSSM High < QuantumHydraSSM "
                   "Highest",
                   kind="order", metric="", tiers=((QMG, QHG), (CM, CH), (QMS,), (QHS,)),
                   measurement="{metric} of all six models at the same cells"),
             "mem", ("train", "infer")),
    # ---- §8.5 long sequences -------------------------------------------------------------------
    Claim("accuracy.long_seq", "§8.5",
          "SSM models (Excellent) learn long sequences better than Gated/LSTM models (Good)",
          kind="order", metric="accuracy", tiers=(C.GATED, C.SSM), tie_abs=stats.TIE_ABS_ACCURACY,
          min_reps=2, at_largest_seq_len=True,
          measurement="held-out accuracy of all six models, >= 2 seeds each, at the largest seq_len "
                      "of each task"),
])

BY_ID = {c.id: c for c in CLAIMS}
assert len(BY_ID) == len(CLAIMS), "claim ids must be unique"

# Statements of the document that a results folder cannot check (listed in the report).
NOT_MEASURABLE = (
    ("§4.4/§5.4", "exponential expressivity / 2^n-dimensional feature space"),
    ("§8.5", "HiPPO theory 'ensures' long-range dependencies (a theoretical statement)"),
    ("§8.2", "quantum models add ~50-100K parameters for quantum circuits (circuit parameters are "
             "not recorded separately; one superposition module holds 6-10K, the Hydra quantum models three: docs/models.md)"),
    ("§8.6/§8.10", "streaming, theory alignment, best classification, best expressivity"),
)
