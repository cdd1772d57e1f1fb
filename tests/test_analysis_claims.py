"""Every claim of the registry, on fabricated results folders with planted answers: each verdict
comes out supported in a world built to agree with the document, contradicted in one built to
disagree, and inconclusive when the data are missing or too noisy."""
from __future__ import annotations

import numpy as np
import pytest

from analysis import catalog as C
from analysis import stats as S
from analysis.checks import evaluate
from analysis.claims import BY_ID, CLAIMS
from analysis.fabricate import TIME_SCALE, fake_row, planted_rows, write_results
from analysis.io import load_results

N_BOOT = 300
PARAM_EXACT = ("params.seed_counts", "params.relative_sizes")

# A world that agrees with the document everywhere it can: the §8.2 counts except the classical
# pair, which is made 2x so that "Hydra ~2x parameters" holds too (the document's own table has
# ClassicalHydra < ClassicalMamba).
TWICE = {**C.DOC_PARAMS, "classical_mamba": 150_000, "classical_hydra": 300_000}
AGREE = dict(seeds=(0, 1), n_params=TWICE)
# A world that disagrees with every claim: times ∝ T², ∝ (q·2^q)^½ and ∝ (T/C)²; Gated memory
# linear, SSM memory ∝ T^½, memory ∝ q·2^q, Hydra = Mamba; circuits a fifth of the step; every
# ordering reversed. (A series flat in x cannot contradict a growth claim: a fixed cost may hide the
# growth in the measured range; see test_flat_series_leave_growth_claims_open.)
DISAGREE = dict(
    time_T=2.0, time_q=0.5, time_C=-2.0, mem_T_gated=1.0, mem_T_ssm=0.5, mem_q=1.0, seeds=(0, 1),
    circuit_share=0.2,
    time_scale={"classical_mamba": 10, "classical_hydra": 8, "quantum_mamba_gated": 6,
                "quantum_hydra_gated": 6, "quantum_mamba_ssm": 1, "quantum_hydra_ssm": 2},
    mem_scale={"quantum_mamba_gated": 32, "quantum_hydra_gated": 32, "classical_mamba": 4,
               "classical_hydra": 4, "quantum_mamba_ssm": 1, "quantum_hydra_ssm": 1},
    n_params={**C.DOC_PARAMS, "quantum_mamba_gated": 900_000},
    accuracy={m: (0.95 if m in C.GATED else 0.5) for m in C.MODEL_NAMES},
)


def _noisy_world():
    rng = np.random.default_rng(1)
    same = {m: 1.0 for m in TIME_SCALE}
    return planted_rows(seeds=(0, 1, 2), noise=lambda i, metric: float(np.exp(rng.normal(0, 1.5))),
                        spread=0.9, time_scale=same, mem_scale=same, accuracy={m: 0.7 for m in same})


def _verdicts(folder) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for r in evaluate(load_results(folder).ok, n_boot=N_BOOT):
        out.setdefault(r.claim.id, []).append(r.verdict)
    return out


@pytest.fixture(scope="module")
def worlds(tmp_path_factory):
    made = {}
    for name, rows in [("agree", planted_rows(**AGREE)), ("disagree", planted_rows(**DISAGREE)),
                       ("noisy", _noisy_world()), ("document", planted_rows()),
                       ("sparse", [fake_row("classical_mamba", seq_len=64, step_time_median_s=0.01,
                                            peak_mem_train_bytes=1e6, d_model=64)])]:
        folder = tmp_path_factory.mktemp(name)
        write_results(folder, rows)
        made[name] = _verdicts(folder)
    return made


