"""The six models of docs/models.md and the registry `build_model(name, **config)`.

Glossary: B batch, T timesteps, D feature_dim, d d_model, N d_state, L n_layers, O output_dim,
q n_qubits, l qlcu_layers, H hidden_dim, C chunk_size. Every model accepts (B, D, T) (the
document's layout, default), (B, T, D) or (B, D) (T = 1) as chosen by `layout`, and returns
logits (B, O).
"""
from __future__ import annotations

import torch
from torch import nn

from .amp import upcast
from .config import CONFIG_FIELDS, ConfigError, ModelConfig
from .gated import ChunkedGatedRecurrence
from .layout import to_btd
from .quantum.branches import GatedBranches, SSMBranches
from .ssm.blocks import CHydraBlock, CMambaBlock, QHydraBlock, QMambaBlock, RMSNorm


class _Base(nn.Module):
    """Shared constructor: validated config, input layout, device placement."""

    def __init__(self, **kwargs):
        super().__init__()
        self.config = ModelConfig.from_kwargs(**kwargs)

    def _finish(self):
        if self.config.device is not None:
            self.to(self.config.device)

    def _input(self, x: torch.Tensor) -> torch.Tensor:
        return to_btd(x, self.config.layout, self.config.feature_dim)

    def _quantum(self, cls, width):
        c = self.config
        return cls(width, c.n_qubits, c.qlcu_layers, c.quantum_backend, c.qml_device)

    def _gated(self):
        """A chunked gated recurrence (Gated models), which needs n_qubits >= 2."""
        c = self.config
        if c.n_qubits < 2:
            raise ConfigError(f"n_qubits={c.n_qubits} is not allowed for {type(self).__name__}; need >= 2 "
                              "(the Gated circuit's CRX rings need two distinct wires)")
        return ChunkedGatedRecurrence(c.feature_dim, c.hidden_dim, c.n_qubits, c.qlcu_layers, c.chunk_size,
                                      c.dropout, c.quantum_backend, c.qml_device)


def _complex_coeffs(n: int = 3) -> nn.Parameter:
    return nn.Parameter(torch.complex(torch.rand(n), torch.rand(n)))  # complex64, U(0,1) parts


