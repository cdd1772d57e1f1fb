"""The Triton GPU kernels, checked without a GPU.

- In Triton's interpreter (TRITON_INTERPRET=1, QSSM_TRITON=interpret: the CUDA code path on CPU
  tensors) every kernel is compared with its reference twin on values and all gradients.
- Every kernel compiles ahead of time for sm_80 and sm_90 with the wheel's ptxas, without
  register spills (python -m qssm.triton_aot, in a child process: the interpreter cannot compile).
- A training step on the CUDA code path issues as many launches at T=1024 as at T=64.
Skips only when Triton (or numpy, which its interpreter needs) is not installed and
QSSM_REQUIRE_TRITON is unset; CI sets it (the dev extra installs Triton).
"""
from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
import torch
import torch.nn.functional as F

from qssm import triton_support as ts
from qssm.ssm.scan import scan_kernel, scan_reference, selective_scan
from test_scan import assert_match, make_inputs, values_and_grads


def _require_triton():
    try:
        import numpy  # noqa: F401
        import triton  # noqa: F401
    except ImportError as exc:
        if os.environ.get("QSSM_REQUIRE_TRITON", "").strip() not in ("", "0"):
            pytest.fail(f"QSSM_REQUIRE_TRITON is set but Triton cannot be imported: {exc}")
        pytest.skip(f"Triton is not installed ({exc}); pip install 'qssm-bench[gpu]' or triton")


@pytest.fixture
def interp(monkeypatch):
    """The device the Triton kernels run on here: "cuda" (compiled) where a GPU is, else "cpu"
    through the interpreter (conftest.py set TRITON_INTERPRET=1 before Triton was imported)."""
    _require_triton()
    monkeypatch.setenv("QSSM_CONV", "triton")  # on a GPU the pick is timed; these tests check the kernel
    if torch.cuda.is_available():
        monkeypatch.delenv("QSSM_TRITON", raising=False)
        return "cuda"
    assert os.environ.get("TRITON_INTERPRET") == "1", "conftest.py sets TRITON_INTERPRET=1 without CUDA"
    monkeypatch.setenv("QSSM_TRITON", "interpret")
    assert ts.interpreting()
    return "cpu"


def _scan_ref(softplus, reverse):
    def ref(x, d, A, B, C, D):
        if softplus:
            d = F.softplus(d)
        if reverse:
            x, d, B, C = (t.flip(1) for t in (x, d, B, C))
        y = scan_reference(x, d, A, B, C, D)
        return y.flip(1) if reverse else y
    return ref


def _strided(inputs):
    """x, Δ, B, C as strided views into wider buffers, as the blocks' in_proj/x_proj splits are."""
    def view(t):
        buf = torch.zeros(*t.shape[:-1], t.shape[-1] + 5, dtype=t.dtype, device=t.device)
        buf[..., 2:2 + t.shape[-1]] = t
        v = buf.requires_grad_()[..., 2:2 + t.shape[-1]]
        assert not v.is_contiguous()
        return v

    x, d, A, B, C, D = (t.detach() for t in inputs)
    return [view(x), view(d), A.requires_grad_(), view(B), view(C), D.requires_grad_()]


SCAN_CASES = [  # (L, chunk, A shape, softplus, reverse, strided)
    (1, 16, "shared", False, False, False),
    (5, 16, "channel", True, False, False),  # L < chunk
    (37, 16, "shared", True, True, False),  # ragged last chunk, the reversed walk
    (37, 16, "channel", False, True, True),  # strided inputs
    (24, 8, "channel", True, False, True),
]


@pytest.mark.parametrize("length,chunk,a_shape,softplus,reverse,strided", SCAN_CASES)
def test_triton_scan_matches_reference_fp32(interp, length, chunk, a_shape, softplus, reverse, strided):
    bsz, di, n = 2, 40, 5  # di spans two channel blocks (the last ragged), N not a power of two
    inputs = make_inputs(bsz, length, di, n, dtype=torch.float32, a_shape=a_shape, seed=length, device=interp)
    if strided:
        inputs = _strided(inputs)
    gy = torch.randn(bsz, length, di, generator=torch.Generator().manual_seed(7)).to(interp)
    assert scan_kernel(*inputs) == "triton"
    got = values_and_grads(lambda *a: selective_scan(*a, chunk=chunk, delta_softplus=softplus, reverse=reverse),
                           inputs, gy)
    want = values_and_grads(_scan_ref(softplus, reverse), inputs, gy)
    assert_match(got, want, 1e-4)


