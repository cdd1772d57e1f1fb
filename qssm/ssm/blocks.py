"""Selective SSM layers and the four blocks of docs/models.md§3.

Glossary (document symbols): d d_model, di = 2d inner width, N d_state, r dt rank
(quantum family floor(di/16), classical family ceil(d/16)), Δ delta (step size),
A (negative real state matrix, diagonal), B/C input/output matrices, D skip.
All blocks take and return (B, T, d).
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from .native_conv import conv_silu
from .scan import selective_scan


class RMSNorm(nn.Module):
    """RMSNorm with a weight only (eps 1e-5)."""

    def __init__(self, dim: int, eps: float = 1e-5):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps) * self.weight


def _init_dt_proj(dt_proj: nn.Linear, rank: int, dt_min=1e-3, dt_max=1e-1, floor=1e-4) -> None:
    """Mamba's Δ initialisation: weight U(±r^-0.5); bias = softplus⁻¹(Δ), Δ log-uniform in [dt_min, dt_max]."""
    bound = rank ** -0.5
    nn.init.uniform_(dt_proj.weight, -bound, bound)
    with torch.no_grad():
        dt = torch.exp(torch.rand(dt_proj.out_features) * (math.log(dt_max) - math.log(dt_min)) + math.log(dt_min))
        dt = dt.clamp(min=floor)
        dt_proj.bias.copy_(dt + torch.log(-torch.expm1(-dt)))


def causal_conv(di: int) -> nn.Conv1d:
    """Depthwise Conv1d(di, di, 4, groups=di, padding 3); the caller keeps the first T outputs."""
    return nn.Conv1d(di, di, kernel_size=4, groups=di, padding=3, bias=True)



class QuantumFamilySSM(nn.Module):
    """docs/models.md, quantum family: x_proj -> (Δ_raw, B, C); shared A (N,); out_proj on y."""

    def __init__(self, di: int, d_state: int, scan: str = "chunked"):
        super().__init__()
        if di // 16 < 1:
            from ..config import ConfigError
            raise ConfigError(f"d_model={di // 2} is not allowed for the quantum SSM models; need >= 8 "
                              "(their Δ rank is floor(2·d_model/16), at least 1)")
        self.rank, self.d_state, self.scan = di // 16, d_state, scan
        self.x_proj = nn.Linear(di, self.rank + 2 * d_state, bias=False)
        self.dt_proj = nn.Linear(self.rank, di)
        _init_dt_proj(self.dt_proj, self.rank)
        self.A_log = nn.Parameter(torch.log(torch.arange(1, d_state + 1, dtype=torch.float32)))
        self.D = nn.Parameter(torch.ones(di))
        self.out_proj = nn.Linear(di, di, bias=False)

    def forward(self, x: torch.Tensor, reverse: bool = False) -> torch.Tensor:
        # x: (B, T, di); reverse=True equals flip -> forward -> flip (every op but the scan is per timestep)
        dt_raw, b, c = self.x_proj(x).split([self.rank, self.d_state, self.d_state], -1)
        # Δ = softplus(dt_proj(dt_raw)), the softplus applied by the scan (fused on GPU)
        y = selective_scan(x, self.dt_proj(dt_raw), -torch.exp(self.A_log), b, c, self.D, impl=self.scan,
                           delta_softplus=True, reverse=reverse)
        return self.out_proj(y)


class ClassicalSSM(nn.Module):
    """docs/models.md, classical family: A (di, N), D, dt_proj; the caller supplies Δ_raw, B, C."""

    def __init__(self, di: int, d_state: int, rank: int, scan: str = "chunked"):
        super().__init__()
        self.scan = scan
        self.dt_proj = nn.Linear(rank, di)
        _init_dt_proj(self.dt_proj, rank)
        a = torch.log(torch.arange(1, d_state + 1, dtype=torch.float32)).repeat(di, 1)
        self.A_log = nn.Parameter(a)
        self.D = nn.Parameter(torch.ones(di))

    def forward(self, x, dt_raw, b, c, reverse: bool = False):
        # x: (B, T, di); dt_raw: (B, T, r); b, c: (B, T, N)
        # reverse: the scan over the time-reversed inputs, flipped back (folded into the scan)
        return selective_scan(x, self.dt_proj(dt_raw), -torch.exp(self.A_log), b, c, self.D, impl=self.scan,
                              delta_softplus=True, reverse=reverse)


