"""`qssm micro --device cuda`: what a GPU node is measured on, and the GPU targets of docs/performance.md.

Side by side in one run on one GPU:
  scan     fwd+bwd at B=32, di=256, N=16: the Triton kernel (kernel auto on CUDA) at L=512..8192,
           the torch twin (kernel torch) and the reference loop at L=2048; achieved bytes/s (the
           least traffic any fwd+bwd must move, divided by the time) as a share of the GPU's
           memory bandwidth;
  conv     the blocks' causal conv + SiLU fwd+bwd (B=32, T=2048, C=256): Triton vs cuDNN;
  circuit  both circuits fwd+bwd at q=8, 12, 16, B=4096: the Triton kernels vs the batched torch
           statevector twin on CUDA and PennyLane lightning.gpu (adjoint, per sample: run at a
           smaller batch, compared per sample);
  train    a training step of each model at the seed config (B=32, T=100) and at T=4096.
  ddp      DDP step time and scaling efficiency over the node's GPUs, world size 1, 2, 4, .. n
           (bench/micro/ddp.py: one `qssm train` cell per model and world size, nccl).
"""
from __future__ import annotations

# HBM bandwidth in bytes/s by device name (vendor figures); unknown devices get no share
BANDWIDTH = {"H200": 4.8e12, "H100 SXM": 3.35e12, "H100 PCIe": 2.0e12, "H100": 3.35e12, "GH200": 4.0e12,
             "A100-SXM4-80GB": 2.04e12, "A100 80GB PCIe": 1.94e12, "A100": 1.56e12, "L40S": 0.864e12,
             "V100": 0.9e12, "A10": 0.6e12, "L4": 0.3e12}
CIRCUIT_Q = (8, 12, 16)
CIRCUIT_B = 4096
LIGHTNING_B = {8: 256, 12: 64, 16: 8}
TRAIN_T = (100, 4096)


def sizes(quick: bool):
    """Scan and step sizes of the GPU run (docs/performance.md; --quick: a run of about a minute)."""
    from .suite import Sizes

    qs = CIRCUIT_Q[:2] if quick else CIRCUIT_Q
    return Sizes(scan_bdn=(32, 256, 16), scan_ref_L=(512,) if quick else (2048,),
                 scan_fast_L=(512, 2048) if quick else (2048, 4096, 8192), scan_target_L=512 if quick else 2048,
                 circuit_q=qs, ssm_batch={q: CIRCUIT_B for q in qs}, gated_batch={q: CIRCUIT_B for q in qs},
                 lightning_batch={q: LIGHTNING_B[q] for q in qs}, fallback_batch={}, train_B=32, train_T=100,
                 budget_s=0.5 if quick else 2.0, single_run_above_s=5.0 if quick else 20.0, quick=quick)


def bandwidth(name: str) -> float | None:
    for key, bw in BANDWIDTH.items():
        if key.lower() in name.lower():
            return bw
    return None


def scan_traffic_bytes(b: int, length: int, di: int, n: int, elem: int = 4) -> int:
    """Least traffic of one fwd+bwd: forward reads x, Δ, B, C and writes y; backward reads x, Δ,
    B, C, dy and writes dx, dΔ, dB, dC (states, A and D are negligible at N << L)."""
    bl = b * length
    return elem * (bl * (2 * di + 2 * n) + bl * di + bl * (3 * di + 2 * n) + bl * (2 * di + 2 * n))


def lightning_gpu_available() -> bool:
    try:
        import pennylane as qml

        qml.device("lightning.gpu", wires=2)
    except Exception:
        return False
    return True


