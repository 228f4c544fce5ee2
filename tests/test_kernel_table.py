"""The kernel table (csrc/crossent_kernels.h) is the one list of kernels:
both compiled backends expose exactly its rows, the NumPy reference mirrors
each row's signature, and docs/kernels.md lists each row as it is."""
import inspect
import pathlib
import re

import pytest

import crossent
from crossent import _backends, _reference

COMPILED = [name for name in ("cython", "c") if name in crossent.backends()]
DOCS = pathlib.Path(__file__).resolve().parents[1] / "docs" / "kernels.md"


def _table():
    if not COMPILED:
        pytest.skip("no compiled backend is built")
    return _backends.module(COMPILED[0]).KERNELS


def _names(signature):
    return [name.strip().rstrip("?") for name in signature.split(",")]


@pytest.mark.parametrize("backend", COMPILED)
def test_every_backend_exposes_the_table(backend):
    module = _backends.module(backend)
    assert module.KERNELS == _table()
    for name in module.KERNELS:
        assert callable(getattr(module, name)), name


def test_the_reference_mirrors_every_signature():
    for name, signature in _table().items():
        function = getattr(_reference, name, None)
        assert function is not None, f"_reference.py has no kernel {name}"
        assert list(inspect.signature(function).parameters) == _names(signature), name


def test_docs_list_every_kernel_with_its_signature():
    rows = dict(re.findall(r"^\| `(\w+)` \| `\(([^)]*)\)`", DOCS.read_text(), re.M))
    table = _table()
    assert set(rows) == set(table), "docs/kernels.md and the kernel table list different kernels"
    for name, signature in table.items():
        assert _names(rows[name]) == _names(signature), name


@pytest.mark.parametrize("backend", COMPILED)
def test_a_call_with_the_wrong_argument_count_names_the_kernel(backend):
    module = _backends.module(backend)
    for name, signature in module.KERNELS.items():
        with pytest.raises(TypeError, match=rf"{name}\(\) takes {len(_names(signature))} positional"):
            getattr(module, name)()
