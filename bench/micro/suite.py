"""What `qssm micro` measures, the ratios it derives, and the targets of docs/performance.md.

Every ratio compares two measurements of the same run (side by side, same machine, same threads).
Full sizes are those of docs/performance.md; `--quick` shrinks them to finish in under two minutes on two cores (the
targets are then evaluated at the quick sizes and say so).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

SEED_CONFIG = dict(n_qubits=4, qlcu_layers=2, n_timesteps=100, feature_dim=64, d_model=128, d_state=16,
                   n_layers=2, output_dim=10, dropout=0.1, hidden_dim=64, chunk_size=16, layout="BDT")
MODELS = ("classical_mamba", "classical_hydra", "quantum_mamba_ssm", "quantum_hydra_ssm",
          "quantum_mamba_gated", "quantum_hydra_gated")
QUANTUM = MODELS[2:]
# docs/performance.md: the document author's classical models per training step at the seed config, B=32, T=100,
# one thread, with the literal-loop scan (measured elsewhere: not a side-by-side figure)
AUTHOR_STEP_S = {"classical_mamba": 11.3, "classical_hydra": 12.1}
GIB = 2 ** 30


@dataclass
class Sizes:
    scan_bdn: tuple  # (B, di, N)
    scan_ref_L: tuple
    scan_fast_L: tuple
    scan_target_L: int  # where the speed / memory ratios are judged
    circuit_q: tuple
    ssm_batch: dict  # q -> B
    gated_batch: dict
    lightning_batch: dict  # q -> B (lightning's adjoint runs per sample)
    fallback_batch: dict  # q -> B: default.qubit's SSM circuit again at this batch, used (per sample)
    #                       when the full batch does not fit in memory
    train_B: int
    train_T: int
    budget_s: float  # timed repeats stop after about this long (at least one)
    single_run_above_s: float  # a first run slower than this is the only one
    quick: bool = False
    notes: list = field(default_factory=list)


FULL = Sizes(scan_bdn=(32, 256, 16), scan_ref_L=(512, 1024, 2048), scan_fast_L=(512, 1024, 2048, 4096, 8192),
             scan_target_L=2048, circuit_q=(4, 8, 12), ssm_batch={4: 4096, 8: 4096, 12: 4096},
             gated_batch={4: 4096, 8: 4096, 12: 512}, lightning_batch={4: 4096, 8: 4096, 12: 4096},
             fallback_batch={12: 1024},
             train_B=32, train_T=100, budget_s=6.0, single_run_above_s=20.0)
QUICK = Sizes(scan_bdn=(16, 256, 16), scan_ref_L=(128, 256, 512), scan_fast_L=(128, 256, 512, 1024, 2048),
              scan_target_L=512, circuit_q=(4, 8, 12), ssm_batch={4: 1024, 8: 512, 12: 128},
              gated_batch={4: 1024, 8: 256, 12: 32}, lightning_batch={4: 128, 8: 64, 12: 8}, fallback_batch={},
              train_B=8, train_T=32, budget_s=0.6, single_run_above_s=1.5, quick=True)


def pennylane_available() -> bool:
    try:
        import pennylane  # noqa: F401
    except ImportError:
        return False
    return True


def lightning_available() -> bool:
    try:
        import pennylane_lightning  # noqa: F401
    except ImportError:
        return False
    return True


def build_plan(sizes: Sizes, *, device: str, threads: int, lightning: bool, sections=("scan", "circuit", "train"),
               pennylane: bool = True):
    """The measurements, as (key, spec, timeout_s)."""
    plan = []
    common = {"device": device, "threads": threads, "budget_s": sizes.budget_s,
              "single_run_above_s": sizes.single_run_above_s}
    b, di, n = sizes.scan_bdn
    timeout = 240 if sizes.quick else 600
    if "scan" in sections:
        for length in sizes.scan_ref_L:
            # the reference loop keeps ~5 (B, di, N) tensors per step for backward (about 9 GB at L=2048)
            plan.append((("scan", "reference", length),
                         {**common, "kind": "scan", "impl": "reference", "B": b, "L": length, "di": di, "N": n,
                          "predicted_peak_bytes": 6 * length * b * di * n * 4}, timeout))
        for length in sizes.scan_fast_L:
            plan.append((("scan", "chunked", length),
                         {**common, "kind": "scan", "impl": "chunked", "B": b, "L": length, "di": di, "N": n},
                         timeout))
        if device == "cpu":
            # the device-agnostic tensor-op kernel (what CUDA runs), beside the compiled CPU one
            plan.append((("scan", "chunked-torch", sizes.scan_target_L),
                         {**common, "kind": "scan", "impl": "chunked", "kernel": "torch", "B": b,
                          "L": sizes.scan_target_L, "di": di, "N": n}, timeout))
    if "circuit" in sections:
        backends = [("torch", None)] + ([("pennylane", "default.qubit")] if pennylane else [])
        if pennylane and lightning and device == "cpu":
            backends.append(("pennylane", "lightning.qubit"))
        for circuit, batches in (("ssm", sizes.ssm_batch), ("gated", sizes.gated_batch)):
            for q in sizes.circuit_q:
                for backend, qdev in backends:
                    bsz = batches[q]
                    if qdev == "lightning.qubit":
                        bsz = min(bsz, sizes.lightning_batch[q])
                    spec = {**common, "kind": "circuit", "circuit": circuit, "backend": backend,
                            "qml_device": qdev, "q": q, "l": 2, "B": bsz, "saved_bytes": False}
                    if backend == "pennylane":
                        spec["device"] = "cpu"  # PennyLane's CPU simulators
                        if circuit == "gated" and qdev == "default.qubit":
                            # measured: 10.5 GB of RSS at q=12, B=512, i.e. ~5 kB per amplitude
                            spec["predicted_peak_bytes"] = 5000 * bsz * 2 ** q
                    plan.append((("circuit", circuit, qdev or backend, q), spec, timeout))
                    fb = sizes.fallback_batch.get(q)
                    if circuit == "ssm" and qdev == "default.qubit" and fb and fb < bsz:
                        plan.append((("circuit", circuit, "default.qubit@fallback", q), dict(spec, B=fb), timeout))
    if "train" in sections:
        config = dict(SEED_CONFIG, n_timesteps=sizes.train_T)
        for model in MODELS:
            variants = ([("scan=chunked", {"scan": "chunked"}), ("scan=reference", {"scan": "reference"})]
                        if model not in QUANTUM else
                        [("torch", {"quantum_backend": "torch", "scan": "chunked"})]
                        + ([("pennylane", {"quantum_backend": "pennylane", "qml_device": "default.qubit",
                                           "scan": "chunked"})] if pennylane else []))
            for label, extra in variants:
                spec = {**common, "kind": "train", "model": model, "B": sizes.train_B,
                        "config": {**config, **extra}}
                plan.append((("train", model, label), spec, timeout))
            if model in QUANTUM:  # the floor needs no PennyLane
                # the same step with zero-cost circuits: the floor under any circuit backend
                spec = {**common, "kind": "train", "model": model, "B": sizes.train_B, "circuits": "free",
                        "config": {**config, "quantum_backend": "torch", "scan": "chunked"}}
                plan.append((("train", model, "circuits=free"), spec, timeout))
    return plan


# --------------------------------------------------------------------------- derived figures

def _ok(r):
    return r is not None and r.get("status") == "ok"


def _ratio(a, b, key):
    if _ok(a) and _ok(b) and a.get(key) and b.get(key):
        return a[key] / b[key]
    return None


def fit_slope(points):
    """Least-squares slope of log(time) against log(L)."""
    pts = [(math.log(x), math.log(y)) for x, y in points if x > 0 and y and y > 0]
    if len(pts) < 2:
        return None
    mx = sum(p[0] for p in pts) / len(pts)
    my = sum(p[1] for p in pts) / len(pts)
    sxx = sum((p[0] - mx) ** 2 for p in pts)
    return sum((p[0] - mx) * (p[1] - my) for p in pts) / sxx if sxx else None


def derive(sizes: Sizes, results: dict) -> dict:
    """Ratios and target verdicts from {key: result}."""
    out = {"scan": [], "circuit": [], "train": [], "targets": []}
    get = results.get
    # ---- scan
    for length in sorted({k[2] for k in results if k[0] == "scan" and k[1] != "chunked-torch"}):
        ref, fast = get(("scan", "reference", length)), get(("scan", "chunked", length))
        out["scan"].append({
            "L": length, "reference": ref, "chunked": fast,
            "speedup": _ratio(ref, fast, "time_median_s"),
            "peak_mem_ratio": _ratio(ref, fast, "peak_mem_bytes"),
            "saved_ratio": _ratio(ref, fast, "saved_bytes"),
        })
    fast_pts = [(k[2], r["time_median_s"]) for k, r in results.items()
                if k[0] == "scan" and k[1] == "chunked" and _ok(r)]
    slope = fit_slope(fast_pts)
    out["scan_slope"] = slope
    torch_k = next(((k[2], r) for k, r in results.items() if k[:2] == ("scan", "chunked-torch")), None)
    if torch_k:
        length, r = torch_k
        out["scan_torch_kernel"] = {"L": length, "result": r,
                                    "speedup": _ratio(r, get(("scan", "chunked", length)), "time_median_s")}
    kernels = {r.get("kernel") for k, r in results.items() if k[:2] == ("scan", "chunked") and _ok(r)}
    out["scan_kernel"] = "/".join(sorted(k for k in kernels if k)) or None
    out["scan_slope_range"] = (min(p[0] for p in fast_pts), max(p[0] for p in fast_pts)) if fast_pts else None
    # ---- circuits
    for key in sorted({(k[1], k[3]) for k in results if k[0] == "circuit"}, key=lambda t: (t[0] != "ssm", t[1])):
        circuit, q = key
        torch_r = get(("circuit", circuit, "torch", q))
        row = {"circuit": circuit, "q": q, "torch": torch_r}
        for qdev in ("default.qubit", "lightning.qubit"):
            ref = get(("circuit", circuit, qdev, q))
            fallback = get(("circuit", circuit, qdev + "@fallback", q))
            if ref is not None and not _ok(ref) and _ok(fallback):
                row[qdev + "_full"] = ref  # e.g. OOM at the full batch
                ref = fallback
            if ref is not None:
                row[qdev] = ref
                ratio = _ratio(ref, torch_r, "time_median_s")
                if ratio is not None and ref.get("B") and torch_r.get("B"):
                    ratio *= torch_r["B"] / ref["B"]  # per sample where the batches differ
                row[f"ratio_{qdev}"] = ratio
        out["circuit"].append(row)
    # ---- training steps
    for model in MODELS:
        rows = {k[2]: r for k, r in results.items() if k[0] == "train" and k[1] == model}
        if not rows:
            continue
        row = {"model": model, "variants": rows}
        if model in QUANTUM:
            free = rows.pop("circuits=free", None)
            row["ratio"] = _ratio(rows.get("pennylane"), rows.get("torch"), "time_median_s")
            row["ratio_label"] = "pennylane / torch"
            if free is not None:
                row["free"] = free
                # Amdahl: the ratio a zero-cost circuit simulator would give
                row["bound"] = _ratio(rows.get("pennylane"), free, "time_median_s")
        else:
            row["ratio"] = _ratio(rows.get("scan=reference"), rows.get("scan=chunked"), "time_median_s")
            row["ratio_label"] = "scan reference / chunked"
            fast = rows.get("scan=chunked")
            if _ok(fast) and not sizes.quick:
                row["vs_author"] = AUTHOR_STEP_S[model] / fast["time_median_s"]
        out["train"].append(row)
    out["targets"] = targets(sizes, out, results)
    return out


def must_hold_bytes(b: int, length: int, di: int, n: int, elem: int = 4) -> int:
    """Bytes any scan fwd+bwd must hold beyond its inputs: y, dx, dΔ (B, L, di) and dB, dC (B, L, N)."""
    return elem * (3 * b * length * di + 2 * b * length * n)


def _verdict(value, ok):
    if value is None:
        return "n/a"
    return "PASS" if ok else "FAIL"


def targets(sizes: Sizes, d: dict, results: dict) -> list:
    note = " (quick sizes)" if sizes.quick else ""
    t = []
    row = next((r for r in d["scan"] if r["L"] == sizes.scan_target_L), None)
    sp = row["speedup"] if row else None
    t.append({"target": f"scan L={sizes.scan_target_L}: time reference/chunked >= 3x{note}", "value": sp,
              "verdict": _verdict(sp, sp is not None and sp >= 3)})
    b, di, n = sizes.scan_bdn
    fast = results.get(("scan", "chunked", sizes.scan_target_L))
    pk = fast.get("peak_mem_bytes") if _ok(fast) else None
    must = must_hold_bytes(b, sizes.scan_target_L, di, n)
    over = pk / must if pk else None
    t.append({"target": f"scan L={sizes.scan_target_L}: chunked peak memory growth <= 2.5x the bytes any fwd+bwd "
                        f"must hold (y and the inputs' gradients: {must / 2**20:.0f} MiB){note}", "value": over,
              "verdict": _verdict(over, over is not None and over <= 2.5)})
    big = max(sizes.scan_fast_L)
    r = results.get(("scan", "chunked", big))
    pk = r.get("peak_mem_bytes") if _ok(r) else None
    t.append({"target": f"scan L={big}: chunked peak memory < 2 GiB{note}",
              "value": None if pk is None else pk / GIB, "unit": "GiB",
              "verdict": _verdict(pk, pk is not None and pk < 2 * GIB)})
    s = d.get("scan_slope")
    lo_hi = d.get("scan_slope_range")
    span = f" between L={lo_hi[0]} and {lo_hi[1]}" if lo_hi else ""
    t.append({"target": f"scan: slope of chunked time in L <= 1.05{span}{note}", "value": s,
              "verdict": _verdict(s, s is not None and s <= 1.05)})
    for q, need in ((8, 30), (12, 200)):
        row = next((r for r in d["circuit"] if r["circuit"] == "ssm" and r["q"] == q), None)
        v = row.get("ratio_default.qubit") if row else None
        bsz = sizes.ssm_batch.get(q)
        if row and row.get("default.qubit_full") is not None and v is not None:
            note_q = f" (default.qubit OOM at B={bsz}; per sample at B={row['default.qubit'].get('B')})"
        else:
            note_q = ""
        t.append({"target": f"SSM circuit q={q}, B={bsz}: default.qubit/torch >= {need}x{note}{note_q}", "value": v,
                  "verdict": _verdict(v, v is not None and v >= need)})
    for row in d["train"]:
        if row["model"] in QUANTUM and "gated" not in row["model"]:
            # the SSM models give circuits only quantum_steps timesteps: judged against their floor
            torch_r, free = row["variants"].get("torch"), row.get("free")
            v = _ratio(torch_r, free, "time_median_s")
            t.append({"target": f"{row['model']} step: torch / circuit-free step <= 1.15 (circuits <= 15% of the "
                                f"step){note}", "value": v, "verdict": _verdict(v, v is not None and v <= 1.15)})
        elif row["model"] in QUANTUM:
            v = row.get("ratio")
            t.append({"target": f"{row['model']} step: pennylane/torch >= 10x{note}", "value": v,
                      "verdict": _verdict(v, v is not None and v >= 10)})
        else:
            v = row.get("vs_author")
            t.append({"target": f"{row['model']} step: author's {AUTHOR_STEP_S[row['model']]} s (docs/performance.md, "
                                f"not side by side) / chunked >= 50x", "value": v,
                      "verdict": "n/a (quick sizes)" if sizes.quick else _verdict(v, v is not None and v >= 50)})
    return t


# --------------------------------------------------------------------------- the table

def _t(r):
    if r is None:
        return "-"
    if r.get("status") != "ok":
        extra = " (predicted)" if r.get("predicted") else ""
        return r.get("status", "?").upper() + extra
    s = r["time_median_s"]
    txt = f"{s * 1e3:.1f} ms" if s < 1 else f"{s:.2f} s"
    return txt + ("" if r.get("warm", True) else "*")


def _m(r, key="peak_mem_bytes"):
    if r is None or r.get("status") != "ok" or r.get(key) is None:
        return "-"
    v = r[key]
    return f"{v / 2**20:.0f} MiB" if v < GIB else f"{v / GIB:.2f} GiB"


def _x(v):
    return "-" if v is None else (f"{v:.1f}x" if v < 100 else f"{v:.0f}x")


def render(sizes: Sizes, d: dict, meta: dict) -> str:
    lines = []
    w = lines.append
    w(f"qssm micro ({'quick' if sizes.quick else 'full'} sizes) -- device {meta['device']}, "
      f"{meta['threads']} thread(s), torch {meta['torch']}, pennylane {meta.get('pennylane', '-')}")
    if meta.get("native"):
        w(f"native CPU kernels (qssm.native): {meta['native']}")
    w("times: median of the timed steps after a warm-up step (* = one run after a small-batch warm-up); "
      f"memory: {meta.get('mem_method', 'peak')} of a fresh process per measurement")
    if d["scan"]:
        b, di, n = sizes.scan_bdn
        w("")
        w(f"Selective scan, fwd+bwd (B={b}, di={di}, N={n}, A per channel, float32)")
        w(f"{'L':>6} | {'reference':>10} {'peak':>9} {'saved':>9} | {'chunked':>10} {'peak':>9} {'saved':>9} |"
          f" {'speed':>7} {'peak':>7} {'saved':>7}")
        for r in d["scan"]:
            w(f"{r['L']:>6} | {_t(r['reference']):>10} {_m(r['reference']):>9} {_m(r['reference'], 'saved_bytes'):>9} |"
              f" {_t(r['chunked']):>10} {_m(r['chunked']):>9} {_m(r['chunked'], 'saved_bytes'):>9} |"
              f" {_x(r['speedup']):>7} {_x(r['peak_mem_ratio']):>7} {_x(r['saved_ratio']):>7}")
        if d.get("scan_kernel"):
            w(f"chunked ran on the {d['scan_kernel']} kernel (qssm.ssm.scan: native = compiled CPU kernel)")
        if d.get("scan_slope") is not None:
            lo, hi = d["scan_slope_range"]
            w(f"chunked: fitted slope of log time in log L over L={lo}..{hi}: {d['scan_slope']:.3f}")
        tk = d.get("scan_torch_kernel")
        if tk:
            w(f"chunked on the torch kernel (tensor ops; what CUDA runs) at L={tk['L']}: {_t(tk['result'])}, "
              f"peak {_m(tk['result'])}; native is {_x(tk['speedup'])} faster")
    if d["circuit"]:
        w("")
        w("Circuits, fwd+bwd of B independent circuits (l=2, float32 inputs); ratio = reference time / torch time")
        w(f"{'circuit':>7} {'q':>3} {'B':>5} | {'torch':>10} | {'default.qubit':>13} {'ratio':>7} |"
          f" {'lightning.qubit':>15} {'ratio':>7}")
        for r in d["circuit"]:
            bsz = (sizes.ssm_batch if r["circuit"] == "ssm" else sizes.gated_batch)[r["q"]]
            lq = r.get("lightning.qubit")
            lb = f" (B={min(bsz, sizes.lightning_batch[r['q']])})" if lq is not None and \
                min(bsz, sizes.lightning_batch[r["q"]]) != bsz else ""
            dq = _t(r.get("default.qubit"))
            if r.get("default.qubit_full") is not None:
                dq = f"{_t(r['default.qubit_full'])}; B={r['default.qubit'].get('B')}: {dq}"
            w(f"{r['circuit']:>7} {r['q']:>3} {bsz:>5} | {_t(r['torch']):>10} |"
              f" {dq:>13} {_x(r.get('ratio_default.qubit')):>7} |"
              f" {(_t(lq) + lb) if lq is not None else '-':>15} {_x(r.get('ratio_lightning.qubit')):>7}")
        if any(r.get("default.qubit_full") is not None for r in d["circuit"]):
            w("where default.qubit did not fit at the full batch, its run at the smaller batch shown gives a "
              "per-sample ratio.")
        if any(r.get("lightning.qubit") is not None for r in d["circuit"]):
            w("lightning.qubit (adjoint, per sample) runs at the smaller batch shown; its ratio is per sample "
              "(time scaled by the batch ratio).")
    if d["train"]:
        w("")
        w(f"Training step at the seed config (B={sizes.train_B}, T={sizes.train_T}; forward, cross-entropy, "
          "backward, Adam)")
        w(f"{'model':<20} | {'variant A':<16} {'time':>10} {'peak':>9} | {'variant B':<16} {'time':>10} {'peak':>9} |"
          f" {'ratio B/A':>9}")
        for row in d["train"]:
            names = list(row["variants"])
            a = names[0]
            b = names[1] if len(names) > 1 else None
            ra, rb = row["variants"][a], row["variants"].get(b) if b else None
            extra = f"  (author {AUTHOR_STEP_S[row['model']]} s / this: {row['vs_author']:.0f}x)" \
                if row.get("vs_author") else ""
            w(f"{row['model']:<20} | {a:<16} {_t(ra):>10} {_m(ra):>9} | {b or '-':<16} {_t(rb):>10} {_m(rb):>9} |"
              f" {_x(row.get('ratio')):>9}{extra}")
        free = [r for r in d["train"] if r.get("free") is not None]
        if free:
            w("Amdahl floor: the torch step with the circuits replaced by zero-cost stand-ins of the same shapes;")
            w("pennylane / floor is the largest ratio any circuit simulator could give at this config.")
            for row in free:
                w(f"  {row['model']:<20} floor {_t(row['free']):>10}   pennylane / floor {_x(row.get('bound')):>7}")
    w("")
    w("Targets (docs/performance.md)")
    for t in d["targets"]:
        v = t["value"]
        val = "-" if v is None else (f"{v:.2f} {t['unit']}" if t.get("unit") else
                                    (f"{v:.3f}" if "slope" in t["target"] else _x(v)))
        w(f"  {t['verdict']:<18} {val:>10}  {t['target']}")
    failed = [f"{k}: {r.get('status')} ({r.get('error', '')})" for k, r in meta.get("results", {}).items()
              if r.get("status") not in ("ok",)]
    if failed:
        w("")
        w("Not measured:")
        for f in failed:
            w("  " + f)
    return "\n".join(lines)
