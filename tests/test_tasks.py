"""Tasks: deterministic from the seed, labels are functions of the input, user data validated."""
import shutil

import numpy as np
import pytest
import torch

from bench.cell import cell_from_mapping
from bench.errors import UserError
from bench.tasks import EVAL_BLOCK, NOISE, SYNTHETIC_TASKS, Task, _rng, load_user_data


@pytest.mark.parametrize("name", SYNTHETIC_TASKS)
def test_deterministic_shapes_and_ranges(name):
    t = Task(name, 12, 5, 4, seed=7, eval_samples=40)
    x, y = t.train_batch(3, 16)
    assert x.shape == (16, 12, 5) and x.dtype == np.float32 and y.shape == (16,) and y.dtype == np.int64
    assert 0 <= y.min() and y.max() < 4
    x2, y2 = Task(name, 12, 5, 4, seed=7, eval_samples=40).train_batch(3, 16)
    np.testing.assert_array_equal(x, x2)
    np.testing.assert_array_equal(y, y2)
    x3, _ = Task(name, 12, 5, 4, seed=8, eval_samples=40).train_batch(3, 16)
    assert not np.array_equal(x, x3)
    assert not np.array_equal(x, t.train_batch(4, 16)[0])
    # the held-out set: fixed blocks, disjoint stream from training
    assert t.n_eval_blocks() == 2
    xb, yb = t.eval_block(1)
    assert len(yb) == 40 - EVAL_BLOCK


def _oracle(name, x, seed, O):
    """Read the label straight off the input: proves each task has a clean signal."""
    if name == "marked_recall":
        protos = _rng(seed, 3).standard_normal((O, x.shape[2] - 1)).astype(np.float32)
        m = x[:, :, 0].argmax(1)
        tok = x[np.arange(len(x)), m, 1:]
        return ((tok[:, None, :] - protos[None]) ** 2).sum(-1).argmin(1)
    if name == "adding":
        flags = np.argsort(-x[:, :, 1], axis=1)[:, :2]
        return np.rint(np.take_along_axis(x[:, :, 0], flags, 1)).astype(np.int64).sum(1)
    if name == "order":
        return (x[:, :, 0].argmax(1) > x[:, :, 1].argmax(1)).astype(np.int64)
    if name == "selective_copy":
        m = int(np.floor(np.sqrt(O)))
        protos = _rng(seed, 3, 2).standard_normal((m, x.shape[2] - 1)).astype(np.float32)
        first, second = np.sort(np.argsort(-x[:, :, 0], axis=1)[:, :2], axis=1).T
        rows = np.arange(len(x))

        def tok(p):
            return ((x[rows, p, 1:][:, None, :] - protos[None]) ** 2).sum(-1).argmin(1)
        return m * tok(first) + tok(second)


@pytest.mark.parametrize("name", SYNTHETIC_TASKS)
def test_labels_are_a_function_of_the_input(name):
    x, y = Task(name, 24, 6, 4, seed=1, eval_samples=8).train_batch(0, 512)
    pred = _oracle(name, x, 1, 4)
    assert (pred == y).mean() > 0.99


def test_classes_are_balanced():
    for name in ("marked_recall", "selective_copy"):
        _, y = Task(name, 16, 4, 4, seed=0, eval_samples=8).train_batch(0, 4000)
        freq = np.bincount(y, minlength=4) / len(y)
        assert freq.min() > 0.2, (name, freq)
    _, y = Task("order", 16, 4, 4, seed=0, eval_samples=8).train_batch(0, 4000)
    assert abs(y.mean() - 0.5) < 0.05
    # adding: the sum of two uniform digits 0..m-1 (m = 5 at O = 10) is triangular on 0..2m-2
    _, y = Task("adding", 16, 4, 10, seed=0, eval_samples=8).train_batch(0, 20000)
    freq = np.bincount(y, minlength=10) / len(y)
    expect = np.array([min(k + 1, 9 - k) for k in range(9)] + [0]) / 25
    np.testing.assert_allclose(freq, expect, atol=0.01)


def test_order_distractors_do_not_carry_the_label():
    # the distractor prototypes are independent of where A and B are: a per-step feature mean over
    # features 2.. is the same for both labels
    x, y = Task("order", 16, 8, 2, seed=3, eval_samples=8).train_batch(0, 4000)
    means = x[:, :, 2:].mean((1, 2))
    assert abs(means[y == 0].mean() - means[y == 1].mean()) < 0.02


def test_revised_tasks_change_their_cells_ids():
    from bench.tasks import TASK_REVISIONS
    for name in SYNTHETIC_TASKS:
        ident = cell_from_mapping({"model": "classical_mamba", "task": name, "seq_len": 16}).identity()
        assert ident["task"] == (f"{name}@{TASK_REVISIONS[name]}" if name in TASK_REVISIONS else name)


def test_more_timesteps_means_more_distractors():
    # marked_recall: one flagged step among T tokens; a model that ignores the flag and votes by the
    # majority token does worse as T grows
    def majority_acc(T):
        x, y = Task("marked_recall", T, 6, 4, seed=0, eval_samples=8).train_batch(0, 2000)
        protos = _rng(0, 3).standard_normal((4, 5)).astype(np.float32)
        toks = ((x[:, :, None, 1:] - protos[None, None]) ** 2).sum(-1).argmin(-1)
        maj = np.array([np.bincount(r, minlength=4).argmax() for r in toks])
        return (maj == y).mean()
    assert majority_acc(2) > majority_acc(8) > majority_acc(64) - 0.02
    assert NOISE > 0


