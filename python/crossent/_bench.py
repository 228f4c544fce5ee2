"""``crossent bench``: time every case on every backend against the NumPy reference.

The cases live in ``_bench_cases`` (shared with the pytest-benchmark suite
under ``benchmarks/``).  For each case every implementation is warmed up,
checked against the reference, calibrated to a number of calls per repeat,
and then timed in interleaved rounds (one repeat of each implementation per
round), so that a noisy neighbour slows all of them alike; the reported time
is the median of the repeats.

Regressions are judged on speed-ups over the NumPy reference measured in the
same run (``--compare``), never on absolute times, so a machine uniformly
faster or slower than the baseline's changes nothing.  Another CPU model can
change the speed-ups themselves (crossent's kernels and NumPy's loops do not
gain alike from its vector units), which the comparison's report points out.

The module imports only the standard library at load time: NumPy, crossent's
kernels, the peers, tqdm and matplotlib are imported when a run needs them.
"""
import datetime
import json
import math
import os
import platform
import statistics
import sys
import time

FORMAT = "crossent-bench/1"
REFERENCE = "numpy"          # the same name as _bench_cases.REFERENCE, without importing NumPy
DEFAULT = "default"          # the same name as _bench_cases.DEFAULT
PEERS = ("torch", "sklearn", "jax")
# Generous: on a shared 2-core machine at load 5 the same build drifted up
# to 36% between two runs; a real loss of 2x is a 100% slowdown.
DEFAULT_MAX_SLOWDOWN = "50%"
# repeats and the least time one repeat lasts (calls are looped until it does)
QUICK_SETTINGS = {"repeats": 5, "min_time": 0.02}
FULL_SETTINGS = {"repeats": 7, "min_time": 0.1}
MAX_LOOPS = 100_000

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2


class BenchError(Exception):
    """A problem with the command line or a baseline file: one line, exit 2."""


# ------------------------------------------------------------------ CLI

def add_arguments(parser):
    parser.add_argument("--quick", action="store_true",
                        help="only the headline cases at modest sizes (under a minute on 2 cores)")
    parser.add_argument("--json", metavar="PATH", help="save the run (times, speed-ups, machine) as JSON")
    parser.add_argument("--plot", metavar="PNG", help="draw the speed-ups (needs matplotlib)")
    parser.add_argument("--backends", metavar="LIST",
                        help="comma-separated crossent backends to time (default: all built); "
                             "the numpy reference is always timed")
    parser.add_argument("--peers", metavar="LIST",
                        help="comma-separated peers among torch,sklearn,jax (default: those "
                             "installed; 'none' for none)")
    parser.add_argument("--cases", metavar="TEXT", action="append",
                        help="only cases whose id contains TEXT (repeatable), "
                             "e.g. 'cross_entropy[' or '4096x1000'")
    parser.add_argument("--repeats", type=int, help="timed repeats per implementation (median reported)")
    parser.add_argument("--min-time", type=float, metavar="SECONDS",
                        help="least duration of one repeat; fast calls are looped until it is reached")
    parser.add_argument("--threads", type=int, metavar="N",
                        help="threads for crossent and the peers (default: the --compare "
                             "baseline's, else all usable cores)")
    parser.add_argument("--compare", metavar="BASELINE.json",
                        help="fail (exit 1) when a case's speed-up over numpy fell by more "
                             "than --max-slowdown relative to this saved run")
    parser.add_argument("--max-slowdown", default=DEFAULT_MAX_SLOWDOWN, metavar="PCT",
                        help="tolerated loss of speed-up, '10%%' or 0.1 (default "
                             + DEFAULT_MAX_SLOWDOWN.replace("%", "%%") + ")")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")


