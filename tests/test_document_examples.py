"""The design document's §6.1 and §6.2 examples, run as written with the import changed to qssm."""
import torch
import torch.nn as nn
import torch.optim as optim

from qssm import QuantumHydraSSM, QuantumMambaSSM


def test_section_6_1_basic_usage():
    device = "cuda" if torch.cuda.is_available() else "cpu"
    model_mamba = QuantumMambaSSM(n_qubits=4, n_timesteps=100, qlcu_layers=2, feature_dim=64, d_model=128,
                                  d_state=16, n_layers=2, output_dim=10, dropout=0.1, device=device)
    model_hydra = QuantumHydraSSM(n_qubits=4, n_timesteps=100, qlcu_layers=2, feature_dim=64, d_model=128,
                                  d_state=16, n_layers=2, output_dim=10, dropout=0.1, device=device)
    x = torch.randn(32, 64, 100, device=device)  # (batch, features, timesteps)
    assert model_mamba(x).shape == (32, 10)
    assert model_hydra(x).shape == (32, 10)


def test_section_6_2_training_example():
    device = "cuda" if torch.cuda.is_available() else "cpu"  # the document says "cuda"
    model = QuantumMambaSSM(n_qubits=4, n_timesteps=100, feature_dim=64, d_model=128, output_dim=10, device=device)
    criterion = nn.CrossEntropyLoss()
    optimizer = optim.AdamW(model.parameters(), lr=1e-3)
    dataloader = [(torch.randn(8, 64, 100), torch.randint(0, 10, (8,))) for _ in range(2)]
    for epoch in range(2):
        model.train()
        for batch_x, batch_y in dataloader:
            batch_x = batch_x.to(device)
            batch_y = batch_y.to(device)
            optimizer.zero_grad()
            outputs = model(batch_x)
            loss = criterion(outputs, batch_y)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), max_norm=1.0)
            optimizer.step()
    assert torch.isfinite(loss)
