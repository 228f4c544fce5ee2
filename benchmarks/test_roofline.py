"""benchmarks/roofline.py: its bound arithmetic, and one real (short) run."""
import importlib.util
import json
import pathlib

import pytest

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


def test_a_run_measures_and_saves_every_probe(tmp_path, capsys):
    out = tmp_path / "roofline.json"
    roofline.main(["--threads", "1", "--json", str(out)])
    saved = json.loads(out.read_text())
    assert set(saved["probe"]) >= {"copy_GBps_1_thread", "exp_f32_ns", "log1p_f32_ns",
                                   "first_touch_ms_per_MB"}
    assert all(v > 0 for k, v in saved["probe"].items() if k != "first_touch_ms_per_MB")
    assert len(saved["cases"]) == len(roofline.CASES)
    assert "cross_entropy 65536x10" in capsys.readouterr().out