# ----------------------------------------------------------------------------- user data


def _write_npz(path, x, y):
    np.savez(path, x=x, y=y)
    return path


def test_npz_and_pt_files(tmp_path):
    x = np.random.default_rng(0).standard_normal((50, 3, 7)).astype(np.float32)  # (N, D, T)
    y = np.arange(50) % 3
    npz = _write_npz(tmp_path / "d.npz", x, y)
    pt = tmp_path / "d.pt"
    torch.save({"x": torch.from_numpy(x), "y": torch.from_numpy(y)}, pt)
    for path in (npz, pt):
        c = cell_from_mapping({"model": "classical_mamba", "task": f"file:{path}", "batch_size": 4})
        assert (c.seq_len, c.feature_dim, c.output_dim) == (7, 3, 3)
        assert c.task == f"file:{path.resolve()}"
        t = Task(c.task, 7, 3, 3, seed=0, eval_samples=8)
        xb, yb = t.train_batch(0, 4)
        assert xb.shape == (4, 7, 3)  # (B, T, D)
        # held-out samples are the file's, transposed to (T, D)
        xe, ye = t.eval_block(0)
        assert len(ye) == 8
        i = int(np.where((x.transpose(0, 2, 1) == xe[0]).all(axis=(1, 2)))[0][0])
        assert y[i] == ye[0]


def test_file_cell_id_follows_content_not_path(tmp_path):
    x = np.ones((10, 2, 4), np.float32)
    a = _write_npz(tmp_path / "a.npz", x, np.arange(10) % 2)
    b = tmp_path / "sub" / "b.npz"
    b.parent.mkdir()
    shutil.copy(a, b)
    ca = cell_from_mapping({"model": "classical_mamba", "task": f"file:{a}", "batch_size": 2})
    cb = cell_from_mapping({"model": "classical_mamba", "task": f"file:{b}", "batch_size": 2})
    assert ca.cell_id == cb.cell_id and ca.task != cb.task
    c = _write_npz(tmp_path / "c.npz", x * 2, np.arange(10) % 2)
    assert cell_from_mapping({"model": "classical_mamba", "task": f"file:{c}", "batch_size": 2}).cell_id != ca.cell_id


@pytest.mark.parametrize("make, words", [
    (lambda p: np.savez(p, x=np.ones((4, 2, 3))), ["missing", "'y'"]),
    (lambda p: np.savez(p, x=np.ones((4, 6)), y=np.zeros(4)), ["(N, D, T)", "(4, 6)"]),
    (lambda p: np.savez(p, x=np.ones((4, 2, 3)), y=np.zeros((4, 1))), ["y must have shape (N,)"]),
    (lambda p: np.savez(p, x=np.ones((4, 2, 3)), y=np.zeros(5)), ["4 samples", "5"]),
    (lambda p: np.savez(p, x=np.full((4, 2, 3), np.nan), y=np.zeros(4)), ["NaN"]),
    (lambda p: np.savez(p, x=np.ones((4, 2, 3)), y=np.array([0.5, 1, 0, 1])), ["integer"]),
    (lambda p: np.savez(p, x=np.ones((4, 2, 3)), y=np.array([0, -1, 0, 1])), [">= 0"]),
    (lambda p: np.savez(p, x=np.array([["a"]]), y=np.zeros(1)), ["real numbers"]),
    (lambda p: p.write_bytes(b"not a zip"), ["cannot load"]),
])
def test_bad_data_files(tmp_path, make, words):
    p = tmp_path / "bad.npz"
    make(p)
    with pytest.raises(UserError) as info:
        load_user_data(p)
    for w in words:
        assert w in str(info.value), (w, str(info.value))
    assert str(p) in str(info.value)


def test_bad_data_file_tasks(tmp_path):
    good = _write_npz(tmp_path / "g.npz", np.ones((10, 2, 4), np.float32), np.arange(10) % 3)
    cases = [
        ({"task": f"file:{tmp_path / 'nope.npz'}"}, "No such file"),
        ({"task": f"file:{tmp_path / 'data.csv'}"}, "unsupported file type"),
        ({"task": "file:"}, "give a path"),
        ({"task": f"file:{good}", "seq_len": 5}, "seq_len=5"),
        ({"task": f"file:{good}", "feature_dim": 3}, "feature_dim=3"),
        ({"task": f"file:{good}", "output_dim": 2}, "output_dim=2"),
    ]
    (tmp_path / "data.csv").write_text("1,2\n")
    for extra, words in cases:
        with pytest.raises(UserError) as info:
            cell_from_mapping({"model": "classical_mamba", "batch_size": 2, **extra})
        assert words in str(info.value), str(info.value)
    pt = tmp_path / "list.pt"
    torch.save([1, 2, 3], pt)
    with pytest.raises(UserError, match="dict with 'x' and 'y'"):
        load_user_data(pt)