# ---------------------------------------------------------------------------------- registry
def test_registry_is_complete_data():
    required = ["params.seed_counts", "params.relative_sizes", "params.hydra_2x", "params.order",
                "time.linear_T.train", "time.linear_T.infer", "time.qubits.train", "time.chunk.train",
                "mem.gated_flat_T.train", "mem.gated_flat_T.infer", "mem.ssm_linear_T.train",
                "mem.ssm_linear_T.infer", "mem.hydra_2x.train", "mem.hydra_2x.infer",
                "mem.quantum_minimal.train", "mem.quantum_minimal.infer",
                "speed.classical_fastest.train", "speed.gated_fastest_quantum.train",
                "speed.qhs_slowest.train", "mem.qmg_lowest.train", "mem.qhs_highest.train"]
    assert set(required) <= set(BY_ID)
    for c in CLAIMS:
        assert c.section.startswith("§") and c.quote and c.measurement and c.test
        assert "{metric}" not in c.measurement and c.metric
        assert c.kind in ("slope", "ratio", "order", "exact", "relative", "share")
        names = set(c.models) | {m for p in c.pairs for m in p} | {m for t in c.tiers for m in t}
        assert names and names <= set(C.MODEL_NAMES)
        if c.kind == "share":
            assert c.metric == "circuit_share" and 0 < c.expected < 1
        if c.kind == "slope":
            assert c.x in ("seq_len", "n_qubits", "chunk_size") and c.expected is not None and c.tol > 0
    # the document's table, as docs/models.md restates it
    assert C.DOC_PARAMS == {"quantum_mamba_gated": 49_296, "quantum_hydra_gated": 92_639,
                            "classical_mamba": 242_954, "classical_hydra": 240_842,
                            "quantum_mamba_ssm": 402_684, "quantum_hydra_ssm": 834_377}


# ------------------------------------------------------------------------------- both ways
@pytest.mark.parametrize("claim_id", [c.id for c in CLAIMS if c.id not in PARAM_EXACT])
def test_supported_when_planted_to_agree(worlds, claim_id):
    assert worlds["agree"][claim_id] == [S.SUPPORTED]


@pytest.mark.parametrize("claim_id", [c.id for c in CLAIMS])
def test_contradicted_when_planted_to_disagree(worlds, claim_id):
    assert worlds["disagree"][claim_id] == [S.CONTRADICTED]


@pytest.mark.parametrize("claim_id", [c.id for c in CLAIMS if not c.implementation_free])
def test_inconclusive_when_too_noisy(worlds, claim_id):
    assert worlds["noisy"][claim_id] == [S.INCONCLUSIVE]


@pytest.mark.parametrize("claim_id", [c.id for c in CLAIMS])
def test_inconclusive_when_data_are_missing(worlds, claim_id):
    assert worlds["sparse"][claim_id] == [S.INCONCLUSIVE]


def test_the_documents_own_table(worlds):
    doc = worlds["document"]
    assert doc["params.seed_counts"] == [S.SUPPORTED]
    assert doc["params.relative_sizes"] == [S.SUPPORTED]
    assert doc["params.order"] == [S.SUPPORTED]
    # ClassicalHydra 240,842 vs ClassicalMamba 242,954: not ~2x
    assert doc["params.hydra_2x"] == [S.CONTRADICTED]
    assert worlds["agree"]["params.seed_counts"] == [S.CONTRADICTED]  # counts changed on purpose


def _one(rows, claim_id, **kw):
    import tempfile
    with tempfile.TemporaryDirectory() as d:
        write_results(d, rows)
        return [r for r in evaluate(load_results(d).ok, n_boot=N_BOOT, **kw) if r.claim.id == claim_id]


def test_params_exact_notes_the_authors_later_code():
    rows = [fake_row(m, n_params=C.LATER_CODE_PARAMS.get(m, C.DOC_PARAMS[m])) for m in C.MODEL_NAMES]
    (res,) = _one(rows, "params.seed_counts")
    assert res.verdict == S.CONTRADICTED
    assert "later public code" in res.subject_evidence["QMambaSSM"]
    assert res.subject_verdicts["CMamba"] == S.SUPPORTED


