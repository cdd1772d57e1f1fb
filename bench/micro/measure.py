"""One micro-benchmark measurement, run inside a fresh child process (see runner.py).

A measurement is a plain dict `spec` (kind, sizes, device, threads, timing budget) and gives a
plain dict back: step times (warm-up excluded), the peak memory of the first step, and the bytes
kept alive for backward. Kinds:
  scan     selective scan fwd+bwd, impl reference|chunked, kernel auto|native|triton|torch (qssm.ssm.scan)
  conv     the blocks' causal conv + SiLU fwd+bwd on triton | cudnn (CUDA; qssm.ssm.triton_conv)
  circuit  SSM or Gated circuit fwd+bwd on torch|pennylane (device)   (qssm.quantum)
  train    one training step (forward, cross-entropy, backward, Adam) of a model (qssm.build_model);
           circuits "free" swaps the circuits for zero-cost stand-ins (the Amdahl floor of a step)

Memory, honestly measured:
  CPU   peak RSS of this process during its first step, minus its RSS just before (the
        kernel's high-water mark is reset through /proc/self/clear_refs; the process is fresh,
        so no earlier step has left memory in the allocator);
  CUDA  torch.cuda.max_memory_allocated during the first step, minus memory_allocated before.
  saved bytes: distinct storages packed for backward during one forward
        (torch.autograd.graph.saved_tensors_hooks), not counting the inputs' own storages.
Timing: CUDA is synchronised before every clock read.
"""
from __future__ import annotations

import gc
import resource
import statistics
import time

import torch

from ..metrics import SavedTensorBytes, peak_rss_bytes, proc_bytes, reset_peak_rss


# --------------------------------------------------------------------------- memory probes

class PeakMemory:
    """Peak memory above the level at `start()`, in bytes (None when it cannot be measured)."""

    def __init__(self, device: torch.device):
        self.device = device
        self.method = None

    def start(self) -> None:
        gc.collect()
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
            torch.cuda.reset_peak_memory_stats(self.device)
            self.base = torch.cuda.memory_allocated(self.device)
            self.method = "cuda max_memory_allocated"
        else:
            self.base_hwm_ok = reset_peak_rss()
            self.base = proc_bytes("/proc/self/status", "VmRSS")
            self.base_maxrss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
            self.method = "peak RSS (VmHWM after clear_refs)" if self.base_hwm_ok else "peak RSS (ru_maxrss)"

    def stop(self) -> int | None:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
            return int(torch.cuda.max_memory_allocated(self.device) - self.base)
        if self.base is None:
            return None
        if self.base_hwm_ok:
            return max(0, int(peak_rss_bytes()) - self.base)
        # without clear_refs only growth past the earlier high-water mark is visible
        return max(0, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 - self.base_maxrss)


def saved_bytes(forward, exclude=()) -> int:
    """Bytes of distinct storages saved for backward while `forward()` runs, inputs excluded.

    `forward` returns something whose graph is then dropped (nothing is backpropagated)."""
    with SavedTensorBytes([t for t in exclude if isinstance(t, torch.Tensor)]) as saved:
        out = forward()
        del out
    return int(saved.bytes)


# --------------------------------------------------------------------------- workloads

def _scan_workload(spec, device):
    from qssm.ssm.scan import selective_scan

    g = torch.Generator().manual_seed(0)
    b, length, di, n = spec["B"], spec["L"], spec["di"], spec["N"]
    dtype = getattr(torch, spec.get("dtype", "float32"))
    x = torch.randn(b, length, di, generator=g, dtype=dtype)
    u = torch.rand(b, length, di, generator=g, dtype=dtype)
    delta = torch.exp(torch.log(torch.tensor(1e-3)) * (1 - u) + torch.log(torch.tensor(1e-1)) * u).to(dtype)
    a_shape = (di, n) if spec.get("A", "channel") == "channel" else (n,)
    A = -torch.arange(1, n + 1, dtype=dtype).expand(*a_shape).contiguous()
    B = torch.randn(b, length, n, generator=g, dtype=dtype)
    C = torch.randn(b, length, n, generator=g, dtype=dtype)
    D = torch.ones(di, dtype=dtype)
    inputs = [t.to(device).requires_grad_() for t in (x, delta, A, B, C, D)]
    gy = torch.randn(b, length, di, generator=g, dtype=dtype).to(device)
    impl, kernel = spec["impl"], spec.get("kernel", "auto")

    def forward():
        return selective_scan(*inputs, impl=impl, kernel=kernel)

    def step():
        for t in inputs:
            t.grad = None
        forward().backward(gy)

    return step, forward, inputs


