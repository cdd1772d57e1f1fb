"""Input layout: the models work in (B, T, D); callers may pass (B, D, T), (B, T, D) or (B, D)."""
from __future__ import annotations

import torch


def to_btd(x: torch.Tensor, layout: str, feature_dim: int) -> torch.Tensor:
    """Return x as (B, T, D). layout is "BDT", "BTD" or "auto"; a 2-D (B, D) input is T = 1."""
    if not isinstance(x, torch.Tensor):
        raise ValueError(f"input must be a torch.Tensor; got {type(x).__name__}")
    if x.dim() == 2:
        if x.shape[1] != feature_dim:
            raise ValueError(f"input (B, D) must have D = feature_dim = {feature_dim}; got shape {tuple(x.shape)}")
        return x.unsqueeze(1)
    if x.dim() != 3:
        raise ValueError(f"input must be 3-D ({layout}) or 2-D (B, D) with D = feature_dim = {feature_dim}; "
                         f"got {x.dim()}-D shape {tuple(x.shape)}")
    if layout == "auto":
        d_at_1, d_at_2 = x.shape[1] == feature_dim, x.shape[2] == feature_dim
        if d_at_1 and d_at_2:
            raise ValueError(f"layout='auto' cannot tell (B, D, T) from (B, T, D) for shape {tuple(x.shape)}: "
                             f"feature_dim == T == {feature_dim}; pass layout='BDT' or layout='BTD'")
        if not (d_at_1 or d_at_2):
            raise ValueError(f"input shape {tuple(x.shape)} has no axis of size feature_dim = {feature_dim} "
                             "at position 1 or 2")
        layout = "BDT" if d_at_1 else "BTD"
    if layout == "BDT":
        if x.shape[1] != feature_dim:
            raise ValueError(f"input with layout='BDT' must be (B, D={feature_dim}, T); got shape {tuple(x.shape)}")
        x = x.transpose(1, 2)
    elif x.shape[2] != feature_dim:
        raise ValueError(f"input with layout='BTD' must be (B, T, D={feature_dim}); got shape {tuple(x.shape)}")
    if x.shape[0] < 1 or x.shape[1] < 1:
        raise ValueError(f"input must have B >= 1 and T >= 1; got (B, T, D) = {tuple(x.shape)}")
    return x
