"""The backend registry: which kernel modules exist, which one is the default,
and how many threads the kernels may use.

Fallback order is ``cython -> c -> numpy``: a compiled backend that is not
built is skipped silently; landing on the NumPy reference warns once.  The
environment variable ``CROSSENT_BACKEND`` forces the start-up default, and
``CROSSENT_SIMD=baseline`` forces the portable (non-AVX) kernels.
"""
import contextlib
import contextvars
import importlib
import os
import warnings

ORDER = ("cython", "c", "numpy")
_MODULES = {
    "cython": "crossent._cython_backend",
    "c": "crossent._c_backend",
    "numpy": "crossent._reference",
}
# Far beyond any machine this runs on; a larger request is a bug in the caller.
MAX_THREADS = 1024

_available: dict = {}   # backend name -> kernel module
_state = {"default": None, "start_up": None, "n_threads": None}
# use_backend's choice, for the thread (or asyncio task) that made it only;
# None: the process-wide default.
_chosen_here = contextvars.ContextVar("crossent_backend", default=None)


# libgomp's worker threads spin after each parallel region by default; on a
# machine whose other cores are busy that spinning steals the time the kernels
# need (a 10^6-element loss can run 20x slower on 2 threads than on 1).
# Passive waiting costs a few microseconds per region instead.  Read once, when
# the OpenMP runtime loads with the first compiled backend; a user's own
# setting wins.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")


def _load_backends():
    simd = os.environ.get("CROSSENT_SIMD", "").strip().lower()
    for name in ORDER:
        try:
            module = importlib.import_module(_MODULES[name])
        except ImportError:
            continue
        if simd and hasattr(module, "set_simd"):
            try:
                module.set_simd(simd)
            except ValueError as exc:
                warnings.warn(f"crossent: CROSSENT_SIMD={simd!r} ignored for {name!r}: {exc}",
                              RuntimeWarning, stacklevel=3)
        _available[name] = module


def _choose_default():
    forced = os.environ.get("CROSSENT_BACKEND", "").strip()
    if forced in _available:
        return forced
    best = next(iter(_available))
    problems = []
    if forced:
        problems.append(f"CROSSENT_BACKEND={forced!r} is not available "
                        f"(available: {', '.join(_available)}); using {best!r}")
    if best == "numpy":
        problems.append(
            "no compiled backend is built, so the slow NumPy reference is in use. "
            "Reinstall from source with a C compiler to get the compiled kernels: "
            "pip install --force-reinstall --no-binary crossent crossent")
    if problems:    # one warning, however many reasons (SPEC §5)
        warnings.warn("crossent: " + "; and ".join(problems), RuntimeWarning, stacklevel=3)
    return best


def backends():
    """The available backends, fastest first, e.g. ``['cython', 'c', 'numpy']``."""
    return list(_available)


def get_backend():
    """The name of the backend in use here: the one a ``use_backend`` block
    of this thread chose, else the process-wide default."""
    return _chosen_here.get() or _state["default"]


def chosen_here():
    """The backend a ``use_backend`` block of this thread chose, or None."""
    return _chosen_here.get()


def check_backend_name(name, expected="a backend name (str) or None"):
    if not isinstance(name, str):
        raise TypeError(f"backend: expected {expected}, got {type(name).__name__}")
    if name not in _MODULES:
        raise ValueError(f"backend: expected one of {', '.join(ORDER)}, got {name!r}")
    if name not in _available:
        raise ValueError(f"backend: {name!r} is not built in this installation "
                         f"(available: {', '.join(_available)})")
    return name


def set_backend(name):
    """Make ``name`` ("cython", "c" or "numpy") the process-wide default
    backend; None restores the start-up default (the fastest built, or
    ``CROSSENT_BACKEND``).  Inside a ``use_backend`` block it also replaces
    that block's choice until the block ends."""
    name = _state["start_up"] if name is None else check_backend_name(name)
    _state["default"] = name
    if _chosen_here.get() is not None:
        _chosen_here.set(name)


@contextlib.contextmanager
def use_backend(name):
    """Context manager: use backend ``name`` inside the ``with`` block, in
    this thread (or asyncio task) only; other threads keep theirs."""
    token = _chosen_here.set(check_backend_name(name, "a backend name (str)"))
    try:
        yield name
    finally:
        _chosen_here.reset(token)


def module(name=None):
    """The kernel module of backend ``name`` (None: the one in use here)."""
    if name is None:
        return _available[_chosen_here.get() or _state["default"]]
    return _available[check_backend_name(name)]


def _usable_cores():
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


_CORES = _usable_cores()   # read once: sched_getaffinity costs microseconds a call


def cpu_count():
    """Cores this process may run on (as at import)."""
    return _CORES


def check_n_threads(n, name="n_threads"):
    if isinstance(n, bool) or not isinstance(n, int) and not hasattr(n, "__index__"):
        raise TypeError(f"{name}: expected a positive int or None, got {type(n).__name__}")
    n = int(n.__index__())
    if not 1 <= n <= MAX_THREADS:
        raise ValueError(f"{name}: expected an int in [1, {MAX_THREADS}], got {n}")
    return n


def set_num_threads(n):
    """Set how many threads the kernels may use (None: all cores this process may use)."""
    _state["n_threads"] = None if n is None else check_n_threads(n)


def get_num_threads():
    """How many threads the kernels use by default."""
    return _state["n_threads"] or cpu_count()


def defaults():
    """(the default backend's module, the default thread count) in one call,
    for the facade's fast paths, where a microsecond is most of a call."""
    return _available[_chosen_here.get() or _state["default"]], _state["n_threads"] or _CORES


def resolve_n_threads(n):
    return get_num_threads() if n is None else check_n_threads(n)


_load_backends()
_state["default"] = _state["start_up"] = _choose_default()