def _conv_workload(spec, device):
    """The blocks' causal conv + SiLU, fwd+bwd, on the pick spec["conv"] (triton | cudnn)."""
    from qssm.ssm.blocks import causal_conv
    from qssm.ssm.native_conv import conv_silu_torch
    from qssm.ssm.triton_conv import conv_silu_triton

    conv_silu = conv_silu_triton if spec["conv"] == "triton" else conv_silu_torch  # no env pin: workers persist
    g = torch.Generator().manual_seed(0)
    conv = causal_conv(spec["C"]).to(device)
    x = torch.randn(spec["B"], spec["L"], 2 * spec["C"], generator=g).to(device)[..., :spec["C"]].requires_grad_()
    gy = torch.randn(spec["B"], spec["L"], spec["C"], generator=g).to(device)

    def forward():
        return conv_silu(conv, x)

    def step():
        x.grad = None
        forward().backward(gy)

    return step, forward, [x]


def _circuit_workload(spec, device):
    from qssm.quantum import gated_circuit, ssm_circuit

    g = torch.Generator().manual_seed(0)
    q, layers = spec["q"], spec.get("l", 2)
    dtype = getattr(torch, spec.get("dtype", "float32"))
    backend, qml_device = spec["backend"], spec.get("qml_device")

    twin = spec.get("kernel") == "twin"  # the batched torch statevector, whatever the fast path is

    def make(bsz):
        from qssm.quantum.statevector import gated_circuit_torch, ssm_circuit_torch

        if spec["circuit"] == "ssm":
            e = (torch.rand(bsz, q, generator=g, dtype=dtype) * 6 - 3).to(device).requires_grad_()
            r = torch.randn(bsz, 3 * q * layers, generator=g, dtype=dtype).to(device).requires_grad_()
            if twin:
                return (e, r), lambda: ssm_circuit_torch(e, r)
            return (e, r), lambda: ssm_circuit(e, r, backend=backend, device=qml_device)
        a = (torch.rand(bsz, 4 * q * layers, generator=g, dtype=dtype) * 6.28).to(device).requires_grad_()
        if twin:
            return (a,), lambda: gated_circuit_torch(a, q)
        return (a,), lambda: gated_circuit(a, n_qubits=q, backend=backend, device=qml_device)

    def stepper(bsz):
        inputs, fwd = make(bsz)
        w = None

        def step():
            nonlocal w
            for t in inputs:
                t.grad = None
            out = fwd()
            if w is None:
                w = torch.randn(out.shape, generator=g, dtype=out.dtype).to(out.device)
            (out * w).sum().backward()

        return step, fwd, inputs

    step, forward, inputs = stepper(spec["B"])
    small = stepper(min(spec["B"], 4))[0]  # warms up once-per-process costs at a tiny batch
    return step, forward, inputs, small


def _free_circuits() -> None:
    """Zero-cost circuit stand-ins (bench.circuit_probe) for the rest of this measurement's own
    fresh process: a step measured so is the floor any circuit simulator could reach:
    pennylane-step / free-step bounds the pennylane/torch ratio (Amdahl)."""
    from ..circuit_probe import patch_free_circuits

    patch_free_circuits()


def _train_workload(spec, device):
    from qssm import build_model

    if spec.get("circuits") == "free":
        _free_circuits()
    torch.manual_seed(0)
    cfg = dict(spec["config"])
    cfg["device"] = device
    model = build_model(spec["model"], **cfg)
    model.train()
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    g = torch.Generator().manual_seed(1)
    x = torch.randn(spec["B"], cfg["feature_dim"], cfg["n_timesteps"], generator=g).to(device)  # (B, D, T)
    y = torch.randint(0, cfg["output_dim"], (spec["B"],), generator=g).to(device)

    def forward():
        return torch.nn.functional.cross_entropy(model(x), y)

    def step():
        opt.zero_grad(set_to_none=True)
        forward().backward()
        opt.step()

    return step, forward, [x] + [p for p in model.parameters()]


