"""The pytest-benchmark suite: every case of ``crossent._bench_cases`` on every
built backend and installed peer (PyTorch, scikit-learn, JAX).

Timing is off in the normal test run (``--benchmark-disable`` in pyproject's
addopts): each benchmark then makes its call once and still checks its result,
over the ``--quick`` cases and the smallest size of every case, so that every
function, dtype, layout and peer wrapper is checked in seconds.  ``make bench``
turns timing on, over the full grid::

    python -m pytest benchmarks --benchmark-enable \\
        --benchmark-group-by=group,param:case_id --benchmark-sort=name

There is one ``group`` per loss and activation; grouping by ``param:case_id``
as well puts every implementation of one case (size, dtype, layout) in one
table, whose baseline is the NumPy reference: each result's ``extra_info``
carries ``speedup_vs_numpy``, measured in the same pytest run.
"""
import functools

import pytest

import crossent
from crossent import _bench_cases as cases_module

N_THREADS = crossent.get_num_threads()
# case id -> median seconds of the NumPy reference, filled as the suite runs
# (the reference is always the first implementation of a case).
_reference_medians = {}


def _timing_enabled(config):
    # pytest-benchmark's own rule: --benchmark-enable overrides --benchmark-disable
    return not config.getoption("benchmark_disable") or config.getoption("benchmark_enable")


def _cases(config):
    """All cases when timing; otherwise the quick ones and every case's smallest
    size (each function, dtype, layout and peer wrapper checked in seconds)."""
    if _timing_enabled(config):
        return cases_module.all_cases()
    smallest = [case for case in cases_module.all_cases() if case.shape in ((1, 10), (10,))]
    return cases_module.quick_cases() + [case for case in smallest
                                         if case not in cases_module.QUICK_CASES]


def pytest_generate_tests(metafunc):
    peers = cases_module.installed_peers()
    params = [pytest.param(case.id, impl, id=f"{case.id}-{impl}",
                           marks=[pytest.mark.peers] if impl in cases_module.PEERS else [])
              for case in _cases(metafunc.config)
              for impl in cases_module.implementations(case.function, crossent.backends(), peers)]
    metafunc.parametrize("case_id, impl", params)


@functools.lru_cache(maxsize=1)  # tests run case by case: keep one case's arrays only
def _case_data(case_id):
    case = cases_module.case_by_id(case_id)
    inputs = cases_module.make_inputs(case)
    return case, inputs, cases_module.expected_result(case, inputs)


def test_benchmark(benchmark, case_id, impl):
    case, inputs, expected = _case_data(case_id)
    call = cases_module.prepare(impl, case, inputs, N_THREADS)
    benchmark.group = case.function
    benchmark.extra_info.update(case=case_id, impl=impl, n_threads=N_THREADS)
    if not benchmark.disabled:
        call.run()  # a warm-up (prepare() has already compiled JAX)
    result = benchmark(call.run)

    problem = cases_module.check_result(case, call.normalize(result), expected)
    assert problem is None, f"{case_id} on {impl}: {problem}"
    if benchmark.disabled:
        return
    median = benchmark.stats.stats.median
    if impl == cases_module.REFERENCE:
        _reference_medians[case_id] = median
    elif case_id in _reference_medians:
        benchmark.extra_info["speedup_vs_numpy"] = _reference_medians[case_id] / median
