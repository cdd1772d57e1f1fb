"""The README documents every result column and the two quick-start commands."""
from pathlib import Path

from bench import schema

README = (Path(__file__).resolve().parent.parent / "README.md").read_text()


def test_every_result_column_is_documented():
    missing = [c for c in schema.COLUMN_NAMES if f"| `{c}` |" not in README]
    assert not missing, f"README lacks result columns: {missing}"


def test_quick_start_commands():
    assert "bash scripts/setup.sh demo" in README and "bash scripts/setup.sh test" in README


def test_readme_sweep_example_expands(tmp_path):
    from bench.sweep import load_sweep
    block = README.split("```yaml\n", 1)[1].split("```", 1)[0]
    path = tmp_path / "example.yaml"
    path.write_text(block)
    cells = load_sweep(path).cells
    models = {c.model for c in cells}
    assert len(models) == 6
    assert not any(c.model == "quantum_hydra_ssm" and c.seq_len == 256 for c in cells)
    assert {c.chunk_size for c in cells if c.model == "quantum_mamba_gated"} == {8, 16}


def test_readme_params_examples_run(capsys):
    import re
    import shlex

    from bench.cli import main
    examples = re.findall(r"`(qssm params[^`]*)`", README)
    assert len(examples) >= 2
    for example in examples:
        assert main(shlex.split(example)[1:]) == 0, example
    capsys.readouterr()
