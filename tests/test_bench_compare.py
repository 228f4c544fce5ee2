"""The regression check of ``crossent bench --compare``: judged on speed-ups over
the NumPy reference measured in the same run, so a uniformly slower machine
passes and one backend that lost ground fails, by name.  Bad baselines give one
line and exit status 2, never a traceback.

Synthetic run dicts stand in for real timings; one smoke test runs the real
command on a tiny case set.
"""
import argparse
import json
import subprocess
import sys

import pytest

from crossent import _bench

CASES = ("cross_entropy[4096x1000-float32-contiguous]", "softmax[4096x1000-float32-contiguous]")
# seconds per (case, implementation): numpy is the reference of each case
TIMES = {(CASES[0], "numpy"): 0.040, (CASES[0], "c"): 0.004, (CASES[0], "cython"): 0.003,
         (CASES[0], "torch"): 0.010,
         (CASES[1], "numpy"): 0.020, (CASES[1], "c"): 0.002, (CASES[1], "cython"): 0.002}
TINY_CASE = "cross_entropy[1x10-float32-contiguous]"


def make_run(times=TIMES):
    return {"format": _bench.FORMAT, "machine": {"cpu": "synthetic"}, "settings": {"quick": True},
            "results": [{"case": case, "impl": impl, "seconds": seconds}
                        for (case, impl), seconds in times.items()]}


def scaled(times, factor, only=None):
    return {key: seconds * factor if only is None or key == only else seconds
            for key, seconds in times.items()}


def compare(baseline_times, current_times, max_slowdown=0.10):
    return _bench.compare_runs(make_run(baseline_times), make_run(current_times), max_slowdown)


def test_identical_runs_pass():
    comparison = compare(TIMES, TIMES)
    assert comparison["regressions"] == []
    assert len(comparison["compared"]) == 4  # two backends x two cases; peers are not judged


def test_a_uniformly_slower_machine_passes():
    comparison = compare(TIMES, scaled(TIMES, 1.5))
    assert comparison["regressions"] == []
    assert all(row["slowdown"] == pytest.approx(0.0) for row in comparison["compared"])


def test_one_backend_twice_as_slow_fails_and_is_named(capsys):
    slower = scaled(TIMES, 2.0, only=(CASES[1], "cython"))
    status = _bench.check_against_baseline(make_run(TIMES), make_run(slower), 0.10, "base.json")
    assert status == _bench.EXIT_FAILED
    last_line = capsys.readouterr().out.strip().splitlines()[-1]
    assert f"{CASES[1]} (cython)" in last_line
    assert CASES[0] not in last_line


def test_a_baseline_from_another_cpu_is_pointed_out():
    baseline, current = make_run(), make_run()
    current["machine"] = {"cpu": "another CPU"}
    text = _bench.format_comparison(_bench.compare_runs(baseline, current, 0.1), "b.json", 0.1)
    assert "note: this run is on another CPU (another CPU)" in text
    same = _bench.format_comparison(_bench.compare_runs(baseline, make_run(), 0.1), "b.json", 0.1)
    assert "another CPU" not in same


def test_a_slowdown_within_the_threshold_passes():
    slightly_slower = scaled(TIMES, 1.08, only=(CASES[0], "c"))
    assert compare(TIMES, slightly_slower, max_slowdown=0.10)["regressions"] == []
    assert len(compare(TIMES, slightly_slower, max_slowdown=0.05)["regressions"]) == 1


def test_a_slower_peer_is_not_a_regression():
    assert compare(TIMES, scaled(TIMES, 5.0, only=(CASES[0], "torch")))["regressions"] == []


def test_a_faster_reference_alone_counts_against_the_backends():
    # The reference got 3x faster, the backends did not: their speed-up fell.
    faster_reference = scaled(TIMES, 1 / 3, only=(CASES[0], "numpy"))
    named = {(row["case"], row["impl"]) for row in compare(TIMES, faster_reference)["regressions"]}
    assert named == {(CASES[0], "c"), (CASES[0], "cython")}


