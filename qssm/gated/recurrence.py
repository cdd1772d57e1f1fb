"""Chunked gated recurrence (QuantumMambaGated / QuantumHydraGated).

Glossary: D feature_dim, H hidden_dim, C chunk_size, q n_qubits, l qlcu_layers.
For each chunk of C timesteps (the last may be shorter): Gated-family superposition branches on
every timestep -> mean over the chunk -> chunk_agg (Linear(3q, H) -> LayerNorm -> SiLU) ->
Dropout -> u; with c = cat(h, u): f, i, o = σ(W c), g = tanh(W_g c); h = f⊙h + i⊙g; h = o⊙tanh(h).

The circuits do not depend on h, so all timesteps' circuits run as one batch of B·T; only the
gate update walks the T/C chunks in order.
"""
from __future__ import annotations

import torch
from torch import nn

from ..quantum.branches import GatedBranches


class ChunkedGatedRecurrence(nn.Module):
    def __init__(self, D: int, H: int, n_qubits: int, layers: int, chunk_size: int, dropout: float,
                 backend: str = "torch", qml_device: str = "default.qubit"):
        super().__init__()
        self.H, self.chunk_size = H, chunk_size
        self.branches = GatedBranches(D, n_qubits, layers, backend, qml_device)
        self.chunk_agg = nn.Sequential(nn.Linear(3 * n_qubits, H), nn.LayerNorm(H), nn.SiLU())
        self.dropout = nn.Dropout(dropout)
        self.W_f = nn.Linear(2 * H, H)
        self.W_i = nn.Linear(2 * H, H)
        self.W_o = nn.Linear(2 * H, H)
        self.W_g = nn.Linear(2 * H, H)

    def forward(self, xs: torch.Tensor) -> torch.Tensor:
        # xs: (B, T, D) -> final h: (B, H)
        bsz, t, _ = xs.shape
        m = self.branches(xs.reshape(bsz * t, -1)).reshape(bsz, t, -1)  # (B, T, 3q)
        n_chunks = -(-t // self.chunk_size)
        means = torch.stack([m[:, k * self.chunk_size:(k + 1) * self.chunk_size].mean(1)
                             for k in range(n_chunks)], 1)  # (B, T/C, 3q)
        us = self.dropout(self.chunk_agg(means))  # (B, T/C, H)
        h = xs.new_zeros(bsz, self.H)
        for u in us.unbind(1):
            c = torch.cat([h, u], -1)  # (B, 2H)
            f, i, o = torch.sigmoid(self.W_f(c)), torch.sigmoid(self.W_i(c)), torch.sigmoid(self.W_o(c))
            g = torch.tanh(self.W_g(c))
            h = f * h + i * g
            h = o * torch.tanh(h)
        return h
