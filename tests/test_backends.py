"""The backend registry (SPEC §5): the default, set_backend, use_backend,
CROSSENT_BACKEND and the fallback's one warning."""
import subprocess
import sys
import threading

import numpy as np
import pytest

import crossent
from crossent import _backends


@pytest.fixture(autouse=True)
def start_up_default():
    yield
    crossent.set_backend(None)


def test_the_default_is_the_fastest_available():
    names = crossent.backends()
    assert names[-1] == "numpy" and set(names) <= {"cython", "c", "numpy"}
    assert names == [n for n in ("cython", "c", "numpy") if n in names]
    assert crossent.get_backend() == names[0]


def test_set_backend_and_none_for_the_start_up_default():
    start = crossent.get_backend()
    crossent.set_backend("numpy")
    assert crossent.get_backend() == "numpy" and _backends.module() is _backends.module("numpy")
    crossent.set_backend(None)
    assert crossent.get_backend() == start


def test_use_backend_restores_on_exit_and_on_error():
    start = crossent.get_backend()
    with crossent.use_backend("numpy") as name:
        assert name == "numpy" and crossent.get_backend() == "numpy"
        with crossent.use_backend(start):
            assert crossent.get_backend() == start
        assert crossent.get_backend() == "numpy"
    assert crossent.get_backend() == start
    with pytest.raises(KeyError):
        with crossent.use_backend("numpy"):
            raise KeyError
    assert crossent.get_backend() == start


def test_set_backend_inside_a_block_holds_there_and_after():
    with crossent.use_backend("numpy"):
        crossent.set_backend(crossent.backends()[0])
        assert crossent.get_backend() == crossent.backends()[0]
    assert crossent.get_backend() == crossent.backends()[0]


def test_use_backend_is_the_threads_own():
    """Blocks of two threads that overlap, the first ending inside the
    second: each thread sees its own choice, others the default, and the
    default is unchanged after both."""
    start = crossent.get_backend()
    a_inside, b_inside, a_done = threading.Event(), threading.Event(), threading.Event()
    seen = {}

    def first():
        with crossent.use_backend("numpy"):
            a_inside.set()
            b_inside.wait(5)
            seen["first"] = crossent.get_backend()
        a_done.set()

    def second():
        a_inside.wait(5)
        with crossent.use_backend(start):
            b_inside.set()
            a_done.wait(5)
            seen["second, after the first ended"] = crossent.get_backend()

    threads = [threading.Thread(target=first), threading.Thread(target=second)]
    for t in threads:
        t.start()
    a_inside.wait(5)
    seen["a third thread"] = crossent.get_backend()
    for t in threads:
        t.join()
    assert seen == {"first": "numpy", "second, after the first ended": start,
                    "a third thread": start}
    assert crossent.get_backend() == start


def test_calls_in_a_block_run_its_backend(monkeypatch):
    calls = []
    numpy_module = _backends.module("numpy")
    monkeypatch.setattr(numpy_module, "softmax_xent_index",
                        lambda *args, _real=numpy_module.softmax_xent_index:
                        calls.append(1) or _real(*args))
    z, t = np.zeros((3, 4)), np.array([0, 1, 2])
    with crossent.use_backend("numpy"):
        crossent.cross_entropy(z, t)
    assert calls


def test_bad_names_say_what_is_expected():
    with pytest.raises(ValueError, match="expected one of cython, c, numpy, got 'fortran'"):
        crossent.set_backend("fortran")
    for bad in (3, None):
        with pytest.raises(TypeError, match=r"backend: expected a backend name \(str\), got"):
            crossent.use_backend(bad).__enter__()
    with pytest.raises(TypeError, match=r"backend: expected a backend name \(str\) or None"):
        crossent.set_backend(2.0)


def _start_up(environment, blocked=()):
    """(default backend, RuntimeWarning messages) of a fresh interpreter."""
    code = ("import sys, warnings\n"
            f"for name in {list(blocked)!r}: sys.modules[name] = None\n"
            "with warnings.catch_warnings(record=True) as caught:\n"
            "    warnings.simplefilter('always')\n"
            "    import crossent\n"
            "print(crossent.get_backend())\n"
            "for w in caught:\n"
            "    if w.category is RuntimeWarning: print('WARNING', w.message)\n")
    env = {**__import__("os").environ, **environment}
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env,
                          check=True)
    lines = done.stdout.splitlines()
    return lines[0], [line for line in lines[1:] if line.startswith("WARNING")]


@pytest.mark.parametrize("name", ["c", "numpy"])
def test_crossent_backend_sets_the_start_up_default(name):
    if name not in crossent.backends():
        pytest.skip(f"{name} is not built")
    assert _start_up({"CROSSENT_BACKEND": name}) == (name, [])


def test_an_unknown_crossent_backend_warns_once_and_takes_the_fastest():
    default, warned = _start_up({"CROSSENT_BACKEND": "fortran"})
    assert default == crossent.backends()[0] and len(warned) == 1 and "fortran" in warned[0]


def test_no_compiled_backend_falls_back_to_numpy_with_one_warning():
    blocked = ["crossent._cython_backend", "crossent._c_backend"]
    for environment in ({"CROSSENT_BACKEND": ""}, {"CROSSENT_BACKEND": "c"}):
        default, warned = _start_up(environment, blocked)
        assert default == "numpy" and len(warned) == 1, (environment, warned)
        assert "NumPy reference" in warned[0]