def test_triton_scan_float64_exact(interp):
    inputs = make_inputs(2, 19, 6, 3, dtype=torch.float64, a_shape="channel", device=interp)
    gy = torch.randn(2, 19, 6, dtype=torch.float64).to(interp)
    got = values_and_grads(lambda *a: selective_scan(*a, chunk=8, kernel="triton", delta_softplus=True),
                           inputs, gy)
    assert_match(got, values_and_grads(_scan_ref(True, False), inputs, gy), 1e-10)


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
@pytest.mark.parametrize("a_shape", ["shared", "channel"])
def test_triton_scan_half_inputs_float32_state(interp, dtype, a_shape):
    """bf16/fp16 x, Δ, B, C with float32 A, D: the state is float32; compared with the float32
    reference on the same (rounded) inputs, so only output rounding differs."""
    full = make_inputs(2, 21, 24, 4, dtype=torch.float32, a_shape=a_shape, seed=3, device=interp)
    x, d, A, B, C, D = (t.detach() for t in full)
    half = [t.to(dtype).requires_grad_() for t in (x, d, B, C)]
    ins = [half[0], half[1], A.requires_grad_(), half[2], half[3], D.requires_grad_()]
    gy = torch.randn(2, 21, 24).to(interp, dtype)
    got = values_and_grads(lambda *a: selective_scan(*a, chunk=8, kernel="triton", delta_softplus=True), ins, gy)
    assert got[0].dtype == dtype and got[1].dtype == dtype and got[3].dtype == torch.float32
    ref_ins = [t.detach().float().requires_grad_() for t in ins]
    want = values_and_grads(_scan_ref(True, False), ref_ins, gy.float())
    tol = 2e-2 if dtype == torch.bfloat16 else 4e-3
    assert_match(tuple(t.float() for t in got), want, tol)


def test_triton_scan_no_grad_keeps_no_state(interp):
    inputs = [t.detach() for t in make_inputs(1, 9, 8, 2, dtype=torch.float32, a_shape="shared", device=interp)]
    with torch.no_grad():
        y = selective_scan(*inputs, chunk=4, kernel="triton")
    torch.testing.assert_close(y, scan_reference(*inputs), rtol=1e-5, atol=1e-6)


def test_triton_scan_refuses_what_it_cannot_run(interp, monkeypatch):
    if interp == "cuda":
        pytest.skip("checks the refusal of CPU tensors outside the interpreter")
    inputs = [t.detach() for t in make_inputs(1, 4, 2, 2, dtype=torch.float32, a_shape="shared")]
    monkeypatch.setenv("QSSM_TRITON", "")  # CPU tensors without the interpreter switch
    with pytest.raises(RuntimeError, match="Triton scan cannot run tensors of torch.float32 on cpu"):
        selective_scan(*inputs, kernel="triton")
    assert scan_kernel(*inputs) != "triton"


@pytest.mark.parametrize("length,strided,dtype", [(1, False, torch.float32), (5, True, torch.float32),
                                                   (37, True, torch.float32), (37, False, torch.bfloat16)])
def test_triton_conv_matches_torch(interp, length, strided, dtype):
    from qssm.ssm.blocks import causal_conv
    from qssm.ssm.native_conv import conv_silu, conv_silu_torch
    from qssm.ssm import triton_conv

    torch.manual_seed(length)
    ch = 40  # two channel blocks in backward, the last ragged
    conv = causal_conv(ch).to(interp, dtype)
    wide = torch.randn(2, length, 2 * ch + 3, dtype=dtype, device=interp)
    x = (wide[..., 3:3 + ch] if strided else wide[..., :ch].contiguous()).detach().requires_grad_()
    assert x.is_contiguous() != strided
    assert triton_conv.choose(conv, x, conv_silu_torch) == "triton"
    y = conv_silu(conv, x)
    gy = torch.randn_like(y)
    got = (y,) + torch.autograd.grad(y, [x, conv.weight, conv.bias], gy)
    ref = causal_conv(ch).to(interp)
    ref.load_state_dict({k: v.float() for k, v in conv.state_dict().items()})
    xr = x.detach().float().requires_grad_()
    yr = conv_silu_torch(ref, xr)
    want = (yr,) + torch.autograd.grad(yr, [xr, ref.weight, ref.bias], gy.float())
    tol = 1e-5 if dtype == torch.float32 else 2e-2
    for name, a, b in zip(("y", "dx", "dw", "db"), got, want):
        assert a.dtype == dtype, name
        torch.testing.assert_close(a.float(), b, rtol=tol, atol=tol * b.abs().max().item(), msg=name)


@pytest.mark.parametrize("circuit,n,layers,dtype", [
    ("ssm", 1, 1, torch.float32), ("ssm", 2, 2, torch.float32), ("ssm", 5, 1, torch.float32),
    ("ssm", 3, 2, torch.float64), ("gated", 2, 1, torch.float32), ("gated", 3, 2, torch.float32),
    ("gated", 5, 1, torch.float32), ("gated", 4, 1, torch.float64)])
