"""Behaviour of the six models: shapes, layouts, learning, gradient flow, causality, config errors."""
import pytest
import torch

import qssm
from qssm.ssm.blocks import CMambaBlock, QMambaBlock

SMALL = dict(n_qubits=2, qlcu_layers=1, feature_dim=5, d_model=16, d_state=4, n_layers=1, output_dim=3,
             hidden_dim=8, chunk_size=4, quantum_steps=6, dropout=0.0)
# parameters the forward never uses (LayerNorms kept because the document's count includes them)
UNUSED = {"quantum_mamba_ssm": {"blocks.0.norm.weight", "blocks.0.norm.bias"},
          "quantum_hydra_ssm": {"blocks.0.norm.weight", "blocks.0.norm.bias",
                                "blocks.0.mix_norm.weight", "blocks.0.mix_norm.bias"}}


@pytest.mark.parametrize("name", qssm.MODEL_NAMES)
@pytest.mark.parametrize("T", [1, 3, 10, 9])  # 1; < chunk_size; not a multiple of it; > quantum_steps
def test_output_shape_for_any_T(name, T):
    torch.manual_seed(0)
    model = qssm.build_model(name, **SMALL)
    out = model(torch.randn(2, 5, T))
    assert out.shape == (2, 3) and torch.isfinite(out).all()


@pytest.mark.parametrize("name", qssm.MODEL_NAMES)
def test_layouts_agree(name):
    torch.manual_seed(0)
    model = qssm.build_model(name, **SMALL).eval()
    x = torch.randn(2, 5, 7)  # (B, D, T)
    ref = model(x)
    for layout, inp in (("BTD", x.transpose(1, 2)), ("auto", x), ("auto", x.transpose(1, 2))):
        other = qssm.build_model(name, **SMALL, layout=layout).eval()
        other.load_state_dict(model.state_dict())
        torch.testing.assert_close(other(inp), ref)
    # (B, D) is T = 1
    torch.testing.assert_close(model(x[:, :, 0]), model(x[:, :, :1]))


def test_layout_errors():
    auto = qssm.build_model("classical_mamba", **SMALL, layout="auto")
    with pytest.raises(ValueError, match="layout='BDT' or layout='BTD'"):
        auto(torch.randn(2, 5, 5))
    bdt = qssm.build_model("classical_mamba", **SMALL)
    with pytest.raises(ValueError, match=r"\(B, D=5, T\).*\(2, 7, 5\)"):
        bdt(torch.randn(2, 7, 5))
    with pytest.raises(ValueError, match="3-D"):
        bdt(torch.randn(2, 5, 3, 1))
    with pytest.raises(ValueError, match="feature_dim = 5"):
        bdt(torch.randn(2, 4))


@pytest.mark.parametrize("name", qssm.MODEL_NAMES)
def test_few_steps_lower_the_loss(name):
    torch.manual_seed(1)
    model = qssm.build_model(name, **{**SMALL, "n_qubits": 3, "qlcu_layers": 2})
    x, y = torch.randn(16, 5, 8), torch.randint(0, 3, (16,))
    opt = torch.optim.AdamW(model.parameters(), lr=3e-2)
    losses = []
    for _ in range(40):
        opt.zero_grad()
        loss = torch.nn.functional.cross_entropy(model(x), y)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        losses.append(loss.item())
    assert sum(losses[-5:]) / 5 < 0.85 * losses[0], losses


@pytest.mark.parametrize("name", qssm.MODEL_NAMES)
def test_gradients_reach_every_used_parameter(name):
    torch.manual_seed(2)
    model = qssm.build_model(name, **SMALL)
    model(torch.randn(4, 5, 9)).pow(2).sum().backward()
    for pname, p in model.named_parameters():
        if pname in UNUSED.get(name, ()):
            assert p.grad is None, pname
            continue
        assert p.grad is not None, f"{pname} gets no gradient"
        assert torch.isfinite(p.grad).all(), pname
        # imaginary parts of real-initialised |alpha| coefficients start exactly at a zero gradient
        if not pname.endswith("_imag"):
            assert p.grad.abs().sum() > 0, f"{pname} has an all-zero gradient"


@pytest.mark.parametrize("block_cls", [QMambaBlock, CMambaBlock])
@pytest.mark.parametrize("scan", ["reference", "chunked"])
def test_mamba_blocks_are_causal(block_cls, scan):
    torch.manual_seed(3)
    block = block_cls(8, 4, scan)
    x = torch.randn(2, 12, 8)
    y = block(x)
    for t in (0, 5, 10):
        x2 = x.clone()
        x2[:, t + 1:] = torch.randn_like(x2[:, t + 1:])
        torch.testing.assert_close(block(x2)[:, :t + 1], y[:, :t + 1])
        assert not torch.allclose(block(x2)[:, t + 1:], y[:, t + 1:])


