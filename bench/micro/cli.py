"""`qssm micro`: side-by-side micro-benchmarks of the fast paths against their references.

    qssm micro [--quick] [--json] [--device cpu|cuda] [--threads N] [--only scan,circuit,train,ddp]

One table from one run: the selective scan (reference loop vs chunked), the circuits (torch
statevector vs PennyLane default.qubit, and lightning.qubit when installed) and a training step
of all six models, with the targets of docs/performance.md marked PASS / FAIL next to the measured ratios.
Each measurement runs in a fresh child process (see runner.py).
"""
from __future__ import annotations

import json
import sys
import time

from ..errors import UserError

SECTIONS = ("scan", "circuit", "train", "ddp")
DEFAULT_SECTIONS = {"cpu": "scan,circuit,train", "cuda": "scan,circuit,train,ddp"}


def add_arguments(p) -> None:
    p.add_argument("--quick", action="store_true", help="small sizes: the whole run in under two minutes")
    p.add_argument("--json", action="store_true", help="print the measurements, ratios and targets as JSON")
    p.add_argument("--device", default="cpu", choices=("cpu", "cuda"), help="where the torch paths run")
    p.add_argument("--threads", type=int, default=1,
                   help="torch intra-op threads in every measurement (default 1, as the figures in docs/performance.md)")
    p.add_argument("--only", default=None,
                   help=f"comma-separated sections to run, of {', '.join(SECTIONS)} (default: all on cuda; "
                        "all but ddp on cpu, where ddp runs 1 and 2 gloo ranks)")
    p.add_argument("--no-lightning", action="store_true", help="skip lightning.qubit even when installed")
    p.add_argument("--mem-cap-gb", type=float, default=None,
                   help="a measurement whose memory passes this is stopped and recorded as OOM "
                        "(default 85%% of the memory available at start)")
    p.add_argument("--timeout", type=float, default=None, help="seconds per measurement (default 240 quick, 600 full)")
    p.add_argument("--isolation", choices=("auto", "process", "worker"), default="auto",
                   help="process: a fresh forked child per measurement (CPU default; peak RSS is that "
                        "child's own); worker: one persistent spawned process (CUDA default: no CUDA "
                        "start-up per measurement, CUDA peaks are reset per measurement)")


