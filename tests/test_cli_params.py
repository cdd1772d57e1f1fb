"""`qssm params`: every integer model setting as a flag; counts as docs/models.md gives them."""
import json

import pytest
from test_counts import ORDER, TABLE

from bench.cli import main
from qssm import MODELS


def flags(config: dict) -> list:
    """`--field value` for the integer settings of a docs/models.md configuration (dropout is no flag)."""
    return [a for k, v in config.items() if k != "dropout" for a in (f"--{k}", str(v))]


def printed_counts(out: str) -> dict:
    """{class name: parameters} from the table lines `Class  12,345  1.0x`."""
    rows = (line.split() for line in out.splitlines()[2:])
    return {r[0]: int(r[1].replace(",", "")) for r in rows}


@pytest.mark.parametrize("name", ["alt1", "alt2"])
def test_alternative_configs_print_the_models_md_counts(capsys, name):
    config, counts = TABLE[name]
    assert main(["params", *flags(config)]) == 0
    expected = {MODELS[m].__name__: n for m, n in zip(ORDER, counts)}
    assert printed_counts(capsys.readouterr().out) == expected


def test_default_is_the_seed_config(capsys):
    config, counts = TABLE["seed"]
    assert main(["params", "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert all(doc["config"][k] == v for k, v in config.items() if k != "dropout")
    assert [(r["model"], r["parameters"]) for r in doc["models"]] == list(zip(ORDER, counts))


def test_dashed_flags_and_json(capsys):
    config, counts = TABLE["alt1"]
    argv = [a.replace("_", "-") if a.startswith("--") else a for a in flags(config)]
    assert main(["params", *argv, "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert all(doc["config"][k] == v for k, v in config.items() if k != "dropout")
    assert [r["parameters"] for r in doc["models"]] == counts


@pytest.mark.parametrize("argv, words", [
    (["--n_qubits", "2.5"], "n_qubits='2.5' is not allowed; need an integer >= 1"),
    (["--hidden-dim", "x"], "hidden_dim='x' is not allowed; need an integer >= 1"),
    (["--d_state", "0"], "d_state=0 is not allowed; need an integer >= 1"),
    (["--n_qubits", "1"], "n_qubits=1 is not allowed for QuantumMambaGated"),
    (["--d_model", "1"], "d_model=1 is not allowed for ClassicalHydra"),
])
def test_bad_values_one_line_exit_2(capsys, argv, words):
    assert main(["params", *argv]) == 2
    captured = capsys.readouterr()
    err = captured.err.strip()
    assert captured.out == "" and err.count("\n") == 0 and err.startswith("qssm: error: ") and words in err, err
