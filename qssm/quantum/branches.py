"""The "superposition branches" modules of docs/models.md: three circuits combined with complex
coefficients α, β, γ.

Glossary: q n_qubits, l qlcu_layers, d model width (SSM family input), D feature_dim (Gated input).
"""
from __future__ import annotations

import math

import torch
from torch import nn

from . import gated_circuit, ssm_circuit


def _check_device(backend: str, qml_device: str, n_qubits: int) -> None:
    """With the PennyLane backend, create the device now: a missing plugin (or lightning.gpu
    without CUDA) is an error at model construction, naming what to install, not at forward."""
    if backend == "pennylane":
        from .pennylane_backend import make_device
        make_device(qml_device, n_qubits)


def _coeffs(low: float, high: float) -> nn.ParameterDict:
    p = nn.ParameterDict()
    for name in ("alpha", "beta", "gamma"):
        p[f"{name}_real"] = nn.Parameter(torch.empty(()).uniform_(low, high))
        p[f"{name}_imag"] = nn.Parameter(torch.zeros(()))
    return p


class SSMBranches(nn.Module):
    """§1a: (B', d) -> (B', 3q) = cat(|α|·o1, |β|·o2, |γ|·o3), with o_k the <Z> of circuit k."""

    def __init__(self, d: int, n_qubits: int, layers: int, backend: str = "torch",
                 qml_device: str = "default.qubit"):
        super().__init__()
        self.n_qubits, self.layers, self.backend, self.qml_device = n_qubits, layers, backend, qml_device
        _check_device(backend, qml_device, n_qubits)
        self.input_proj = nn.Linear(d, n_qubits)
        self.projs = nn.ModuleList(nn.Linear(d, 3 * n_qubits * layers) for _ in range(3))
        self.coeffs = _coeffs(0.25, 0.75)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # x: (B', d)
        embed = torch.tanh(self.input_proj(x)) * math.pi  # (B', q)
        c = self.coeffs
        # |alpha|, |beta|, |gamma| via complex abs (its gradient at 0 is 0, never NaN)
        mags = torch.stack([torch.complex(c[f"{k}_real"], c[f"{k}_imag"]).abs() for k in ("alpha", "beta", "gamma")])
        mags = mags / torch.sqrt((mags ** 2).sum() + 1e-8)
        outs = [m * ssm_circuit(embed, proj(x), backend=self.backend, device=self.qml_device)
                for m, proj in zip(mags, self.projs)]
        return torch.cat(outs, -1)  # (B', 3q)


class GatedBranches(nn.Module):
    """§1b: (B', D) -> (B', 3q) = |α·m1 + β·m2 + γ·m3| with m_k the <X>,<Y>,<Z> of circuit k."""

    def __init__(self, D: int, n_qubits: int, layers: int, backend: str = "torch",
                 qml_device: str = "default.qubit"):
        super().__init__()
        if n_qubits < 2:
            raise ValueError(f"n_qubits={n_qubits} is not allowed for the Gated models; need >= 2 "
                             "(the CRX rings need two distinct wires)")
        self.n_qubits, self.layers, self.backend, self.qml_device = n_qubits, layers, backend, qml_device
        _check_device(backend, qml_device, n_qubits)
        n_ang = 4 * n_qubits * layers
        self.projs = nn.ModuleList(nn.Linear(D, n_ang) for _ in range(3))
        self.bases = nn.ParameterList(nn.Parameter(torch.empty(n_ang).uniform_(0, 2 * math.pi)) for _ in range(3))
        self.coeffs = _coeffs(0.0, 1.0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # x: (B', D)
        c = self.coeffs
        re = torch.stack([c[f"{k}_real"] for k in ("alpha", "beta", "gamma")])
        im = torch.stack([c[f"{k}_imag"] for k in ("alpha", "beta", "gamma")])
        norm = torch.sqrt((re ** 2 + im ** 2).sum() + 1e-9)
        re, im = re / norm, im / norm
        out_re, out_im = 0.0, 0.0
        for k in range(3):
            angles = torch.sigmoid(self.projs[k](x) + self.bases[k]) * (2 * math.pi)
            m = gated_circuit(angles, n_qubits=self.n_qubits, backend=self.backend, device=self.qml_device)
            out_re = out_re + re[k] * m
            out_im = out_im + im[k] * m
        return torch.complex(out_re, out_im).abs()  # (B', 3q); abs of complex has a 0 gradient at 0