def run(args) -> int:
    import torch

    from . import runner, suite

    only = args.only if args.only is not None else DEFAULT_SECTIONS[args.device]
    sections = tuple(s.strip() for s in only.split(",") if s.strip())
    bad = [s for s in sections if s not in SECTIONS]
    if bad or not sections:
        raise UserError(f"--only={only!r}: choose from {', '.join(SECTIONS)}")
    if args.threads < 1:
        raise UserError(f"--threads={args.threads}: need 1 or more")
    if args.device == "cuda" and not torch.cuda.is_available():
        raise UserError("--device cuda: no CUDA device is visible here")
    if args.device == "cuda" and args.isolation == "process":
        raise UserError("--isolation process: forked children cannot use CUDA once this process has; "
                        "with --device cuda use worker (the default)")
    from . import gpu

    sizes = (gpu.sizes(args.quick) if args.device == "cuda" else suite.QUICK if args.quick else suite.FULL)
    pennylane_ok = suite.pennylane_available()
    lightning = pennylane_ok and suite.lightning_available() and not args.no_lightning
    if args.mem_cap_gb is not None:
        mem_cap = int(args.mem_cap_gb * 2**30)
    else:
        avail = runner.mem_available_bytes()
        mem_cap = int(0.85 * avail) if avail else None
    from qssm import native, triton_support

    meta = {"device": args.device, "threads": args.threads, "torch": torch.__version__,
            "quick": bool(args.quick), "mem_cap_bytes": mem_cap, "lightning": lightning,
            "native": native.status()}  # builds the CPU kernels once, before any child forks
    if args.device == "cuda":
        meta.update(gpu=torch.cuda.get_device_name(0), gpu_kernels=triton_support.status(),
                    lightning_gpu=gpu.lightning_gpu_available() and not args.no_lightning)
    if pennylane_ok and ("circuit" in sections or "train" in sections):
        import pennylane  # imported once here, so that forked children do not pay for it

        meta["pennylane"] = pennylane.__version__
        if lightning:
            import pennylane_lightning  # noqa: F401
    elif not pennylane_ok:
        meta["pennylane"] = "not installed (its references are skipped)"
    if args.device == "cuda":
        common = {"device": "cuda", "threads": args.threads, "budget_s": sizes.budget_s,
                  "single_run_above_s": sizes.single_run_above_s}
        plan = gpu.plan(sizes, common, lightning_gpu=meta["lightning_gpu"], sections=sections)
    else:
        plan = suite.build_plan(sizes, device=args.device, threads=args.threads, lightning=lightning,
                                sections=sections, pennylane=pennylane_ok)
    isolation = args.isolation if args.isolation != "auto" else ("worker" if args.device == "cuda" else "process")
    meta["isolation"] = isolation
    worker = runner.Worker(mem_cap) if isolation == "worker" else None
    results = {}
    t_start = time.perf_counter()
    try:
        for key, spec, timeout in plan:
            if str(key[2]).endswith("@fallback"):
                main = results.get(key[:2] + (key[2].split("@")[0],) + key[3:])
                if main is None or main.get("status") == "ok":
                    continue  # only measured when the full batch did not fit
            if not args.json:
                print(f"  measuring {' '.join(str(k) for k in key)} ...", file=sys.stderr, flush=True)
            limit = args.timeout or timeout
            if worker is not None and spec.get("device") == args.device:
                r = worker.run(spec, timeout_s=limit)
            else:  # CPU work (the PennyLane references too): a fresh forked child
                r = runner.run_isolated(spec, timeout_s=limit, mem_cap=mem_cap, start_method="fork")
            r["B"] = spec.get("B")
            results[key] = r
            if r.get("mem_method") and spec.get("device") == args.device:
                meta["mem_method"] = r["mem_method"]
    finally:
        if worker is not None:
            worker.close()
    ddp_rows = None
    if "ddp" in sections:
        from .ddp import measure_ddp, world_sizes

        n_dev = torch.cuda.device_count() if args.device == "cuda" else 2
        say = None if args.json else (lambda msg: print(f"  measuring {msg} ...", file=sys.stderr, flush=True))
        ddp_rows = measure_ddp(suite.MODELS, world_sizes(n_dev), device=args.device,
                               per_rank=sizes.train_B, seq_len=sizes.train_T, progress=say)
    meta["total_s"] = time.perf_counter() - t_start
    if args.device == "cuda":
        derived = gpu.derive(sizes, results, meta)
        derived["ddp"] = ddp_rows
        if args.json:
            print(json.dumps({"meta": meta, "measurements": [{"key": list(k), "spec": s, "result": results[k]}
                                                             for k, s, _ in plan if k in results],
                              **{k: v for k, v in derived.items() if k != "circuit"}}, indent=1, default=str))
        else:
            print(gpu.render(sizes, derived, meta))
            if ddp_rows:
                from .ddp import render_ddp

                print("\n" + render_ddp(ddp_rows, sizes.train_B))
            print(f"\n(total {meta['total_s']:.0f} s)")
        return 0
    derived = suite.derive(sizes, results)
    if args.json:
        print(json.dumps({"meta": meta, "sizes": sizes.__dict__,
                          "measurements": [{"key": list(k), "spec": s, "result": results[k]}
                                           for k, s, _ in plan if k in results],
                          "scan": _strip(derived["scan"]), "scan_slope": derived["scan_slope"],
                          "circuit": _strip(derived["circuit"]), "train": _strip(derived["train"]),
                          "targets": derived["targets"], "ddp": ddp_rows}, indent=1, default=str))
    else:
        meta["results"] = results
        print(suite.render(sizes, derived, meta))
        if ddp_rows:
            from .ddp import render_ddp

            print("\n" + render_ddp(ddp_rows, sizes.train_B))
        print(f"\n(total {meta['total_s']:.0f} s)")
    return 0


def _strip(rows):
    """Derived rows without the raw result dicts (those are under `measurements`)."""
    out = []
    for r in rows:
        out.append({k: v for k, v in r.items() if not isinstance(v, dict)})
    return out
