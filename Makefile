# The two commands a new user needs (README): `make run` and `make test`.
# Both create .venv with python3, build crossent from this checkout and install it.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
PYTEST_ARGS ?= -m "not slow"

.PHONY: run test test-all bench venv install clean

venv: $(PY)
$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip

# Build requirements first, then a non-isolated build (faster, and offline-friendly).
install: $(PY)
	$(PY) -m pip install -q "setuptools>=77" "Cython>=3" "numpy>=2.1" wheel
	$(PY) -m pip install -q --no-build-isolation ".[test,bench,plot]"

# The main job: what this build is, then the quick benchmark against the NumPy reference.
run: install
	$(PY) -m crossent info
	$(PY) -m crossent bench --quick

test: install
	$(PY) -m pytest -q $(PYTEST_ARGS)

test-all:
	$(MAKE) test PYTEST_ARGS=""

bench: install
	$(PY) -m pytest benchmarks --benchmark-enable --benchmark-only -q

clean:
	rm -rf build *.egg-info python/*.egg-info .venv pyx/*.c
	find python -name '*.so' -delete
