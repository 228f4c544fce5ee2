"""``crossent demo``: the founding note's claim, asserted on the experiment's
numbers -- from a saturated start the MSE gradient is tiny and MSE training
stalls, while cross-entropy training succeeds with the same steps."""
import argparse
import pathlib
import sys

import numpy as np
import pytest

from crossent import _demo

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def default_run():
    return _demo.run_experiment()


def parse(argv):
    parser = argparse.ArgumentParser(prog="crossent demo")
    _demo.add_arguments(parser)
    return parser.parse_args(argv)


def test_the_start_is_saturated_on_the_wrong_side(default_run):
    assert default_run["start_wrong_side"] == 1.0
    assert 8.0 <= default_run["start_abs_logit"]["median"] <= 10.0
    assert default_run["start_abs_logit"]["min"] > 5.0


def test_mse_gradient_at_the_start_is_over_100_times_smaller(default_run):
    norms = default_run["start_grad_norm"]
    assert norms["bce"] > 100 * norms["mse"] > 0


def test_cross_entropy_training_is_clearly_better_after_the_same_steps(default_run):
    mse_run, ce_run = default_run["history"]["mse"], default_run["history"]["bce"]
    assert len(mse_run["accuracy"]) == len(ce_run["accuracy"]) == default_run["steps"] + 1
    assert ce_run["accuracy"][-1] >= 0.99
    assert mse_run["accuracy"][-1] <= 0.05
    # Better even by the MSE-trained model's own measure.
    assert ce_run["mse"][-1] < mse_run["mse"][-1] / 100
    assert ce_run["bce"][-1] < mse_run["bce"][-1] / 100


def test_mse_training_does_move_just_slowly(default_run):
    # The stall is a small gradient, not a broken one: the MSE loss decreases.
    mse_loss = default_run["history"]["mse"]["mse"]
    assert mse_loss[-1] < mse_loss[0]
    assert np.all(np.diff(mse_loss) <= 0)


@pytest.mark.parametrize("seed", [1, 2])
def test_the_claim_holds_for_other_seeds(seed):
    result = _demo.run_experiment(seed=seed, steps=100)
    assert result["start_grad_norm"]["bce"] > 100 * result["start_grad_norm"]["mse"]
    assert result["history"]["bce"]["accuracy"][-1] > result["history"]["mse"]["accuracy"][-1] + 0.9


def test_the_experiment_is_deterministic(default_run):
    again = _demo.run_experiment()
    for loss in ("mse", "bce"):
        for key, values in default_run["history"][loss].items():
            np.testing.assert_array_equal(again["history"][loss][key], values)
    assert again["start_grad_norm"] == default_run["start_grad_norm"]


def test_every_backend_gives_the_same_experiment(backend):
    result = _demo.run_experiment(steps=30, backend=backend)
    reference = _demo.run_experiment(steps=30, backend="numpy")
    for loss in ("mse", "bce"):
        for key, values in reference["history"][loss].items():
            np.testing.assert_allclose(result["history"][loss][key], values, rtol=1e-9)


def test_milestones():
    assert _demo.milestones(300) == [0, 10, 20, 50, 100, 200, 300]
    assert _demo.milestones(100) == [0, 10, 20, 50, 100]
    assert _demo.milestones(5) == [0, 5]
    assert _demo.milestones(0) == [0]


@pytest.mark.parametrize("kwargs", [{"steps": -1}, {"steps": 2.5}, {"step_size": 0.0},
                                    {"step_size": float("nan")}, {"n_samples": 1}])
def test_bad_settings_raise(kwargs):
    with pytest.raises(ValueError, match=next(iter(kwargs))):
        _demo.run_experiment(**kwargs)


def test_run_prints_the_table(capsys):
    assert _demo.run(parse(["--steps", "50", "--seed", "3"])) == 0
    out = capsys.readouterr().out
    assert "seed 3" in out and "50 steps" in out
    table_rows = [line.split() for line in out.splitlines() if line.strip()[:1].isdigit()]
    assert [int(row[0]) for row in table_rows] == [0, 10, 20, 50]
    # 7 columns: step, then MSE / BCE / accuracy for each of the two models.
    assert all(len(row) == 7 for row in table_rows)


def test_run_rejects_bad_settings_with_exit_code_2(capsys):
    assert _demo.run(parse(["--steps", "-3"])) == 2
    assert "steps" in capsys.readouterr().err


def test_plot_writes_a_png(tmp_path, capsys):
    pytest.importorskip("matplotlib")
    path = tmp_path / "demo.png"
    assert _demo.run(parse(["--steps", "40", "--plot", str(path)])) == 0
    data = path.read_bytes()
    assert data[:8] == PNG_SIGNATURE and len(data) > 10_000


def test_plot_without_matplotlib_says_how_to_install_it(tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # import matplotlib -> ImportError
    path = tmp_path / "demo.png"
    assert _demo.run(parse(["--steps", "5", "--plot", str(path)])) == 2
    err = capsys.readouterr().err
    assert "pip install crossent[plot]" in err and len(err.strip().splitlines()) == 1
    assert not path.exists()


@pytest.mark.parametrize("name, problem", [("missing/demo.png", "no directory"),
                                           ("demo.txt", "expected a file name ending in one of")])
def test_a_plot_path_matplotlib_cannot_write_is_refused_before_the_run(tmp_path, capsys, name,
                                                                        problem):
    pytest.importorskip("matplotlib")
    path = tmp_path / name
    assert _demo.run(parse(["--steps", "5", "--plot", str(path)])) == 2
    captured = capsys.readouterr()
    assert captured.out == "" and problem in captured.err
    assert len(captured.err.strip().splitlines()) == 1 and not path.exists()


def test_the_command_line_runs_the_demo(capsys):
    from crossent.__main__ import main
    assert main(["demo", "--steps", "20"]) == 0
    assert "trained with cross-entropy" in capsys.readouterr().out


def test_docs_math_shows_the_output_of_a_real_run(default_run):
    # docs/math.md pastes `crossent demo`'s output; regenerate it (and
    # docs/demo.png) when the experiment changes.
    math_md = pathlib.Path(__file__).resolve().parents[1] / "docs" / "math.md"
    assert _demo.format_report(default_run) in math_md.read_text(encoding="utf-8")