class QMambaBlock(nn.Module):
    """in_proj -> (xc, z); Conv -> SiLU -> quantum-family SSM; y ⊙ SiLU(z) -> out_proj."""

    def __init__(self, d: int, d_state: int, scan: str = "chunked"):
        super().__init__()
        di = 2 * d
        self.di = di
        self.in_proj = nn.Linear(d, 2 * di, bias=False)
        self.conv = causal_conv(di)
        self.ssm = QuantumFamilySSM(di, d_state, scan)
        self.out_proj = nn.Linear(di, d, bias=False)
        self.norm = nn.LayerNorm(d)  # unused by forward; part of the document's parameter count

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # x: (B, T, d)
        xc, z = self.in_proj(x).split(self.di, -1)
        y = self.ssm(conv_silu(self.conv, xc))
        return self.out_proj(y * F.silu(z))


class QHydraBlock(nn.Module):
    """in_proj -> (xs, z); fwd SSM + bwd SSM (own weights) + diagonal, mixed; mix_out; ⊙ SiLU(z)."""

    def __init__(self, d: int, d_state: int, scan: str = "chunked"):
        super().__init__()
        di = 2 * d
        self.di = di
        self.in_proj = nn.Linear(d, 2 * di, bias=False)
        self.fwd = QuantumFamilySSM(di, d_state, scan)
        self.bwd = QuantumFamilySSM(di, d_state, scan)
        self.diagonal = nn.Linear(di, di, bias=False)
        self.alpha = nn.Parameter(torch.tensor(1.0))
        self.beta = nn.Parameter(torch.tensor(1.0))
        self.gamma = nn.Parameter(torch.tensor(0.5))
        self.mix_out = nn.Linear(di, di, bias=False)
        self.mix_norm = nn.LayerNorm(di)  # unused by forward (kept: in the document's count)
        self.out_proj = nn.Linear(di, d, bias=False)
        self.norm = nn.LayerNorm(d)  # unused by forward (kept: in the document's count)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # x: (B, T, d)
        xs, z = self.in_proj(x).split(self.di, -1)
        fwd = self.fwd(xs)
        bwd = self.bwd(xs, reverse=True)  # = self.bwd(xs.flip(1)).flip(1)
        diag = self.diagonal(xs)
        total = self.alpha.abs() + self.beta.abs() + self.gamma.abs() + 1e-8
        y = (self.alpha * fwd + self.beta * bwd + self.gamma * diag) / total
        y = self.mix_out(y)
        return self.out_proj(y * F.silu(z))


class CMambaBlock(nn.Module):
    """Pre-norm RMSNorm -> in_proj -> (x, z); Conv -> SiLU -> x_proj -> classical SSM;
    y ⊙ SiLU(z) -> out_proj; plus the block input (residual inside the block)."""

    def __init__(self, d: int, d_state: int, scan: str = "chunked"):
        super().__init__()
        di = 2 * d
        self.di, self.d_state, self.rank = di, d_state, math.ceil(d / 16)
        self.norm = RMSNorm(d)
        self.in_proj = nn.Linear(d, 2 * di, bias=False)
        self.conv = causal_conv(di)
        self.x_proj = nn.Linear(di, self.rank + 2 * d_state, bias=False)
        self.ssm = ClassicalSSM(di, d_state, self.rank, scan)
        self.out_proj = nn.Linear(di, d, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # x: (B, T, d)
        xi, z = self.in_proj(self.norm(x)).split(self.di, -1)
        xi = conv_silu(self.conv, xi)
        dt_raw, b, c = self.x_proj(xi).split([self.rank, self.d_state, self.d_state], -1)
        y = self.ssm(xi, dt_raw, b, c)
        return self.out_proj(y * F.silu(z)) + x


class CHydraBlock(nn.Module):
    """in_proj -> (z, x, B, C, Δ_raw); Conv on x -> SiLU; the same classical SSM forward and on
    the time-reversed inputs (flipped back, added); RMSNorm(di) ⊙ SiLU(z) -> out_proj."""

    def __init__(self, d: int, d_state: int, scan: str = "chunked"):
        super().__init__()
        di = 2 * d
        self.di, self.d_state, self.rank = di, d_state, math.ceil(d / 16)
        self.in_proj = nn.Linear(d, 2 * di + 2 * d_state + self.rank, bias=False)
        self.conv = causal_conv(di)
        self.ssm = ClassicalSSM(di, d_state, self.rank, scan)
        self.norm = RMSNorm(di)
        self.out_proj = nn.Linear(di, d, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # x: (B, T, d)
        z, xi, b, c, dt_raw = self.in_proj(x).split([self.di, self.di, self.d_state, self.d_state, self.rank], -1)
        xi = conv_silu(self.conv, xi)
        y = self.ssm(xi, dt_raw, b, c) + self.ssm(xi, dt_raw, b, c, reverse=True)
        return self.out_proj(self.norm(y) * F.silu(z))
