# The two commands a new user needs (README): `make run` and `make test`.
# Both create .venv with python3, build crossent from this checkout and install it.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
PYTEST_ARGS ?= -m "not slow"

.PHONY: run test test-all bench venv install clean sanitize test-nocython

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
# (Builds that differ from the normal one start from a fresh copy of the
# sources: setuptools would otherwise reuse build/'s objects and modules.)
define fresh_copy
	rm -rf $(1) && mkdir -p $(1)/src
	cp -r setup.py pyproject.toml README.md csrc pyx python $(1)/src/
	rm -f $(1)/src/pyx/*.c && find $(1)/src/python -name '*.so' -delete
	$(PYTHON) -m venv $(1)/venv
endef

SAN_DIR := .sanitize
sanitize:
	$(call fresh_copy,$(SAN_DIR))
	$(SAN_DIR)/venv/bin/python -m pip install -q "setuptools>=77" "Cython>=3" "numpy>=2.1" wheel pytest hypothesis mpmath scipy pytest-benchmark
	cd $(SAN_DIR)/src && CROSSENT_SANITIZE=address,undefined ../venv/bin/python -m pip install -q --no-build-isolation --no-deps .
	LD_PRELOAD="$$(gcc -print-file-name=libasan.so) $$(gcc -print-file-name=libubsan.so)" \
	ASAN_OPTIONS=detect_leaks=0:abort_on_error=1 \
	UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 \
	CROSSENT_EXPECT_SANITIZED=1 \
	$(SAN_DIR)/venv/bin/python -m pytest -q -p no:cacheprovider $(PYTEST_ARGS) tests \
		--ignore=tests/test_leaks.py  # ASan's quarantine holds freed memory on purpose: RSS grows

# The C fallback: built where Cython is not installed, the "c" backend must
# come first, and the suite must pass on it.
NOCY_DIR := .nocython
test-nocython:
	$(call fresh_copy,$(NOCY_DIR))
	$(NOCY_DIR)/venv/bin/python -m pip install -q "setuptools>=77" "numpy>=2.1" wheel pytest hypothesis mpmath scipy pytest-benchmark
	! $(NOCY_DIR)/venv/bin/python -c "import Cython" 2>/dev/null
	cd $(NOCY_DIR)/src && ../venv/bin/python -m pip install -q --no-build-isolation --no-deps .
	cd $(NOCY_DIR) && venv/bin/python -c "import crossent; b = crossent.backends(); \
		assert b[0] == 'c' and 'cython' not in b, b; print('no-Cython build: backends', b)"
	CROSSENT_BACKEND=c $(NOCY_DIR)/venv/bin/python -m pytest -q -p no:cacheprovider $(PYTEST_ARGS) tests