@pytest.mark.parametrize("text, expected", [("10%", 0.10), ("25 %", 0.25), ("0.1", 0.1)])
def test_max_slowdown_accepts_percent_or_fraction(text, expected):
    assert _bench.parse_slowdown(text) == pytest.approx(expected)


@pytest.mark.parametrize("text", ["ten", "-5%", "0", ""])
def test_max_slowdown_rejects_nonsense(text):
    with pytest.raises(_bench.BenchError, match="--max-slowdown"):
        _bench.parse_slowdown(text)


# ----------------------------------------------------- bad baselines via the CLI

def bench_parser():
    parser = argparse.ArgumentParser(prog="crossent bench")
    _bench.add_arguments(parser)
    return parser


def test_help_lists_the_options():
    text = bench_parser().format_help()
    for option in ("--quick", "--json", "--plot", "--backends", "--peers", "--compare",
                   "--max-slowdown"):
        assert option in text


def run_bench(argv, capsys):
    status = _bench.run(bench_parser().parse_args(argv))
    captured = capsys.readouterr()
    return status, captured.out, captured.err


def write(tmp_path, text):
    path = tmp_path / "baseline.json"
    path.write_text(text)
    return str(path)


def one_record_missing(field):
    run = make_run()
    del run["results"][0][field]
    return json.dumps(run)


def with_seconds(value):
    run = make_run()
    run["results"][0]["seconds"] = value
    return json.dumps(run)


BAD_BASELINES = {
    "not JSON": ("{results: [", "not valid JSON"),
    "a JSON list": ("[1, 2]", "not a crossent bench run"),
    "another format": (json.dumps(dict(make_run(), format="pytest-benchmark")), "format"),
    "empty results": (json.dumps(dict(make_run(), results=[])), "non-empty list"),
    "a record without a case": (one_record_missing("case"), "'case'"),
    "a record without seconds": (one_record_missing("seconds"), "'seconds'"),
    "negative seconds": (with_seconds(-1.0), "'seconds'"),
    "seconds as text": (with_seconds("fast"), "'seconds'"),
    "no case of this run": (json.dumps(make_run({("nosuch[1x1-float32-contiguous]", "numpy"): 1.0})),
                            "none of this run's cases"),
}


@pytest.mark.parametrize("name", BAD_BASELINES)
def test_a_bad_baseline_is_one_line_and_exit_2(tmp_path, capsys, name):
    text, message = BAD_BASELINES[name]
    status, out, err = run_bench(["--quick", "--compare", write(tmp_path, text)], capsys)
    assert status == _bench.EXIT_USAGE
    assert out == ""  # rejected before any timing
    assert err.count("\n") == 1 and err.startswith("crossent bench: error: ")
    assert message in err


def test_a_missing_baseline_file_is_one_line_and_exit_2(tmp_path, capsys):
    status, _, err = run_bench(["--compare", str(tmp_path / "absent.json")], capsys)
    assert status == _bench.EXIT_USAGE
    assert err.count("\n") == 1 and "cannot read baseline" in err


def test_a_baseline_with_no_comparable_backend_is_one_line_and_exit_2(capsys):
    # Same case, but the baseline timed only backends this run did not.
    baseline = make_run({(CASES[0], "numpy"): 0.04, (CASES[0], "c"): 0.004})
    current = make_run({(CASES[0], "numpy"): 0.04, (CASES[0], "cython"): 0.003})
    status = _bench.check_against_baseline(baseline, current, 0.10, "base.json")
    err = capsys.readouterr().err
    assert status == _bench.EXIT_USAGE
    assert err.count("\n") == 1 and "in common" in err