def _train_warmup(spec, device):
    """A tiny training step of a separate copy of the model (the measured model's optimizer
    state is still allocated inside the measured first step)."""
    tiny = dict(spec, B=1, config=dict(spec["config"], n_timesteps=min(4, spec["config"]["n_timesteps"])))
    return _train_workload(tiny, device)[0]


# --------------------------------------------------------------------------- the measurement

def _sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def measure(spec: dict) -> dict:
    """Run one measurement described by `spec` in this process; returns a result dict."""
    threads = spec.get("threads")
    if threads:
        torch.set_num_threads(int(threads))
    device = torch.device(spec.get("device", "cpu"))
    kind = spec["kind"]
    small = None
    if kind == "scan":
        step, forward, inputs = _scan_workload(spec, device)
        small = _scan_workload(dict(spec, B=1, L=min(spec["L"], 4)), device)[0]
    elif kind == "circuit":
        step, forward, inputs, small = _circuit_workload(spec, device)
    elif kind == "conv":
        step, forward, inputs = _conv_workload(spec, device)
    elif kind == "train":
        step, forward, inputs = _train_workload(spec, device)
        small = _train_warmup(spec, device)
    else:
        raise ValueError(f"unknown measurement kind {kind!r}")

    if small is not None:
        # one-time costs outside the clocks and the memory figure: library code paged in, thread
        # pools, QNode construction and caches -- at a tiny size, so nothing of the size measured
        small()
    _sync(device)
    # first step at full size: its peak memory (a fresh process: nothing cached yet)
    mem = PeakMemory(device)
    mem.start()
    t0 = time.perf_counter()
    step()
    _sync(device)
    first_s = time.perf_counter() - t0
    peak = mem.stop()
    # timed steps, warm-up excluded: the first step above is the warm-up
    budget = float(spec.get("budget_s", 5.0))
    max_reps = int(spec.get("max_repeats", 5))
    min_reps = int(spec.get("min_repeats", 1))
    times: list[float] = []
    if first_s > float(spec.get("single_run_above_s", 1e9)):
        # too slow to repeat: the first full-size run is the measurement (one-time costs were
        # paid by the tiny-batch warm-up, where there is one)
        times = [first_s]
        warm = small is not None
    else:
        warm = True
        while len(times) < max_reps and (len(times) < min_reps or sum(times) + (times[-1] if times else 0) < budget):
            _sync(device)
            t0 = time.perf_counter()
            step()
            _sync(device)
            times.append(time.perf_counter() - t0)
    result = {
        "status": "ok",
        "time_median_s": statistics.median(times),
        "time_p90_s": sorted(times)[min(len(times) - 1, int(round(0.9 * (len(times) - 1))))],
        "time_min_s": min(times),
        "repeats": len(times),
        "warm": warm,
        "first_step_s": first_s,
        "peak_mem_bytes": peak,
        "mem_method": mem.method,
        "threads": torch.get_num_threads(),
        "device": str(device),
    }
    if spec.get("saved_bytes", True):
        result["saved_bytes"] = saved_bytes(forward, exclude=inputs)
    if kind == "scan" and spec["impl"] == "chunked":
        from qssm.ssm.scan import scan_kernel

        kernel = spec.get("kernel", "auto")
        result["kernel"] = scan_kernel(*inputs) if kernel == "auto" else kernel
    if kind == "circuit" and spec["backend"] == "torch":
        from qssm.quantum import circuit_kernel

        result["kernel"] = "torch" if spec.get("kernel") == "twin" else circuit_kernel(spec["circuit"], spec["q"], *inputs)
    if not all(torch.isfinite(t.grad).all().item() for t in inputs if isinstance(t, torch.Tensor)
               and t.grad is not None):
        result["status"] = "nan"
    return result