def test_triton_circuits_match_the_statevector_twin(interp, circuit, n, layers, dtype):
    """Both circuits through the public API (which takes the Triton kernels on this path) against
    the batched torch statevector: outputs and the gradients of every angle."""
    from qssm.quantum import gated_circuit, ssm_circuit
    from qssm.quantum import triton_circuits
    from qssm.quantum.statevector import gated_circuit_torch, ssm_circuit_torch

    g = torch.Generator().manual_seed(n * 10 + layers)
    bsz = 7  # not a multiple of the samples per program
    if circuit == "ssm":
        ins = [(torch.rand(bsz, n, generator=g, dtype=dtype) * 6 - 3),
               torch.randn(bsz, 3 * n * layers, generator=g, dtype=dtype)]
        fast, twin = (lambda e, r: ssm_circuit(e, r)), ssm_circuit_torch
    else:
        ins = [torch.rand(bsz, 4 * n * layers, generator=g, dtype=dtype) * 6.3]
        fast, twin = (lambda a: gated_circuit(a, n_qubits=n)), (lambda a: gated_circuit_torch(a, n))
    ins = [t.to(interp).requires_grad_() for t in ins]
    assert triton_circuits.available(*ins)
    before = ts.launches()
    y = fast(*ins)
    w = torch.randn(y.shape, generator=g, dtype=dtype).to(interp)
    got = (y,) + torch.autograd.grad((y * w).sum(), ins)
    assert ts.launches() - before == 2  # one launch forward, one backward
    y2 = twin(*ins)
    want = (y2,) + torch.autograd.grad((y2 * w).sum(), ins)
    tol = 1e-5 if dtype == torch.float32 else 1e-12
    for name, a, b in zip(("out", "d0", "d1"), got, want):
        torch.testing.assert_close(a, b, rtol=tol, atol=tol, msg=name)


TINY = dict(n_qubits=2, qlcu_layers=1, feature_dim=3, d_model=8, d_state=3, n_layers=1, output_dim=2, dropout=0.0,
            quantum_steps=4, hidden_dim=4, chunk_size=4)


@pytest.mark.parametrize("model", ["classical_hydra", "quantum_hydra_ssm", "classical_mamba"])
def test_models_on_the_cuda_code_path_equal_the_cpu_path(interp, monkeypatch, model):
    """A whole model (conv, both scan directions, softplus folded in) on the Triton kernels gives
    the CPU path's loss and gradients."""
    from qssm import build_model

    def run(device):
        torch.manual_seed(0)
        net = build_model(model, **dict(TINY, n_timesteps=11)).to(device)
        x = torch.randn(3, 3, 11, generator=torch.Generator().manual_seed(2)).to(device)
        loss = net(x).square().sum()
        params = list(net.parameters())
        grads = torch.autograd.grad(loss, params, allow_unused=True)  # the document's unused LayerNorms
        return [loss.detach().cpu()] + [(g if g is not None else torch.zeros_like(p)).cpu() for g, p in zip(grads, params)]

    got = run(interp)
    monkeypatch.setenv("QSSM_TRITON", "")
    want = run("cpu")
    for i, (a, b) in enumerate(zip(got, want)):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-4 * (b.abs().max().item() + 1e-12), msg=f"tensor {i}")


def test_status_names_the_path(interp):
    assert ("interpreter" if interp == "cpu" else "on CUDA") in ts.status()


@pytest.mark.slow
@pytest.mark.parametrize("model", ["classical_mamba", "classical_hydra", "quantum_mamba_ssm"])
def test_launches_per_step_do_not_grow_with_T(interp, model):
    from bench.micro.launches import count_step

    torch.set_num_threads(1)
    counts = {t: count_step(model, dict(TINY, n_timesteps=t), 2, device=interp) for t in (64, 1024)}
    short, long = counts[64], counts[1024]
    assert short["triton_launches"] >= 4  # conv and scan, forward and backward
    assert (short["torch_ops"], short["triton_launches"]) == (long["torch_ops"], long["triton_launches"]), \
        {k: {n: v for n, v in c.items() if n != "ops_by_name"} for k, c in counts.items()}


@pytest.mark.slow
def test_kernels_compile_for_sm80_and_sm90_without_spills():
    _require_triton()
    env = {k: v for k, v in os.environ.items() if k not in ("TRITON_INTERPRET", "QSSM_TRITON")}
    env.setdefault("TRITON_DEFAULT_FP_FUSION", "1")
    proc = subprocess.run([sys.executable, "-m", "qssm.triton_aot", "--arch", "80", "90", "--json"],
                          capture_output=True, text=True, env=env, timeout=900)
    assert proc.returncode in (0, 1), proc.stderr[-3000:]
    rows = json.loads(proc.stdout)
    kernels = {r["kernel"].split()[0] for r in rows}
    assert {"scan_fwd", "scan_bwd", "conv_silu_fwd", "conv_silu_bwd"} <= kernels
    assert {r["arch"] for r in rows} == {"sm_80", "sm_90"}
    assert all(r["registers"] and r["registers"] <= 255 for r in rows)
    spilled = [f"{r['kernel']} {r['arch']}: local {r['local']} B, stack {r['stack']} B" for r in rows if r["spills"]]
    assert not spilled, "register spills:\n" + "\n".join(spilled)
    assert proc.returncode == 0
