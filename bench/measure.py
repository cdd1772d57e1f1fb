"""The measurement of one training cell on one rank: ``train(cell, env)``, in this order:

1. seed everything from ``cell.seed``; build the model (``layout="BTD"``), cast to ``dtype``
   (float32 parameters for the mixed precisions; the forward runs under autocast, see
   ``bench.stability``);
2. memory of one no-grad forward (``peak_mem_infer_bytes``);
3. wrap in DDP when ``world_size > 1``; AdamW(lr), gradient clipping at 1.0 (norm accumulated in
   float64; fp16-mixed scales the loss);
4. ``steps`` optimiser steps on the rank's shard of each global batch; the first ``warmup_steps``
   are untimed (on CPU they run under the allocator profiler for ``peak_mem_train_bytes``; the
   first one also counts ``saved_bytes_per_step``); every step all-reduces the loss and four flags
   (non-finite loss or gradient norm; time budget spent; checkpoint wanted; stop wanted) so that
   all ranks act together; a non-finite step is not applied: it is replayed to locate the first
   non-finite module (``bench.stability``) and the cell stops as ``nan``;
5. step times: clock read after ``cuda.synchronize``; the time of a step is the max over ranks;
6. inference time: median of max(5, timed steps) no-grad forwards (at most 50) of one rank batch
   (max over ranks);
7. held-out accuracy on ``eval_samples`` samples (blocks shared out over the ranks).

``bench.train.run_cell`` sets up the process group and records the result; this module only
measures.
"""
from __future__ import annotations

import contextlib
import json
import socket
import time

from .cell import Cell
from .checkpoints import PREEMPTED_EXIT, Checkpointer, Preempted, stop_requested
from .executors.launchers import RankEnv
from .failures import CellTimeout, NanLoss, _faults, _fire

N_INFER_REPS = 5      # at least; as many as the timed training steps, up to MAX_INFER_REPS
MAX_INFER_REPS = 50


def _dist():
    import torch.distributed as dist
    return dist