class QuantumMambaSSM(_Base):
    """feature_proj -> quantum enhancement of the first quantum_steps timesteps -> L x QMambaBlock."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        c = self.config
        d = c.d_model
        self.feature_proj = nn.Sequential(nn.Linear(c.feature_dim, d), nn.LayerNorm(d), nn.SiLU())
        self.branches = self._quantum(SSMBranches, d)
        self.quantum_proj = nn.Linear(3 * c.n_qubits, d)
        self.dropout = nn.Dropout(c.dropout)
        self.blocks = nn.ModuleList(QMambaBlock(d, c.d_state, c.scan) for _ in range(c.n_layers))
        self.norm = nn.LayerNorm(d)
        self.head = nn.Sequential(nn.Linear(d, d), nn.ReLU(), nn.Dropout(c.dropout), nn.Linear(d, c.output_dim))
        self._finish()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.feature_proj(self._input(x))  # (B, T, d)
        bsz, t, d = x.shape
        tq = min(t, self.config.quantum_steps)
        q = self.quantum_proj(self.branches(x[:, :tq].reshape(bsz * tq, d))).reshape(bsz, tq, d)
        x = torch.cat([(x[:, :tq] + q) / 2, x[:, tq:]], 1)
        x = self.dropout(x)
        for block in self.blocks:
            x = x + block(x)
        return self.head(self.norm(x).mean(1))  # (B, O)


class QuantumHydraSSM(_Base):
    """feature_proj -> quantum summary (fwd/bwd/diag branches) added to every step -> L x QHydraBlock
    -> complex-weighted pooling of first half, second half and the whole sequence."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        c = self.config
        d = c.d_model
        self.feature_proj = nn.Sequential(nn.Linear(c.feature_dim, d), nn.LayerNorm(d), nn.SiLU())
        self.branches_fwd = self._quantum(SSMBranches, d)
        self.branches_bwd = self._quantum(SSMBranches, d)
        self.branches_diag = self._quantum(SSMBranches, d)
        self.quantum_proj = nn.Linear(9 * c.n_qubits, d)
        self.dropout = nn.Dropout(c.dropout)
        self.blocks = nn.ModuleList(QHydraBlock(d, c.d_state, c.scan) for _ in range(c.n_layers))
        self.norm = nn.LayerNorm(d)
        self.coeffs = _complex_coeffs()
        self.head = nn.Linear(d, c.output_dim)
        self._finish()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.feature_proj(self._input(x))  # (B, T, d)
        qf = self.branches_fwd(x[:, 0])
        qb = self.branches_bwd(x[:, -1])
        qg = self.branches_diag(x.mean(1))
        x = x + self.quantum_proj(torch.cat([qf, qb, qg], -1)).unsqueeze(1)  # (B, T, d)
        x = self.dropout(x)
        for block in self.blocks:
            x = x + block(x)
        x = self.norm(x)
        t = x.shape[1]
        h = max(t // 2, 1)
        x_f = x[:, :h].mean(1)
        x_b = x[:, h:].mean(1) if t > 1 else x_f
        x_g = x.mean(1)
        a = self.coeffs / torch.sqrt((self.coeffs.abs() ** 2).sum())
        x_f, x_b, x_g = upcast(x_f, x_b, x_g)  # under fp16 autocast: no complex-half arithmetic
        mixed = a[0] * x_f + a[1] * x_b + a[2] * x_g  # complex (B, d)
        return self.head(mixed.abs())


class QuantumMambaGated(_Base):
    """xs = SiLU(feature_proj(Dropout(x))) -> chunked gated recurrence -> head on the final h."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        c = self.config
        D, H = c.feature_dim, c.hidden_dim
        self.dropout = nn.Dropout(c.dropout)
        self.feature_proj = nn.Linear(D, D)
        self.recurrence = self._gated()
        self.head = nn.Sequential(nn.Linear(H, H), nn.ReLU(), nn.Dropout(c.dropout), nn.Linear(H, c.output_dim))
        self._finish()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        xs = torch.nn.functional.silu(self.feature_proj(self.dropout(self._input(x))))  # (B, T, D)
        return self.head(self.recurrence(xs))  # (B, O)


class QuantumHydraGated(_Base):
    """xs = feature_proj(Dropout(x)); forward and backward chunked recurrences and a global branch,
    mixed with complex coefficients, normalised per sample; Linear(H, O) on the modulus."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        c = self.config
        self.dropout = nn.Dropout(c.dropout)
        self.feature_proj = nn.Linear(c.feature_dim, c.feature_dim)
        self.recurrence_fwd = self._gated()
        self.recurrence_bwd = self._gated()
        self.branches_global = self._quantum(GatedBranches, c.feature_dim)
        self.global_proj = nn.Linear(3 * c.n_qubits, c.hidden_dim)
        self.coeffs = _complex_coeffs()
        self.head = nn.Linear(c.hidden_dim, c.output_dim)
        self._finish()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        xs = self.feature_proj(self.dropout(self._input(x)))  # (B, T, D)
        h_f = self.recurrence_fwd(xs)  # (B, H)
        h_b = self.recurrence_bwd(xs.flip(1))
        h_g = self.global_proj(self.branches_global(xs.mean(1)))
        a = self.coeffs
        h_f, h_b, h_g = upcast(h_f, h_b, h_g)  # under fp16 autocast: no complex-half arithmetic
        c = a[0] * h_f + a[1] * h_b + a[2] * h_g  # complex (B, H)
        c = c / torch.sqrt((c.abs() ** 2).sum(-1, keepdim=True) + 1e-8)
        return self.head(c.abs())


class ClassicalMamba(_Base):
    """embedding -> Dropout -> L x CMambaBlock -> RMSNorm -> mean over T -> Linear(d, O)."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        c = self.config
        d = c.d_model
        self.embedding = nn.Linear(c.feature_dim, d)
        self.dropout = nn.Dropout(c.dropout)
        self.blocks = nn.ModuleList(CMambaBlock(d, c.d_state, c.scan) for _ in range(c.n_layers))
        self.norm = RMSNorm(d)
        self.head = nn.Linear(d, c.output_dim)
        self._finish()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.dropout(self.embedding(self._input(x)))  # (B, T, d)
        for block in self.blocks:
            x = block(x)  # the residual is inside CMambaBlock
        return self.head(self.norm(x).mean(1))


class ClassicalHydra(_Base):
    """embedding -> Dropout -> L x (x = RMSNorm_l(CHydraBlock(x)) + x) -> RMSNorm -> mean -> MLP head."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        c = self.config
        d = c.d_model
        if d < 2:
            raise ConfigError(f"d_model={d} is not allowed for ClassicalHydra; need >= 2 (its head is d -> d//2)")
        self.embedding = nn.Linear(c.feature_dim, d)
        self.dropout = nn.Dropout(c.dropout)
        self.blocks = nn.ModuleList(CHydraBlock(d, c.d_state, c.scan) for _ in range(c.n_layers))
        self.block_norms = nn.ModuleList(RMSNorm(d) for _ in range(c.n_layers))
        self.norm = RMSNorm(d)
        self.head = nn.Sequential(nn.Linear(d, d // 2), nn.GELU(), nn.Dropout(c.dropout), nn.Linear(d // 2, c.output_dim))
        self._finish()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.dropout(self.embedding(self._input(x)))  # (B, T, d)
        for block, norm in zip(self.blocks, self.block_norms):
            x = norm(block(x)) + x
        return self.head(self.norm(x).mean(1))


MODELS = {
    "quantum_mamba_ssm": QuantumMambaSSM,
    "quantum_hydra_ssm": QuantumHydraSSM,
    "quantum_mamba_gated": QuantumMambaGated,
    "quantum_hydra_gated": QuantumHydraGated,
    "classical_mamba": ClassicalMamba,
    "classical_hydra": ClassicalHydra,
}
MODEL_NAMES = tuple(MODELS)

_COMMON = ("n_timesteps", "feature_dim", "output_dim", "dropout", "layout", "device")
_QUANTUM = ("n_qubits", "qlcu_layers", "quantum_backend", "qml_device")
_SSM = ("d_model", "d_state", "n_layers", "scan")
_GATED = ("hidden_dim", "chunk_size")
# The config fields that can change each model (the others are ignored by it).
MODEL_FIELDS = {
    "quantum_mamba_ssm": _COMMON + _QUANTUM + _SSM + ("quantum_steps",),
    "quantum_hydra_ssm": _COMMON + _QUANTUM + _SSM,
    "quantum_mamba_gated": _COMMON + _QUANTUM + _GATED,
    "quantum_hydra_gated": _COMMON + _QUANTUM + _GATED,
    "classical_mamba": _COMMON + _SSM,
    "classical_hydra": _COMMON + _SSM,
}


def build_model(name: str, **config) -> nn.Module:
    """Build a model by registry name from the union of settings; settings it does not use are
    ignored (validated all the same); an unknown setting or model name is a ConfigError."""
    if name not in MODELS:
        raise ConfigError(f"model={name!r} is not known; choose one of {', '.join(MODEL_NAMES)}")
    ModelConfig.from_kwargs(**config)  # validates every key, used or not
    used = {k: v for k, v in config.items() if k in MODEL_FIELDS[name]}
    return MODELS[name](**used)


def count_parameters(model: nn.Module) -> int:
    """docs/models.md counting rule: trainable elements; a complex64 scalar counts as 1."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


assert set(CONFIG_FIELDS) >= {f for fs in MODEL_FIELDS.values() for f in fs}