def test_build_model_ignores_unused_and_rejects_unknown():
    m = qssm.build_model("classical_mamba", **SMALL, quantum_backend="pennylane")
    assert isinstance(m, qssm.ClassicalMamba)
    with pytest.raises(qssm.ConfigError, match="'n_qbits'"):
        qssm.build_model("classical_mamba", n_qbits=4)
    with pytest.raises(qssm.ConfigError, match="model='mamba'"):
        qssm.build_model("mamba")


@pytest.mark.parametrize("field,value", [
    ("n_qubits", 0), ("d_model", -1), ("dropout", 1.0), ("chunk_size", 2.5), ("scan", "fast"),
    ("quantum_backend", "qiskit"), ("qml_device", "braket"), ("layout", "TBD"), ("n_layers", True),
])
def test_bad_values_name_the_field(field, value):
    with pytest.raises(qssm.ConfigError, match=f"^{field}="):
        qssm.build_model("quantum_mamba_ssm", **{field: value})


@pytest.mark.parametrize("name", ["quantum_mamba_gated", "quantum_hydra_gated"])
def test_gated_models_need_two_qubits(name):
    with pytest.raises(ValueError, match="n_qubits"):
        qssm.build_model(name, n_qubits=1)


def test_ssm_models_run_with_one_qubit():
    model = qssm.build_model("quantum_mamba_ssm", **{**SMALL, "n_qubits": 1})
    assert model(torch.randn(2, 5, 4)).shape == (2, 3)


@pytest.mark.parametrize("name", ["quantum_mamba_ssm", "quantum_hydra_gated"])
def test_pennylane_backend_model_matches_torch(name):
    torch.manual_seed(4)
    a = qssm.build_model(name, **SMALL).double().eval()
    b = qssm.build_model(name, **SMALL, quantum_backend="pennylane").double().eval()
    b.load_state_dict(a.state_dict())
    x = torch.randn(2, 5, 6, dtype=torch.float64)
    ya, yb = a(x), b(x)
    torch.testing.assert_close(ya, yb, atol=1e-8, rtol=1e-8)
    ga = torch.autograd.grad(ya.sum(), list(a.parameters()), allow_unused=True)
    gb = torch.autograd.grad(yb.sum(), list(b.parameters()), allow_unused=True)
    for u, v in zip(ga, gb):
        assert (u is None) == (v is None)
        if u is not None:
            torch.testing.assert_close(u, v, atol=1e-8, rtol=1e-6)


@pytest.mark.parametrize("name", ["quantum_mamba_ssm", "quantum_hydra_ssm", "classical_mamba", "classical_hydra"])
def test_scan_impls_give_the_same_model(name):
    torch.manual_seed(5)
    a = qssm.build_model(name, **SMALL, scan="reference").double()
    b = qssm.build_model(name, **SMALL, scan="chunked").double()
    b.load_state_dict(a.state_dict())
    x = torch.randn(3, 5, 21, dtype=torch.float64)
    ya, yb = a(x), b(x)
    torch.testing.assert_close(ya, yb, atol=1e-10, rtol=1e-10)
    ga = torch.autograd.grad(ya.square().sum(), [p for p in a.parameters() if p.requires_grad], allow_unused=True)
    gb = torch.autograd.grad(yb.square().sum(), [p for p in b.parameters() if p.requires_grad], allow_unused=True)
    for u, v in zip(ga, gb):
        if u is not None:
            torch.testing.assert_close(u, v, atol=1e-9, rtol=1e-8)


def test_default_scan_is_chunked():
    assert qssm.ModelConfig().scan == "chunked"


def test_zero_length_input_is_a_value_error():
    model = qssm.build_model("classical_mamba", **SMALL)
    with pytest.raises(ValueError, match="T >= 1"):
        model(torch.randn(2, 5, 0))


def test_unusable_pennylane_device_fails_at_construction():
    if torch.cuda.is_available():
        pytest.skip("CUDA present: lightning.gpu may work")
    with pytest.raises((ImportError, RuntimeError), match=r"qssm-bench\[gpu\]"):
        qssm.build_model("quantum_mamba_gated", **SMALL, quantum_backend="pennylane", qml_device="lightning.gpu")


@pytest.mark.parametrize("name", qssm.MODEL_NAMES)
def test_native_kernels_give_the_same_model(name, monkeypatch):
    """Every model with the native CPU kernels (scan, conv+SiLU, circuits) equals the same model
    on the torch paths: output and every parameter gradient (float64)."""
    from native_util import require_native
    from qssm import native
    from qssm.native import build

    require_native()
    torch.manual_seed(7)
    model = qssm.build_model(name, **SMALL).double()
    x = torch.randn(3, 5, 21, dtype=torch.float64)
    params = [p for p in model.parameters() if p.requires_grad]

    def run():
        y = model(x)
        return (y,) + torch.autograd.grad(y.square().sum(), params, allow_unused=True)

    with_kernels = run()
    monkeypatch.setitem(build._state, "lib", None)  # as QSSM_NATIVE=0: every torch path
    without = run()
    monkeypatch.undo()
    assert native.load() is not None
    for u, v in zip(with_kernels, without):
        assert (u is None) == (v is None)
        if u is not None:
            torch.testing.assert_close(u, v, atol=1e-10, rtol=1e-9)