def plan(sizes, common: dict, *, lightning_gpu: bool, sections) -> list:
    """The CUDA measurements, as (key, spec, timeout_s)."""
    from .suite import MODELS, QUANTUM, SEED_CONFIG

    out = []
    b, di, n = sizes.scan_bdn
    timeout = 600
    if "scan" in sections:
        for length in sizes.scan_ref_L:
            out.append((("scan", "reference", length), {**common, "kind": "scan", "impl": "reference", "B": b,
                                                         "L": length, "di": di, "N": n}, timeout))
        for length in sizes.scan_fast_L:
            out.append((("scan", "chunked", length), {**common, "kind": "scan", "impl": "chunked", "B": b,
                                                       "L": length, "di": di, "N": n}, timeout))
        out.append((("scan", "chunked-torch", sizes.scan_target_L),
                     {**common, "kind": "scan", "impl": "chunked", "kernel": "torch", "B": b,
                      "L": sizes.scan_target_L, "di": di, "N": n}, timeout))
        for pick in ("triton", "cudnn"):
            out.append((("conv", pick, sizes.scan_target_L),
                        {**common, "kind": "conv", "conv": pick, "B": b, "L": sizes.scan_target_L, "C": di,
                         "saved_bytes": False}, timeout))
    if "circuit" in sections:
        for circuit in ("ssm", "gated"):
            for q in sizes.circuit_q:
                base = {**common, "kind": "circuit", "circuit": circuit, "q": q, "l": 2, "saved_bytes": False}
                out.append((("circuit", circuit, "torch", q),
                            dict(base, backend="torch", qml_device=None, B=sizes.ssm_batch[q]), timeout))
                out.append((("circuit", circuit, "twin", q),  # the batched torch statevector
                            dict(base, backend="torch", kernel="twin", qml_device=None, B=sizes.ssm_batch[q]),
                            timeout))
                if lightning_gpu:
                    out.append((("circuit", circuit, "lightning.gpu", q),
                                dict(base, backend="pennylane", qml_device="lightning.gpu",
                                     B=sizes.lightning_batch[q]), timeout))
    if "train" in sections:
        for model in MODELS:
            for t in TRAIN_T:
                extra = {"quantum_backend": "torch"} if model in QUANTUM else {}
                spec = {**common, "kind": "train", "model": model, "B": sizes.train_B,
                        "config": {**SEED_CONFIG, "n_timesteps": t, "scan": "chunked", **extra}}
                out.append((("train", model, f"T={t}"), spec, timeout))
    return out


def _ok(r):
    return r is not None and r.get("status") == "ok"


def _med(r):
    return r["time_median_s"] if _ok(r) else None


def derive(sizes, results: dict, meta: dict) -> dict:
    """GPU rows and the GPU targets of docs/performance.md from {key: result}."""
    from .suite import fit_slope

    b, di, n = sizes.scan_bdn
    bw = bandwidth(meta.get("gpu", ""))
    scan = []
    for key, r in sorted(((k, r) for k, r in results.items() if k[0] == "scan"), key=lambda kv: (kv[0][1], kv[0][2])):
        t = _med(r)
        traffic = scan_traffic_bytes(b, key[2], di, n)
        scan.append({"impl": key[1], "L": key[2], "kernel": r.get("kernel"), "time_s": t,
                     "bytes_per_s": traffic / t if t else None,
                     "bw_share": traffic / t / bw if t and bw else None, "status": r.get("status")})
    target_l = sizes.scan_target_L
    tri = _med(results.get(("scan", "chunked", target_l)))
    twin = _med(results.get(("scan", "chunked-torch", target_l)))
    ref = _med(results.get(("scan", "reference", target_l)))
    pts = [(k[2], _med(r)) for k, r in results.items() if k[:2] == ("scan", "chunked") and k[2] >= target_l]
    slope = fit_slope([p for p in pts if p[1]])
    conv = {k[1]: _med(r) for k, r in results.items() if k[0] == "conv"}
    circuits = []
    for key in sorted({(k[1], k[3]) for k in results if k[0] == "circuit"}):
        tr, lg = results.get(("circuit", key[0], "torch", key[1])), results.get(("circuit", key[0], "lightning.gpu", key[1]))
        tw = results.get(("circuit", key[0], "twin", key[1]))
        ratio = None
        if _med(tr) and _med(lg):
            ratio = (_med(lg) / lg["B"]) / (_med(tr) / tr["B"])  # per sample
        circuits.append({"circuit": key[0], "q": key[1], "torch": tr, "twin": tw, "lightning.gpu": lg, "ratio": ratio,
                         "vs_twin": _med(tw) / _med(tr) if _med(tw) and _med(tr) else None})
    train = [{"model": k[1], "T": int(k[2].split("=")[1]), "time_s": _med(r), "peak": r.get("peak_mem_bytes"),
              "status": r.get("status")} for k, r in results.items() if k[0] == "train"]

    def verdict(v, ok):
        return "n/a" if v is None else ("PASS" if ok else "FAIL")

    targets = []
    sp = twin / tri if tri and twin else None
    targets.append({"target": f"scan L={target_l}: torch twin / Triton >= 50x", "value": sp,
                    "verdict": verdict(sp, sp is not None and sp >= 50)})
    targets.append({"target": f"scan L={target_l}: Triton fwd+bwd <= 3 ms", "value": None if tri is None else tri * 1e3,
                    "unit": "ms", "verdict": verdict(tri, tri is not None and tri <= 3e-3)})
    targets.append({"target": f"scan: slope of Triton time in L <= 1.05 from L={target_l} to {max(sizes.scan_fast_L)}",
                    "value": slope, "verdict": verdict(slope, slope is not None and slope <= 1.05)})
    for c in circuits:
        if c["q"] == 12:
            targets.append({"target": f"{c['circuit']} circuit q=12, B={CIRCUIT_B}: lightning.gpu / torch-CUDA >= 50x "
                                      "(per sample)", "value": c["ratio"],
                            "verdict": verdict(c["ratio"], c["ratio"] is not None and c["ratio"] >= 50)})
    for row in train:
        if row["T"] == 100:
            v = row["time_s"]
            targets.append({"target": f"{row['model']} step (B={sizes.train_B}, T=100) <= 15 ms",
                            "value": None if v is None else v * 1e3, "unit": "ms",
                            "verdict": verdict(v, v is not None and v <= 15e-3)})
    return {"scan": scan, "scan_slope": slope, "scan_vs_twin": sp, "scan_vs_reference": ref / tri if ref and tri else None,
            "conv": conv, "circuit": circuits, "train": train, "targets": targets, "bandwidth": bw}