def train(cell: Cell, env: RankEnv, *, deadline: float | None = None, on_step=None,
          partial: dict | None = None, checkpoint: Checkpointer | None = None) -> dict:
    """Train one cell on this rank (process group already initialised when world_size > 1).
    Returns the metric columns (rank-reduced). ``partial`` is filled as values become known, so a
    failure row can keep them. With ``checkpoint``, resume from and save checkpoints."""
    import numpy as np
    import torch
    import torch.nn.functional as F

    from qssm import build_model, count_parameters

    from .metrics import CpuTensorMemory, SavedTensorBytes, device_name, peak_rss_bytes, sync, time_stats
    from .protocol import Evaluator, make_scheduler
    from .stability import ActivationTracker, Precision, clip_, grad_norm, locate_divergence
    from .tasks import make_task

    m = partial if partial is not None else {}
    world, rank = env.world_size, env.rank
    dist = _dist() if world > 1 else None
    if cell.device == "cuda":
        if not torch.cuda.is_available():
            raise RuntimeError(f"device=cuda but CUDA is not available on {socket.gethostname()}")
        device = torch.device("cuda", env.local_rank % max(1, torch.cuda.device_count()))
        torch.cuda.set_device(device)
    else:
        device = torch.device("cpu")
    prec = Precision(cell.precision, device)
    dtype = prec.param_dtype
    m["device_name"] = device_name(device)
    m["mem_source"] = "cuda" if device.type == "cuda" else "cpu-tensors"
    local_b = cell.batch_size // world
    faults = _faults(cell, rank)

    def allreduce(values, op="sum"):
        t = torch.tensor(values, dtype=torch.float64, device=device if device.type == "cuda" else "cpu")
        if dist is not None:
            dist.all_reduce(t, op=dist.ReduceOp.SUM if op == "sum" else dist.ReduceOp.MAX)
        return t.tolist()

    def shard(xy):
        x, y = xy
        lo, hi = rank * local_b, (rank + 1) * local_b
        return (torch.from_numpy(np.ascontiguousarray(x[lo:hi])).to(device, dtype),
                torch.from_numpy(np.ascontiguousarray(y[lo:hi])).to(device))

    task = make_task(cell)
    x0, _ = shard(task.train_batch(0, cell.batch_size))
    profiling = device.type == "cpu"
    mem = CpuTensorMemory() if profiling else contextlib.nullcontext()
    phase = mem.phase if profiling else (lambda name: contextlib.nullcontext())
    saved = None
    losses, step_times = [], []
    m["steps_run"] = 0

    def step_fn(model, opt, params, x, y, step):
        """One step; returns (loss, gradient norm, finite). A non-finite step is not applied."""
        with prec.autocast():
            logits = model(x)  # x: (b, T, D) -> (b, O)
        loss = F.cross_entropy(logits.float(), y)
        loss = _fire(faults, step, loss)
        opt.zero_grad(set_to_none=True)
        scaler = prec.scaler
        if scaler is not None:
            scaler.scaled(loss).backward()
            scaler.unscale_(params)
        else:
            loss.backward()
        gnorm = grad_norm(params)
        loss_ok, grads_ok = bool(torch.isfinite(loss)), bool(torch.isfinite(gnorm))
        if scaler is not None:  # inf gradients under loss scaling: skip the step, halve the scale
            scaler.update(grads_ok)
        if loss_ok and grads_ok:
            clip_(params, gnorm)
            opt.step()
        # under loss scaling, inf gradients are a skipped step, not a divergence
        return loss.detach(), gnorm, loss_ok and (grads_ok or scaler is not None)

    with mem:
        with phase("build"):
            torch.manual_seed(cell.seed)
            model = build_model(cell.model, **cell.model_kwargs()).to(device)
            _cast(model, dtype)
        m["n_params"] = count_parameters(model)
        # --- inference memory: one no-grad forward
        if device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(device)
        model.eval()
        with phase("infer"), torch.no_grad(), prec.autocast():
            model(x0)
        if device.type == "cuda":
            m["peak_mem_infer_bytes"] = float(torch.cuda.max_memory_allocated(device))
        model.train()
        # dropout streams differ per rank; identical for the same (seed, rank)
        torch.manual_seed(int(np.random.SeedSequence([cell.seed, 7, rank]).generate_state(1)[0]))
        if dist is not None:
            from torch.nn.parallel import DistributedDataParallel as DDP
            ddp = DDP(model, device_ids=[device.index] if device.type == "cuda" else None,
                      static_graph=True)  # copes with the unused parameters some models hold
        else:
            ddp = model
        params = [p for p in model.parameters() if p.requires_grad]
        opt = torch.optim.AdamW(params, lr=cell.lr)
        tracker = ActivationTracker(model, cell.track_activations)
        sched = make_scheduler(opt, cell.lr_schedule, cell.steps) if cell.lr_schedule != "constant" else None
        evaluator = Evaluator(task, model, device, dtype, prec, rank, world, allreduce)
        start = 0
        state = checkpoint.load() if checkpoint is not None else None
        ok = allreduce([1.0 if state is not None else 0.0])[0] == world  # all ranks or none
        if state is not None and ok:
            model.load_state_dict(state["model"])
            opt.load_state_dict(state["optimizer"])
            torch.set_rng_state(state["rng_cpu"])
            if device.type == "cuda" and state.get("rng_cuda") is not None:
                torch.cuda.set_rng_state(state["rng_cuda"], device)
            losses.extend(state["losses"])
            step_times.extend(state["step_times"])
            saved = state.get("saved")
            m.update(state.get("metrics", {}))
            if prec.scaler is not None:
                prec.scaler.restore(state.get("loss_scaler"))
            tracker.restore(state.get("activations"))
            if sched is not None and state.get("scheduler"):
                sched.load_state_dict(state["scheduler"])
            evaluator.curve.extend(state.get("eval_curve") or [])
            start = state["step"]
            m["_resumed_from_step"] = start  # underscore: goes to the file metadata, not a column
        if device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(device)

        def save_checkpoint(done_steps):
            checkpoint.save({
                "step": done_steps, "model": model.state_dict(), "optimizer": opt.state_dict(),
                "rng_cpu": torch.get_rng_state(),
                "rng_cuda": torch.cuda.get_rng_state(device) if device.type == "cuda" else None,
                "losses": list(losses), "step_times": list(step_times), "saved": saved,
                "loss_scaler": prec.scaler.state() if prec.scaler is not None else None,
                "activations": tracker.state(),
                "scheduler": sched.state_dict() if sched is not None else None,
                "eval_curve": list(evaluator.curve),
                "metrics": {k: v for k, v in m.items() if k.startswith(("peak_mem", "n_params"))},
            }, barrier=(dist.barrier if dist is not None else (lambda: None)))

        def run_step(step) -> bool:
            """One optimiser step and what follows it; True when the target accuracy is reached."""
            x, y = shard(task.train_batch(step, cell.batch_size))
            sync(device)
            t0 = time.perf_counter()
            with tracker.step(step):
                loss, gnorm, finite = step_fn(ddp, opt, params, x, y, step)
                if sched is not None:
                    sched.step()
            sync(device)
            dt = time.perf_counter() - t0
            tracker.flush()  # the tracked activations' reductions, outside the step's clock
            bad = 0.0 if finite else 1.0
            late = 1.0 if (deadline is not None and time.monotonic() > deadline) else 0.0
            want = 1.0 if (checkpoint is not None and checkpoint.want()) else 0.0
            stop = 1.0 if stop_requested() else 0.0
            total, n_bad, n_late, n_want, n_stop = allreduce([loss.item() if not bad else 0.0, bad, late, want,
                                                              stop])
            m["steps_run"] = step + 1
            if n_bad:
                raise NanLoss(_diverged(m, step, rank, loss, gnorm, bad and locate_divergence(
                    model, x, y, prec, F.cross_entropy), tracker))
            losses.append(total / world)
            step_times.append(dt)
            m["final_loss"] = losses[-1]
            if on_step is not None:
                on_step("train", step + 1, cell.steps)
            if cell.eval_every and (step + 1) % cell.eval_every == 0:
                acc, wall = evaluator.record(step + 1, sum(step_times))  # training time only
                if cell.target_accuracy is not None and acc is not None and acc >= cell.target_accuracy:
                    m["steps_to_target"], m["time_to_target_s"] = step + 1, wall
                    return True
            if (n_want or n_stop) and step + 1 < cell.steps:
                save_checkpoint(step + 1)
                if n_stop:
                    raise Preempted(PREEMPTED_EXIT)
            if n_late:
                raise CellTimeout(f"time budget of {cell.time_budget_s:g} s spent after step {step + 1} "
                                  f"of {cell.steps}")
            return False

        reached = False
        with phase("train"):
            for step in range(start, cell.warmup_steps):
                if step == 0:
                    with SavedTensorBytes(params) as sv:
                        reached = run_step(step)
                    saved = sv.bytes
                else:
                    reached = run_step(step)
                if reached:
                    break
    if profiling:
        m["peak_mem_infer_bytes"] = mem.peak("infer")
        if start < cell.warmup_steps:  # else: as measured before the checkpoint
            m["peak_mem_train_bytes"] = mem.peak("train")
    for step in range(max(start, cell.warmup_steps), cell.steps if not reached else 0):  # timed
        if run_step(step):
            break
    m["loss_curve"] = json.dumps([round(v, 7) for v in losses])
    m["eval_curve"] = json.dumps(evaluator.curve) if cell.eval_every else None
    m["activation_curve"], m["activation_rms_max"] = tracker.curve_json(), tracker.maxima_json()
    tracker.close()
    if device.type == "cuda":
        m["peak_mem_train_bytes"] = float(torch.cuda.max_memory_allocated(device))
    m["saved_bytes_per_step"] = float(saved) if saved is not None else None
    if cell.circuit_probe_steps and cell.n_qubits is not None:
        m["circuit_share"] = _probe_circuits(cell, model, task, shard, prec, device, dtype, world, allreduce, on_step)

    # step time of a step = slowest rank
    timed = step_times[cell.warmup_steps:]
    if dist is not None:
        timed = allreduce(timed, "max") if timed else []
    m.update(time_stats(timed))
    if timed:
        m["samples_per_s"] = cell.batch_size * len(timed) / sum(timed)
        m["timesteps_per_s"] = m["samples_per_s"] * cell.seq_len

    # inference time
    n_infer = min(MAX_INFER_REPS, max(N_INFER_REPS, cell.steps - cell.warmup_steps))
    if on_step is not None:
        on_step("infer", 0, n_infer)
    model.eval()
    infer = []
    with torch.no_grad(), prec.autocast():
        model(x0)
        for _ in range(n_infer):
            sync(device)
            t0 = time.perf_counter()
            model(x0)
            sync(device)
            infer.append(time.perf_counter() - t0)
    if dist is not None:
        infer = allreduce(infer, "max")
    m["infer_time_median_s"] = float(sorted(infer)[len(infer) // 2])

    # held-out accuracy
    if on_step is not None:
        on_step("eval", 0, task.n_eval_blocks())
    m["accuracy"] = evaluator.accuracy()

    mems = [m.get("peak_mem_train_bytes") or -1.0, m.get("peak_mem_infer_bytes") or -1.0, peak_rss_bytes()]
    if dist is not None:
        mems = allreduce(mems, "max")
    m["peak_mem_train_bytes"] = mems[0] if mems[0] >= 0 else None
    m["peak_mem_infer_bytes"] = mems[1] if mems[1] >= 0 else None
    m["peak_rss_bytes"] = mems[2]
    return m


def _probe_circuits(cell, model, task, shard, prec, device, dtype, world, allreduce, on_step) -> float:
    """circuit_share (bench.circuit_probe) on a fresh copy of the trained model (no DDP hooks, so
    no gradient traffic in the passes), one batch past the last training step; mean over ranks."""
    import torch.nn.functional as F

    from qssm import build_model

    from .circuit_probe import circuit_share
    from .metrics import sync

    if on_step is not None:
        on_step("probe", 0, cell.circuit_probe_steps)
    probe = build_model(cell.model, **cell.model_kwargs()).to(device)
    _cast(probe, dtype)
    probe.load_state_dict(model.state_dict())
    probe.train()
    x, y = shard(task.train_batch(cell.steps, cell.batch_size))

    def one_pass():
        with prec.autocast():
            loss = F.cross_entropy(probe(x).float(), y)
        loss.backward()
        probe.zero_grad(set_to_none=True)

    share, _, _ = circuit_share(one_pass, cell.circuit_probe_steps, lambda: sync(device))
    return allreduce([share])[0] / world


def _diverged(m: dict, step: int, rank: int, loss, gnorm, where, tracker) -> str:
    """Fill the divergence columns of a nan row; returns the error text."""
    m["diverged_step"] = step
    if where:  # this rank saw the non-finite values and replayed the step
        tracker.note(where["block_rms"])
        m["diverged_module"], m["diverged_phase"] = where["module"], where["phase"]
    m["activation_curve"], m["activation_rms_max"] = tracker.curve_json(), tracker.maxima_json()
    if m.get("diverged_module"):
        at = f"; first non-finite: {m['diverged_module']} ({m['diverged_phase']})"
    elif where:
        at = ("; on replay every module output and its gradient was finite: a parameter gradient overflowed, "
              "or the fault did not recur (injected or non-deterministic)")
    else:
        at = ""
    return (f"training loss or gradient norm is not finite at step {step} (loss {loss.item()!r}, gradient norm "
            f"{float(gnorm)!r} on rank {rank}){at}")


def _cast(model, dtype) -> None:
    """Cast floating parameters/buffers to dtype and complex ones to the matching complex dtype
    (Module.to(float64) would drop imaginary parts)."""
    import torch
    if dtype == torch.float32:
        return
    cdtype = {torch.float64: torch.complex128, torch.float16: torch.complex32}.get(dtype, torch.complex64)

    def fn(t):
        if t.is_complex():
            return t.to(cdtype)
        if t.is_floating_point():
            return t.to(dtype)
        return t
    model._apply(fn)
