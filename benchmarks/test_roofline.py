"""benchmarks/roofline.py: its bound arithmetic, and one real (short) run."""
import importlib.util
import json
import pathlib

import pytest

import crossent

pytest.importorskip("crossent._primitives")
_spec = importlib.util.spec_from_file_location(
    "roofline", pathlib.Path(__file__).with_name("roofline.py"))
roofline = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(roofline)


def test_bounds_take_the_larger_of_memory_and_exp_work():
    rows = {r["case"]: r for r in roofline.case_bounds(bandwidth=10.0, exp_ns=1.0, log1p_ns=2.0,
                                                       n_threads=2)}
    ce = rows["cross_entropy 4096x1000"]
    # 4096*1000 float32 in and out, 4096 int64 labels, at 10 GB/s
    assert ce["bytes_moved"] == 2 * 4096 * 1000 * 4 + 4096 * 8
    assert ce["memory_ms"] == pytest.approx(ce["bytes_moved"] / 10e9 * 1e3)
    assert ce["compute_ms"] == pytest.approx(4096 * 1000 * 1.0 / 2 * 1e-6)
    assert ce["bound_ms"] == max(ce["memory_ms"], ce["compute_ms"])
    bce = rows["bce_with_logits 10^6"]  # exp and log1p per element
    assert bce["compute_ms"] == pytest.approx(1e6 * 3.0 / 2 * 1e-6)
    assert bce["limit"] == "exp throughput"


def test_softmax_cases_are_bounded_by_the_moderate_exp_when_given():
    rows = {r["case"]: r for r in roofline.case_bounds(bandwidth=10.0, exp_ns=1.0, log1p_ns=2.0,
                                                       n_threads=2, softmax_exp_ns=0.5)}
    assert rows["cross_entropy 4096x1000"]["compute_ms"] == pytest.approx(4096 * 1000 * 0.5 / 2 * 1e-6)
    assert rows["bce_with_logits 10^6"]["compute_ms"] == pytest.approx(1e6 * 3.0 / 2 * 1e-6)


def test_a_run_measures_and_saves_every_probe(tmp_path, capsys):
    out = tmp_path / "roofline.json"
    roofline.main(["--threads", "1", "--json", str(out)])
    saved = json.loads(out.read_text())
    assert set(saved["probe"]) >= {"copy_GBps_1_thread", "exp_f32_ns", "exp_moderate_f32_ns",
                                   "log1p_f32_ns", "first_touch_ms_per_MB"}
    assert all(v > 0 for k, v in saved["probe"].items() if k != "first_touch_ms_per_MB")
    assert len(saved["cases"]) == len(roofline.CASES)
    assert "cross_entropy 65536x10" in capsys.readouterr().out


def fake_run(times):
    """A saved bench run holding only `times` {(case id, impl): seconds}."""
    return {"results": [{"case": case, "impl": impl, "correct": True, "seconds": sec}
                        for (case, impl), sec in times.items()]}


def test_against_a_run_gives_both_ratios_and_the_goals():
    rows = roofline.case_bounds(bandwidth=10.0, exp_ns=1.0, log1p_ns=2.0, n_threads=2)
    ce, bce = roofline.BENCH_IDS["cross_entropy 4096x1000"], roofline.BENCH_IDS["bce_with_logits 10^6"]
    run = fake_run({(ce, "default"): 3e-3, (ce, "torch"): 6e-3, (ce, "sklearn"): 5e-3,
                    (bce, "default"): 1e-3, (bce, "torch"): 4e-3,
                    (roofline.ONE_CALL_ID, "default"): 2.5e-6})
    table = {e["case"]: e for e in roofline.against_run(rows, run)}
    assert set(table) == {"cross_entropy 4096x1000", "bce_with_logits 10^6",
                          "cross_entropy 1x10, one call"}
    e = table["cross_entropy 4096x1000"]
    bound = next(r["bound_ms"] for r in rows if r["case"] == "cross_entropy 4096x1000")
    assert e["peer"] == "sklearn" and e["times_peer"] == pytest.approx(5 / 3)
    assert e["times_bound"] == pytest.approx(3.0 / bound)
    assert not e["goals_met"]                      # 1.7x the fastest peer
    b = table["bce_with_logits 10^6"]              # 4x torch, 1.0 / 1.5 ms of the bound
    assert b["times_peer"] == pytest.approx(4.0) and b["goals_met"]
    assert table["cross_entropy 1x10, one call"]["goals_met"]


def test_against_skips_wrong_results_and_missing_cases():
    rows = roofline.case_bounds(bandwidth=10.0, exp_ns=1.0, log1p_ns=2.0, n_threads=2)
    ce = roofline.BENCH_IDS["cross_entropy 65536x10"]
    run = fake_run({(ce, "default"): 1e-3, (ce, "torch"): 1e-4})
    run["results"][1]["correct"] = False           # a peer with a wrong answer is no yardstick
    (entry,) = roofline.against_run(rows, run)
    assert "peer" not in entry and not entry["goals_met"]


def test_same_moment_ratios_judge_the_bound_goal_when_given():
    rows = roofline.case_bounds(bandwidth=10.0, exp_ns=1.0, log1p_ns=2.0, n_threads=2)
    bce = roofline.BENCH_IDS["bce_with_logits 10^6"]
    run = fake_run({(bce, "default"): 1e-3, (bce, "torch"): 4e-3})   # 0.67x a 1.5 ms bound
    (entry,) = roofline.against_run(rows, run, same_moment={"bce_with_logits 10^6": 2.5})
    assert entry["times_bound"] == pytest.approx(1.0 / 1.5)
    assert entry["times_bound_same_moment"] == 2.5 and not entry["goals_met"]
    (entry,) = roofline.against_run(rows, run, same_moment={"bce_with_logits 10^6": 1.5})
    assert entry["goals_met"]


def test_same_moment_ratios_time_every_case_against_its_bound():
    threads = crossent.get_num_threads()
    ratios = roofline.same_moment_ratios(n_threads=1, bandwidth=10.0, rounds=1)
    assert set(ratios) == {name for name, *_ in roofline.CASES}
    # a call cannot beat its own lower bound by much (probe noise aside)
    assert all(0.3 < r < 1000 for r in ratios.values())
    assert crossent.get_num_threads() == threads
