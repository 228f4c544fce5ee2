"""Shared fixtures: every test that takes ``backend`` runs once per available
backend and passes ``backend=backend`` to each public call, so that one test
body checks the Cython, C and NumPy implementations alike; a test that takes
``backend_or_default`` also runs once through the plain call users make."""
import os

import pytest
from hypothesis import settings

import crossent

# Hypothesis: no deadline (the machine is shared, timings are noisy) and few
# examples, so that the whole suite stays fast; CROSSENT_HYPOTHESIS_PROFILE=
# crossent-thorough runs many more.
settings.register_profile("crossent", deadline=None, max_examples=30)
settings.register_profile("crossent-thorough", deadline=None, max_examples=500)
settings.load_profile(os.environ.get("CROSSENT_HYPOTHESIS_PROFILE", "crossent"))

BACKENDS = crossent.backends()
COMPILED_BACKENDS = [name for name in BACKENDS if name != "numpy"]


@pytest.fixture(params=BACKENDS, ids=BACKENDS)
def backend(request):
    """The name of one available backend."""
    return request.param


@pytest.fixture(params=BACKENDS + [None], ids=BACKENDS + ["default"])
def backend_or_default(request):
    """The name of one available backend, or None: the plain call. None is
    the ``backend`` keyword's default, so ``backend=None`` takes the path of
    a call without the keyword, fast paths included (test_contract.py checks
    that every public function's default is None)."""
    return request.param


@pytest.fixture(params=COMPILED_BACKENDS or [pytest.param(None, marks=pytest.mark.skip(
    reason="no compiled backend is built"))], ids=COMPILED_BACKENDS or ["none"])
def compiled_backend(request):
    """The name of one available compiled backend (skipped when none is built)."""
    return request.param


@pytest.fixture
def torch():
    """PyTorch in float64 mode of use; the test is skipped when it is missing."""
    return pytest.importorskip("torch")


@pytest.fixture
def sklearn_metrics():
    pytest.importorskip("sklearn")
    import sklearn.metrics
    return sklearn.metrics