def _t(v):
    return "-" if v is None else (f"{v * 1e3:.3f} ms" if v < 1 else f"{v:.2f} s")


def render(sizes, d: dict, meta: dict) -> str:
    b, di, n = sizes.scan_bdn
    lines = [f"qssm micro --device cuda -- {meta.get('gpu', '?')}, torch {meta['torch']}, "
             f"GPU kernels: {meta.get('gpu_kernels', '?')}",
             f"memory bandwidth used for shares: {d['bandwidth'] / 1e12:.2f} TB/s" if d["bandwidth"] else
             "memory bandwidth of this GPU unknown: no shares", "",
             f"Selective scan fwd+bwd (B={b}, di={di}, N={n}, float32)",
             f"{'impl':<14} {'kernel':<7} {'L':>6} {'time':>11} {'GB/s':>8} {'share':>6}"]
    for r in d["scan"]:
        gbs = f"{r['bytes_per_s'] / 1e9:.0f}" if r["bytes_per_s"] else "-"
        share = f"{100 * r['bw_share']:.0f}%" if r["bw_share"] else "-"
        lines.append(f"{r['impl']:<14} {r['kernel'] or '-':<7} {r['L']:>6} {_t(r['time_s']):>11} {gbs:>8} {share:>6}"
                     + ("" if r["status"] == "ok" else f"  ({r['status']})"))
    if d["conv"]:
        lines += ["", "Causal conv + SiLU fwd+bwd: " + ", ".join(f"{k} {_t(v)}" for k, v in d["conv"].items())]
    if d["circuit"]:
        lines += ["", "Circuits fwd+bwd (l=2): the fast path (kernel named) vs the torch statevector twin and "
                      "lightning.gpu (per sample)"]
        for c in d["circuit"]:
            tr, lg = c["torch"], c["lightning.gpu"]
            ratio = f"{c['ratio']:.0f}x" if c["ratio"] else "-"
            vs_twin = f"{c['vs_twin']:.1f}x" if c["vs_twin"] else "-"
            lines.append(f"  {c['circuit']:>5} q={c['q']:<3} {(tr or {}).get('kernel', '-'):<6} B={(tr or {}).get('B', '-')} "
                         f"{_t(_med(tr)):>11} | twin {_t(_med(c['twin'])):>11} ({vs_twin}) | lightning.gpu "
                         f"B={lg.get('B') if lg else '-'} {_t(_med(lg)) if lg else 'not installed':>11} ({ratio})")
    if d["train"]:
        lines += ["", f"Training step (B={sizes.train_B}, seed config)"]
        for r in d["train"]:
            lines.append(f"  {r['model']:<20} T={r['T']:<5} {_t(r['time_s']):>11}"
                         + ("" if r["status"] == "ok" else f"  ({r['status']})"))
    lines += ["", "Targets (docs/performance.md, GPU)"]
    for t in d["targets"]:
        v = t["value"]
        val = "-" if v is None else (f"{v:.2f} {t['unit']}" if t.get("unit") else
                                    (f"{v:.3f}" if "slope" in t["target"] else f"{v:.1f}x"))
        lines.append(f"  {t['verdict']:<6} {val:>10}  {t['target']}")
    return "\n".join(lines)