def test_params_only_counted_at_the_seed_config():
    rows = [fake_row(m, d_model=64, hidden_dim=32, n_params=C.DOC_PARAMS[m] // 2) for m in C.MODEL_NAMES]
    (res,) = _one(rows, "params.seed_counts")
    assert res.verdict == S.INCONCLUSIVE and res.suggestions and "seed config" in res.suggestions[0]
    assert res.suggestion_yaml["d_model"] == 128


# ----------------------------------------------------------------------- implementations
def test_each_implementation_gets_its_own_verdict():
    fast = planted_rows(scan="chunked", qubits=(4,), chunks=(16,))
    slow = planted_rows(models=C.SSM, scan="reference", time_T=2.0, qubits=(4,), chunks=(16,))
    res = _one(fast + slow, "time.linear_T.train")
    by_impl = {r.implementation: r.verdict for r in res}
    assert by_impl == {"cpu/float32 · scan=chunked · quantum=torch": S.SUPPORTED,
                       "cpu/float32 · scan=reference · quantum=torch": S.CONTRADICTED}
    assert {r.impl["scan"] for r in res} == {"chunked", "reference"}
    ref = next(r for r in res if r.impl["scan"] == "reference")
    # the Gated models have no scan: their cells count under both implementations
    assert ref.subject_verdicts["QMambaGated"] == S.SUPPORTED
    assert ref.subject_verdicts["CMamba"] == S.CONTRADICTED


def test_implementation_names_backend_and_pennylane_device():
    rows = planted_rows(models=C.GATED, quantum_backend="pennylane", qml_device="lightning.qubit")
    (res,) = _one(rows, "time.chunk.train")
    assert res.implementation == "cpu/float32 · quantum=pennylane:lightning.qubit"
    assert res.verdict == S.SUPPORTED
    rows = planted_rows(models=C.CLASSICAL, device="cuda", qubits=(), chunks=())
    (res,) = _one(rows, "mem.ssm_linear_T.infer")
    assert res.implementation.startswith("cuda/float32 · scan=chunked") and "quantum" not in res.implementation


def test_non_ok_rows_do_not_count():
    rows = planted_rows(models=C.CLASSICAL, qubits=(), chunks=())
    bad = [fake_row("classical_mamba", seq_len=T, status=st, error="boom", step_time_median_s=1e3 * T ** 3)
           for T, st in [(64, "failed"), (128, "oom"), (256, "timeout"), (512, "nan")]]
    (res,) = _one(rows + bad, "time.linear_T.train")
    assert res.subject_verdicts["CMamba"] == S.SUPPORTED


def test_several_series_any_contradiction_wins():
    a = planted_rows(models=("classical_mamba",), batch_size=8, qubits=(), chunks=())
    b = planted_rows(models=("classical_mamba",), batch_size=16, time_T=2.0, qubits=(), chunks=())
    res = [r for r in _one(a + b, "time.linear_T.train")]
    assert res[0].subject_verdicts["CMamba"] == S.CONTRADICTED
    contexts = {c.context: c.verdict for c in res[0].checks if c.subject == "CMamba"}
    assert contexts == {"batch_size=8": S.SUPPORTED, "batch_size=16": S.CONTRADICTED}


def test_ordering_needs_two_contexts_to_fail_unless_there_is_one():
    # QHydraSSM slowest everywhere except at one T (a stray context): not a contradiction
    rows = planted_rows(qubits=(4,), chunks=(16,))
    for r in rows:
        if r["model"] == "quantum_hydra_ssm" and r["seq_len"] == 64:
            r["step_time_median_s"] *= 1e-3
            r["step_time_min_s"] *= 1e-3
            r["step_time_p90_s"] *= 1e-3
    (res,) = _one(rows, "speed.qhs_slowest.train")
    assert res.verdict == S.INCONCLUSIVE
    # one context only: a violation there decides
    rows = [r for r in rows if r["seq_len"] == 64]
    (res,) = _one(rows, "speed.qhs_slowest.train")
    assert res.verdict == S.CONTRADICTED


def test_ordering_partial_contexts_and_missing_models():
    rows = planted_rows(models=("classical_mamba", "classical_hydra", "quantum_hydra_ssm"),
                        qubits=(4,), chunks=(16,))
    (res,) = _one(rows, "speed.qhs_slowest.train")
    assert res.verdict == S.INCONCLUSIVE and "no cells of" in res.evidence
    assert res.subject_verdicts == {"ordering": S.INCONCLUSIVE}
    assert any("quantum_mamba_gated" in s for s in res.suggestions)


def test_orderings_compare_at_the_seed_config_values():
    # quantum models swept over q: the ordering uses q=4 only (seed config), not the q sweep
    rows = planted_rows(time_q=3.0)
    (res,) = _one(rows, "speed.classical_fastest.train")
    assert res.verdict == S.SUPPORTED


def test_accuracy_needs_seeds_and_uses_the_largest_T():
    rows = planted_rows(seeds=(0,), qubits=(4,), chunks=(16,))
    (res,) = _one(rows, "accuracy.long_seq")
    assert res.verdict == S.INCONCLUSIVE
    assert res.suggestion_yaml["grid"]["seed"] == [0, 1, 2]
    # SSM models better only at the largest T: that is the one that counts
    rows = planted_rows(seeds=(0, 1), qubits=(4,), chunks=(16,),
                        accuracy={m: 0.6 for m in C.MODEL_NAMES})
    for r in rows:
        if r["seq_len"] == 256 and r["model"] in C.SSM:
            r["accuracy"] = 0.95
    (res,) = _one(rows, "accuracy.long_seq")
    assert res.verdict == S.SUPPORTED


def test_missing_data_suggests_cells(worlds):
    rows = planted_rows(qubits=(4,), chunks=(16,))
    res = {r.claim.id: r for r in _one_all(rows)}
    q = res["time.qubits.train"]
    assert q.verdict == S.INCONCLUSIVE
    assert q.suggestion_yaml["grid"]["n_qubits"] == [2, 4, 6, 8]
    assert set(q.suggestion_yaml["grid"]["model"]) == set(C.QUANTUM)
    assert "n_qubits" not in {k for k in q.suggestion_yaml if k != "grid"}
    c = res["time.chunk.train"]
    assert c.suggestion_yaml["grid"]["chunk_size"] == [4, 8, 16, 32]
    assert "scan" not in c.suggestion_yaml  # Gated models have no scan


def _one_all(rows):
    import tempfile
    with tempfile.TemporaryDirectory() as d:
        write_results(d, rows)
        return evaluate(load_results(d).ok, n_boot=N_BOOT)


def test_gpu_suggestions_go_to_large_T():
    rows = [fake_row("classical_mamba", device="cuda", seq_len=1024, step_time_median_s=0.01)]
    res = {r.claim.id: r for r in _one_all(rows)}
    assert res["time.linear_T.train"].suggestion_yaml["grid"]["seq_len"][-1] == 8192


def test_suggested_sweeps_are_valid_sweep_files():
    sweep = pytest.importorskip("bench.sweep")
    rows = [fake_row(m, seq_len=64, step_time_median_s=0.01, peak_mem_train_bytes=1e6)
            for m in ("quantum_mamba_ssm", "quantum_hydra_ssm", "quantum_mamba_gated", "classical_mamba")]
    results = _one_all(rows)
    lacking = [r for r in results if r.suggestion_yaml]
    assert {r.claim.id for r in lacking} >= {"time.linear_T.train", "params.hydra_2x", "mem.tiers.train"}
    for r in lacking:
        parsed = sweep.parse_sweep(r.suggestion_yaml, source=r.claim.id)
        assert parsed.cells, r.claim.id
    by_id = {r.claim.id: r for r in results}
    # only the models that lack data are suggested
    assert by_id["params.seed_counts"].suggestion_yaml["grid"]["model"] == ["quantum_hydra_gated", "classical_hydra"]
    assert by_id["params.hydra_2x"].suggestion_yaml["grid"] == {"model": ["quantum_hydra_gated",
                                                                          "classical_hydra"]}
    assert "quantum_hydra_gated" in by_id["mem.tiers.train"].suggestions[0]


def test_clamped_quantum_steps_and_chunk_size_form_one_series():
    # the harness stores min(requested, T): quantum_steps=32 at T=16 is stored as 16
    rows = planted_rows(models=("quantum_mamba_ssm", "quantum_mamba_gated"), seq_lens=(16, 32, 64, 128),
                        qubits=(4,), chunks=(4, 8, 16), fixed_T=128)
    for r in rows:
        if r["model"] == "quantum_mamba_ssm":
            r["quantum_steps"] = min(32, r["seq_len"])
        if r["model"] == "quantum_mamba_gated":
            r["chunk_size"] = min(r["chunk_size"], r["seq_len"])
    (res,) = _one(rows, "mem.ssm_linear_T.train")
    qms = [c for c in res.checks if c.subject == "QMambaSSM"]
    assert len(qms) == 1 and qms[0].n_cells == 4 and qms[0].verdict == S.SUPPORTED
    (res,) = _one(rows, "mem.gated_flat_T.train")
    qmg = [c for c in res.checks if c.subject == "QMambaGated"]
    assert [c.n_cells for c in qmg] == [4] and qmg[0].verdict == S.SUPPORTED
    (res,) = _one(rows, "time.chunk.train")
    assert res.subject_verdicts["QMambaGated"] == S.SUPPORTED


@pytest.mark.parametrize("name", ["claims", "claims-gpu"])
def test_shipped_claims_sweeps_give_every_claim_a_verdict(name, tmp_path):
    """The cells of bench/sweeps/claims*.yaml, with planted document-consistent metrics, leave no
    claim without a verdict: none is inconclusive for the main implementation (the chunked scan),
    and every claim is decided for at least one implementation."""
    import dataclasses

    from analysis.fabricate import planted_row
    sweep = pytest.importorskip("bench.sweep")
    cells = sweep.load_sweep(name).cells
    rows = []
    for i, cell in enumerate(cells):
        fields = {k: v for k, v in dataclasses.asdict(cell).items() if k in schema_cell_fields()}
        model = fields.pop("model")
        rows.append(planted_row(model, index=i, **fields))
    write_results(tmp_path, rows)
    results = evaluate(load_results(tmp_path).ok, n_boot=N_BOOT)
    by_claim: dict[str, list] = {}
    for r in results:
        by_claim.setdefault(r.claim.id, []).append(r)
    assert set(by_claim) == set(BY_ID)
    for cid, rs in by_claim.items():
        assert any(r.verdict != S.INCONCLUSIVE for r in rs), (cid, [r.evidence for r in rs])
        main = [r for r in rs if r.impl.get("scan") in (None, "chunked")]
        assert main and all(r.verdict != S.INCONCLUSIVE for r in main), (cid, [r.evidence for r in main])


def schema_cell_fields():
    from bench import schema
    return set(schema.CELL_FIELD_NAMES)


def test_flat_series_leave_growth_claims_open():
    """Times flat in T over the range: the growth is not visible above the fixed cost, so "linear in
    T" is neither supported nor contradicted, and the report says to extend the range."""
    rows = planted_rows(models=("classical_mamba",), time_T=0.0, seeds=(0, 1))
    (res,) = _one(rows, "time.linear_T.train")
    assert res.verdict == S.INCONCLUSIVE
    (check,) = [c for c in res.checks if c.subject == "CMamba"]
    assert "extend the range" in check.reason
    assert any("seq_len" in line for line in res.suggestions)


def test_params_order_is_judged_at_the_seed_config_only():
    """The §8.2 order is a statement about the table's widths: at small widths (learning.yaml's)
    the Gated models' circuits outweigh the classical models, which does not contradict it."""
    small = {"quantum_mamba_gated": 12_000, "quantum_hydra_gated": 19_681, "classical_mamba": 17_284,
             "classical_hydra": 16_724, "quantum_mamba_ssm": 30_000, "quantum_hydra_ssm": 60_000}
    rows = [fake_row(m, d_model=32, hidden_dim=16, n_params=n) for m, n in small.items()]
    (res,) = _one(rows, "params.order")
    assert res.verdict == S.INCONCLUSIVE
    rows += [fake_row(m) for m in C.MODEL_NAMES]          # the seed config: the document's counts
    (res,) = _one(rows, "params.order")
    assert res.verdict == S.SUPPORTED