def test_a_comparison_run_uses_the_baseline_thread_count(tmp_path, capsys):
    # Speed-ups over the single-threaded reference grow with the threads.
    baseline = dict(make_run(), settings={"quick": True, "n_threads": 1})
    path = write(tmp_path, json.dumps(baseline))
    plan = _bench._plan(bench_parser().parse_args(["--quick", "--compare", path]))
    assert plan["settings"]["n_threads"] == 1
    assert capsys.readouterr().err == ""


def test_plot_without_matplotlib_is_one_line_and_exit_2(monkeypatch, capsys):
    import importlib.util

    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == "matplotlib" else real_find_spec(name, *a))
    status, out, err = run_bench(["--quick", "--plot", "out.png"], capsys)
    assert status == _bench.EXIT_USAGE and out == ""
    assert err.count("\n") == 1 and "matplotlib" in err


# ------------------------------------------- what the timing engine reports

TINY_SETTINGS = {"repeats": 1, "min_time": 0.0, "n_threads": 1}


def with_fake_implementation(monkeypatch, make_run):
    """Add implementation "fake" (whose call is ``make_run(real_call)``) beside the reference."""
    from crossent import _bench_cases as cases_module

    real_prepare, real_supports = cases_module.prepare, cases_module.supports

    def prepare(impl, case, inputs, n_threads):
        if impl != "fake":
            return real_prepare(impl, case, inputs, n_threads)
        real = real_prepare(cases_module.REFERENCE, case, inputs, n_threads)
        return cases_module.Prepared(make_run(real.run), real.normalize)

    monkeypatch.setattr(cases_module, "prepare", prepare)
    monkeypatch.setattr(cases_module, "supports", lambda impl, f: impl == "fake" or real_supports(impl, f))
    return cases_module.case_by_id(TINY_CASE)


def test_an_implementation_that_raises_is_reported_and_the_run_goes_on(monkeypatch):
    def explode():
        raise RuntimeError("kernel exploded")

    case = with_fake_implementation(monkeypatch, lambda real: explode)
    results, failures = _bench.measure_case(case, ["numpy", "fake"], TINY_SETTINGS)
    assert [r["impl"] for r in results] == ["numpy"]
    assert failures == [{"case": TINY_CASE, "impl": "fake", "error": "RuntimeError: kernel exploded"}]


def test_a_wrong_result_is_flagged(monkeypatch):
    def off_by_a_percent(real):
        def run():
            loss, grad = real()
            return loss * 1.01, grad
        return run

    case = with_fake_implementation(monkeypatch, off_by_a_percent)
    results, _ = _bench.measure_case(case, ["numpy", "fake"], TINY_SETTINGS)
    correct = {r["impl"]: r["correct"] for r in results}
    assert correct == {"numpy": True, "fake": False}
    assert "loss differs" in results[1]["error"]


# ------------------------------------------------------------------ smoke

def test_bench_runs_end_to_end_and_writes_valid_json(tmp_path):
    saved = tmp_path / "run.json"
    tiny = ["--quick", "--cases", TINY_CASE, "--peers", "none", "--repeats", "2",
            "--min-time", "0.001", "--no-progress"]
    first = subprocess.run([sys.executable, "-m", "crossent", "bench", *tiny, "--json", str(saved)],
                           capture_output=True, text=True, timeout=120)
    assert first.returncode == 0, first.stderr
    assert TINY_CASE in first.stdout

    run = _bench.load_run(str(saved))  # raises unless it is a valid run
    import crossent
    assert {r["impl"] for r in run["results"]} == {"default", *crossent.backends()}
    assert {r["case"] for r in run["results"]} == {TINY_CASE}
    assert all(r["correct"] for r in run["results"]) and run["failures"] == []
    assert run["machine"]["cores"] >= 1 and run["machine"]["numpy"]

    # The run judged against itself, with a threshold no timing noise reaches.
    second = subprocess.run([sys.executable, "-m", "crossent", "bench", *tiny, "--compare", str(saved),
                             "--max-slowdown", "100000%"], capture_output=True, text=True, timeout=120)
    assert second.returncode == 0, second.stderr
    assert "no regression" in second.stdout
