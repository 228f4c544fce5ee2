# The two commands a new user needs (README): `make run` and `make test`.
# Both create .venv with python3, build crossent from this checkout and install it.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
PYTEST_ARGS ?= -m "not slow"

.PHONY: run test test-all bench venv install clean sanitize

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
	$(PY) -m pytest benchmarks --benchmark-enable --benchmark-only --benchmark-group-by=group,param:case_id --benchmark-sort=name --benchmark-columns=median,iqr,rounds

clean:
	rm -rf build *.egg-info python/*.egg-info .venv pyx/*.c
	find python -name '*.so' -delete

# AddressSanitizer + UndefinedBehaviorSanitizer: both compiled backends built
# instrumented (from a copy of the sources, so no object of the normal build
# is reused or left behind), then the test suite under them; any report fails.
SAN_DIR := .sanitize
sanitize: $(PY)
	rm -rf $(SAN_DIR) && mkdir -p $(SAN_DIR)/src
	cp -r setup.py pyproject.toml README.md csrc pyx python $(SAN_DIR)/src/
	rm -f $(SAN_DIR)/src/pyx/*.c && find $(SAN_DIR)/src/python -name '*.so' -delete
	$(PYTHON) -m venv $(SAN_DIR)/venv
	$(SAN_DIR)/venv/bin/python -m pip install -q "setuptools>=77" "Cython>=3" "numpy>=2.1" wheel pytest hypothesis mpmath scipy pytest-benchmark
	cd $(SAN_DIR)/src && CROSSENT_SANITIZE=address,undefined ../venv/bin/python -m pip install -q --no-build-isolation --no-deps .
	LD_PRELOAD="$$(gcc -print-file-name=libasan.so) $$(gcc -print-file-name=libubsan.so)" \
	ASAN_OPTIONS=detect_leaks=0:abort_on_error=1 \
	UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 \
	CROSSENT_EXPECT_SANITIZED=1 \
	$(SAN_DIR)/venv/bin/python -m pytest -q -p no:cacheprovider $(PYTEST_ARGS) tests