def run(args):
    try:
        plan = _plan(args)
    except BenchError as exc:
        print(f"crossent bench: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    if plan["missing_peers"]:
        from crossent import _bench_cases as cases_module

        print(f"crossent bench: note: peers not installed, not timed: "
              f"{cases_module.install_hint(plan['missing_peers'])}", file=sys.stderr)
    result = run_benchmarks(plan["cases"], plan["impls"], plan["settings"],
                            progress=not args.no_progress)
    print(format_table(result))
    status = EXIT_OK
    wrong = [r for r in result["results"] if not r["correct"]]
    for record in wrong:
        print(f"WRONG RESULT {record['case']} on {record['impl']}: {record['error']}")
    for record in result["failures"]:
        print(f"FAILED {record['case']} on {record['impl']}: {record['error']}")
    if wrong or result["failures"]:
        status = EXIT_FAILED
    if args.json:
        _write_json(args.json, result)
    if args.plot:
        plot_run(result, args.plot)
        print(f"plot written to {args.plot}")
    if plan["baseline"] is not None:
        status = max(status, check_against_baseline(plan["baseline"], result,
                                                    plan["max_slowdown"], args.compare))
    return status


def check_against_baseline(baseline, result, max_slowdown, path):
    """Print the comparison; the exit status (0 fine, 1 regression, 2 unusable)."""
    try:
        comparison = compare_runs(baseline, result, max_slowdown)
    except BenchError as exc:
        print(f"crossent bench: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    print(format_comparison(comparison, path, max_slowdown))
    return EXIT_FAILED if comparison["regressions"] else EXIT_OK


def _plan(args):
    """Everything the run needs, checked before any timing starts."""
    max_slowdown = parse_slowdown(args.max_slowdown)
    baseline = load_run(args.compare) if args.compare else None
    if args.plot:
        _require_matplotlib()
    for option, path in (("--json", args.json), ("--plot", args.plot)):
        if path and not os.path.isdir(os.path.dirname(os.path.abspath(path))):
            raise BenchError(f"{option} {path}: no such directory")
    for name, value in (("--repeats", args.repeats), ("--threads", args.threads)):
        if value is not None and value < 1:
            raise BenchError(f"{name}: expected a positive integer, got {value}")
    if args.min_time is not None and not args.min_time >= 0:
        raise BenchError(f"--min-time: expected seconds >= 0, got {args.min_time}")

    from crossent import _bench_cases as cases_module

    cases = cases_module.quick_cases() if args.quick else cases_module.all_cases()
    if args.cases:
        cases = [c for c in cases if any(text in c.id for text in args.cases)]
        if not cases:
            raise BenchError(f"--cases {' '.join(args.cases)}: no case id contains it")
    if baseline is not None:
        _check_overlap(baseline, cases, args.compare)
    settings = dict(QUICK_SETTINGS if args.quick else FULL_SETTINGS, quick=bool(args.quick))
    if args.repeats:
        settings["repeats"] = args.repeats
    if args.min_time is not None:
        settings["min_time"] = args.min_time
    settings["n_threads"] = _thread_count(args.threads, baseline)
    impls = _resolve_backends(args.backends) + _resolve_peers(args.peers)
    return {"cases": cases, "impls": impls, "settings": settings,
            "baseline": baseline, "max_slowdown": max_slowdown,
            "missing_peers": _missing_peers(args.peers)}


def _thread_count(requested, baseline):
    """Threads for this run: as asked; else as the baseline's run (speed-ups
    over the single-threaded reference grow with the threads, so only runs
    with the same count compare); else every usable core."""
    recorded = (baseline or {}).get("settings", {}).get("n_threads")
    if not isinstance(recorded, int) or isinstance(recorded, bool) or recorded < 1:
        recorded = None
    chosen = requested or (recorded and min(recorded, _usable_cores())) or _usable_cores()
    if recorded is not None and chosen != recorded:
        print(f"crossent bench: note: the baseline was timed with {recorded} thread(s), this run "
              f"uses {chosen}; speed-ups of threaded backends will differ", file=sys.stderr)
    return chosen


def _split(text):
    return [part.strip() for part in text.split(",") if part.strip()]


def _resolve_backends(text):
    import crossent

    built = crossent.backends()
    # "default": the plain call with no backend= (the default backend, as
    # CROSSENT_BACKEND or the build chose it, through the facade's fast path)
    wanted = [DEFAULT] + built if text is None else _split(text)
    unknown = [name for name in wanted if name not in built and name != DEFAULT]
    if unknown:
        raise BenchError(f"--backends: {', '.join(unknown)} not built here "
                         f"(available: {DEFAULT}, {', '.join(built)})")
    return [REFERENCE] + [name for name in wanted if name != REFERENCE]


def _resolve_peers(text):
    from crossent import _bench_cases as cases_module

    if text is None:
        return cases_module.installed_peers()
    wanted = [] if text.strip().lower() == "none" else _split(text)
    unknown = [name for name in wanted if name not in PEERS]
    if unknown:
        raise BenchError(f"--peers: unknown {', '.join(unknown)} (known: {', '.join(PEERS)}, none)")
    missing = [name for name in wanted if not cases_module.peer_installed(name)]
    if missing:
        raise BenchError(f"--peers: not installed: {cases_module.install_hint(missing)}")
    return wanted


def _missing_peers(text):
    """The peers a run without --peers leaves out because they are not installed."""
    if text is not None:
        return []
    from crossent import _bench_cases as cases_module

    return [name for name in PEERS if not cases_module.peer_installed(name)]


def _require_matplotlib():
    import importlib.util

    if importlib.util.find_spec("matplotlib") is None:
        raise BenchError("--plot needs matplotlib, which is not installed (pip install matplotlib)")


def parse_slowdown(text):
    """'10%' -> 0.10, '0.1' -> 0.1."""
    raw = str(text).strip()
    try:
        value = float(raw[:-1]) / 100 if raw.endswith("%") else float(raw)
    except ValueError:
        raise BenchError(f"--max-slowdown: expected a percentage like 10% or a fraction "
                         f"like 0.1, got {text!r}") from None
    if not (value > 0 and math.isfinite(value)):
        raise BenchError(f"--max-slowdown: expected a positive slowdown, got {text!r}")
    return value


def _usable_cores():
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


# ------------------------------------------------------------------ timing

def time_calls(call, loops):
    """Seconds per call of ``call``, averaged over ``loops`` back-to-back calls.

    When the calls are short, one untimed call first wakes the
    implementation's thread pool, which has gone to sleep while the other
    implementations ran: the steady state is measured, not a wake-up on a busy
    machine (for a long call the wake-up is noise, and the extra call is not).
    """
    if loops > 1:
        call()
    start = time.perf_counter()
    for _ in range(loops):
        call()
    return (time.perf_counter() - start) / loops


def warm_up(call, min_time, least_calls=2):
    """Call until caches, allocators and thread pools have settled a little;
    the fastest call's duration (a spike on a shared machine must not make the
    calibration settle for one call per repeat)."""
    start, fastest, calls = time.perf_counter(), math.inf, 0
    while calls < least_calls or (time.perf_counter() - start < min_time and calls < MAX_LOOPS):
        began = time.perf_counter()
        call()
        fastest = min(fastest, time.perf_counter() - began)
        calls += 1
    return fastest


def loops_for(call_seconds, min_time):
    """Calls per repeat so that one repeat lasts at least ``min_time``."""
    return max(1, min(MAX_LOOPS, math.ceil(min_time / max(call_seconds, 1e-9))))


def _ready_calls(case, impls, settings):
    """{impl: (call, loops)} and result records, checked and warmed up; and
    the implementations that raised, as failure records."""
    from crossent import _bench_cases as cases_module

    inputs = cases_module.make_inputs(case)
    expected = cases_module.expected_result(case, inputs)
    ready, records, failures = {}, {}, []
    for impl in impls:
        if not cases_module.supports(impl, case.function):
            continue
        try:
            call = cases_module.prepare(impl, case, inputs, settings["n_threads"])
            # prepare() has compiled JAX; this first call is the one checked.
            problem = cases_module.check_result(case, call.normalize(call.run()), expected)
            fastest = warm_up(call.run, settings["min_time"])
        except Exception as exc:  # one broken implementation must not end the run
            failures.append({"case": case.id, "impl": impl, "error": f"{type(exc).__name__}: {exc}"})
            continue
        ready[impl] = (call.run, loops_for(fastest, settings["min_time"]))
        records[impl] = {"case": case.id, "function": case.function, "shape": list(case.shape),
                         "dtype": case.dtype, "layout": case.layout, "impl": impl,
                         "correct": problem is None, "error": problem, "times": []}
    return ready, records, failures


def measure_case(case, impls, settings):
    """(result records, failure records) of ``case`` on ``impls``.

    Interleaved rounds: each round times every implementation once, so that a
    burst of load from elsewhere slows them alike and the ratios survive it.
    """
    ready, records, failures = _ready_calls(case, impls, settings)
    for _ in range(settings["repeats"]):
        for impl, (call, loops) in ready.items():
            records[impl]["times"].append(time_calls(call, loops))
    for impl, record in records.items():
        record["loops"] = ready[impl][1]
        record["seconds"] = statistics.median(record["times"])
    reference = records.get(REFERENCE, {}).get("seconds")
    for record in records.values():
        record["speedup"] = reference / record["seconds"] if reference else None
    return list(records.values()), failures


def run_benchmarks(cases, impls, settings, progress=True):
    """Time ``cases`` on ``impls``; the run as a JSON-ready dict."""
    results, failures = [], []
    bar = _progress_bar(len(cases), enabled=progress)
    try:
        for case in cases:
            bar.describe(case.id)
            case_results, case_failures = measure_case(case, impls, settings)
            results.extend(case_results)
            failures.extend(case_failures)
            bar.advance()
    finally:
        bar.close()
    return {"format": FORMAT,
            "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
            "machine": machine_info(), "crossent": _crossent_info(),
            "peers": {name: _peer_version(name) for name in impls if name in PEERS},
            "settings": dict(settings, impls=list(impls)), "results": results,
            "failures": failures}


class _PlainProgress:
    """The fallback when tqdm is not installed: one status line on stderr."""

    def __init__(self, total):
        self.total, self.done, self.text = total, 0, ""
        self.tty = sys.stderr.isatty()

    def describe(self, text):
        self.text = text
        line = f"[{self.done + 1}/{self.total}] {text}"
        sys.stderr.write(f"\r{line:<80}" if self.tty else line + "\n")
        sys.stderr.flush()

    def advance(self):
        self.done += 1

    def close(self):
        if self.tty:
            sys.stderr.write("\n")


class _TqdmProgress:
    def __init__(self, total):
        from tqdm import tqdm

        self.bar = tqdm(total=total, unit="case", file=sys.stderr, dynamic_ncols=True)

    def describe(self, text):
        self.bar.set_description_str(text)

    def advance(self):
        self.bar.update(1)

    def close(self):
        self.bar.close()


class _NoProgress:
    def describe(self, text):
        pass

    def advance(self):
        pass

    def close(self):
        pass


def _progress_bar(total, enabled):
    if not enabled:
        return _NoProgress()
    try:
        return _TqdmProgress(total)
    except ImportError:
        return _PlainProgress(total)


# ------------------------------------------------------------ provenance

SIMD_FLAGS = ("sse4_2", "avx", "avx2", "fma", "avx512f", "avx512bw", "avx512vl", "asimd", "sve")


def _cpuinfo():
    """(model name, the SIMD flags of interest) from /proc/cpuinfo where there is one."""
    model, flags = None, []
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as cpuinfo:
            for line in cpuinfo:
                key, _, value = line.partition(":")
                key = key.strip().lower()
                if key == "model name" and model is None:
                    model = value.strip()
                elif key in ("flags", "features") and not flags:
                    present = set(value.split())
                    flags = [flag for flag in SIMD_FLAGS if flag in present]
    except OSError:
        pass
    return model or platform.processor() or platform.machine(), flags


def machine_info():
    import numpy

    model, flags = _cpuinfo()
    return {"cpu": model, "simd_flags": flags, "cores": os.cpu_count(),
            "usable_cores": _usable_cores(), "machine": platform.machine(),
            "system": platform.platform(), "python": platform.python_version(),
            "numpy": numpy.__version__}


def _crossent_info():
    import crossent

    return crossent.info()


def _peer_version(name):
    from crossent import _bench_cases as cases_module

    return cases_module.peer_version(name)


def _write_json(path, result):
    with open(path, "w", encoding="utf-8") as out:
        json.dump(result, out, indent=1, default=str)
        out.write("\n")


# ------------------------------------------------------------------ table

def format_seconds(seconds):
    for unit, scale in (("s", 1.0), ("ms", 1e-3), ("µs", 1e-6)):
        if seconds >= scale:
            return f"{seconds / scale:.3g} {unit}"
    return f"{seconds / 1e-9:.3g} ns"


def _impl_order(results):
    order = []
    for record in results:
        if record["impl"] not in order:
            order.append(record["impl"])
    return order


def _threads(result):
    count = result["settings"]["n_threads"]
    return f"{count} thread" + ("" if count == 1 else "s")


def format_table(result):
    """Median time per case and implementation, with the speed-up over numpy."""
    records = result["results"]
    impls = _impl_order(records)
    by_case = {}
    for record in records:
        by_case.setdefault(record["case"], {})[record["impl"]] = record
    case_width = max([len("case")] + [len(case) for case in by_case])
    cell_width = 18
    lines = [f"{'case':<{case_width}}" + "".join(f"{impl:>{cell_width}}" for impl in impls)]
    for case, row in by_case.items():
        cells = []
        for impl in impls:
            record = row.get(impl)
            if record is None:
                cells.append(f"{'-':>{cell_width}}")
                continue
            text = format_seconds(record["seconds"])
            if impl != REFERENCE and record["speedup"] is not None:
                text += f" {record['speedup']:6.1f}x"
            if not record["correct"]:
                text += " WRONG"
            cells.append(f"{text:>{cell_width}}")
        lines.append(f"{case:<{case_width}}" + "".join(cells))
    lines.append(f"(median of {result['settings']['repeats']} repeats; "
                 f"Nx = speed-up over the numpy reference; "
                 f"{_threads(result)}; {result['machine']['cpu']})")
    return "\n".join(lines)


def plot_run(result, path):
    """Horizontal bars: each case's speed-up over numpy, per implementation."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    records = [r for r in result["results"] if r["impl"] != REFERENCE and r["speedup"]]
    cases = list(dict.fromkeys(r["case"] for r in records))
    impls = _impl_order(records)
    height = 0.8 / max(1, len(impls))
    fig, ax = plt.subplots(figsize=(10, 0.6 + 0.45 * len(cases) * max(1, len(impls)) ** 0.5))
    for i, impl in enumerate(impls):
        speedups = {r["case"]: r["speedup"] for r in records if r["impl"] == impl}
        ys = [row + i * height for row, case in enumerate(cases) if case in speedups]
        ax.barh(ys, [speedups[case] for case in cases if case in speedups], height, label=impl)
    ax.set_yticks([row + 0.4 - height / 2 for row in range(len(cases))], cases, fontsize=8)
    ax.invert_yaxis()
    ax.set_xscale("log")
    ax.axvline(1.0, color="black", linewidth=0.8)
    ax.set_xlabel("speed-up over the NumPy reference (log scale; 1 = as fast)")
    ax.set_title(f"crossent bench — {result['machine']['cpu']}, {_threads(result)}", fontsize=10)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


# ------------------------------------------------------------ comparison

def load_run(path):
    """A saved run, checked; BenchError (one line) when it is not usable."""
    try:
        with open(path, encoding="utf-8") as source:
            data = json.load(source)
    except OSError as exc:
        raise BenchError(f"cannot read baseline {path}: {exc.strerror or exc}") from None
    except (ValueError, UnicodeDecodeError) as exc:
        raise BenchError(f"baseline {path} is not valid JSON: {exc}") from None
    validate_run(data, f"baseline {path}")
    return data


def validate_run(data, where):
    """Raise BenchError unless ``data`` has the shape run_benchmarks writes."""
    if not isinstance(data, dict) or "results" not in data:
        raise BenchError(f"{where} is not a crossent bench run (no 'results')")
    if data.get("format") != FORMAT:
        raise BenchError(f"{where} has format {data.get('format')!r}, expected {FORMAT!r}")
    if not isinstance(data["results"], list) or not data["results"]:
        raise BenchError(f"{where}: 'results' must be a non-empty list")
    for i, record in enumerate(data["results"]):
        if not isinstance(record, dict):
            raise BenchError(f"{where}: results[{i}] is not an object")
        for key in ("case", "impl"):
            if not isinstance(record.get(key), str):
                raise BenchError(f"{where}: results[{i}] has no string {key!r}")
        seconds = record.get("seconds")
        if (isinstance(seconds, bool) or not isinstance(seconds, (int, float))
                or not math.isfinite(seconds) or seconds <= 0):
            raise BenchError(f"{where}: results[{i}] ({record['case']} on {record['impl']}): "
                             f"'seconds' must be a positive number, got {seconds!r}")


def speedups(data):
    """{(case, impl): reference time / impl time} for the crossent backends.

    Peers are left out: their speed depends on their own versions and thread
    pools, not on crossent's code, so they must not fail crossent's check.
    """
    reference = {r["case"]: r["seconds"] for r in data["results"] if r["impl"] == REFERENCE}
    return {(r["case"], r["impl"]): reference[r["case"]] / r["seconds"]
            for r in data["results"]
            if r["impl"] != REFERENCE and r["impl"] not in PEERS and r["case"] in reference}


def _check_overlap(baseline, cases, path):
    wanted = {case.id for case in cases}
    if not any(r["case"] in wanted for r in baseline["results"]):
        hint = " (it was recorded with --quick)" if baseline.get("settings", {}).get("quick") else ""
        raise BenchError(f"baseline {path} has none of this run's cases{hint}")


def compare_runs(baseline, current, max_slowdown):
    """Cases whose speed-up over numpy fell by more than ``max_slowdown``.

    ``slowdown = baseline speed-up / current speed-up - 1``: how much slower a
    backend got relative to the reference timed beside it, so that a machine
    uniformly faster or slower than the baseline's changes nothing.
    """
    validate_run(baseline, "baseline")
    validate_run(current, "this run")
    before, after = speedups(baseline), speedups(current)
    common = sorted(set(before) & set(after))
    if not common:
        raise BenchError("the baseline and this run have no (case, backend) with a numpy "
                         "reference time in common")
    rows = [{"case": case, "impl": impl, "baseline": before[(case, impl)],
             "current": after[(case, impl)],
             "slowdown": before[(case, impl)] / after[(case, impl)] - 1}
            for case, impl in common]
    return {"compared": rows,
            "regressions": [row for row in rows if row["slowdown"] > max_slowdown],
            "not_compared": sorted(set(before) - set(after)),
            "baseline_machine": baseline.get("machine", {}),
            "machine": current.get("machine", {})}


def format_comparison(comparison, path, max_slowdown):
    machine = comparison["baseline_machine"].get("cpu", "an unrecorded machine")
    lines = [f"compared {len(comparison['compared'])} case(s) with {path} (from {machine}); "
             f"tolerated slowdown {max_slowdown:.0%}"]
    if comparison["not_compared"]:
        lines.append(f"  {len(comparison['not_compared'])} baseline case(s) not in this run, not compared")
    here = comparison.get("machine", {}).get("cpu")
    if here is not None and here != machine:
        lines.append(f"  note: this run is on another CPU ({here}); crossent and NumPy do not gain "
                     f"alike from one CPU to another, so a change may be the CPU's: record a "
                     f"baseline here (crossent bench --quick --threads 1 --json PATH)")
    for row in comparison["regressions"]:
        lines.append(f"  REGRESSION {row['case']} on {row['impl']}: speed-up "
                     f"{row['baseline']:.2f}x -> {row['current']:.2f}x "
                     f"({row['slowdown']:.0%} slower relative to numpy)")
    if comparison["regressions"]:
        named = ", ".join(f"{row['case']} ({row['impl']})" for row in comparison["regressions"])
        lines.append(f"crossent bench: {len(comparison['regressions'])} case(s) regressed by more "
                     f"than {max_slowdown:.0%}: {named}")
    else:
        worst = max(comparison["compared"], key=lambda row: row["slowdown"])
        lines.append(f"no regression (worst: {worst['case']} on {worst['impl']}, "
                     f"{worst['slowdown']:+.0%})")
    return "\n".join(lines)
