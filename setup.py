"""Build the compiled crossent backends.

* ``crossent._c_backend``       -- the kernels on OpenMP threads (csrc/), built always.
* ``crossent.<name>`` per pyx/*.pyx -- the kernels on Cython's prange threads,
  built when Cython is importable at build time (a machine without Cython
  still gets the C backend).

Both link the same blocks and row functions (csrc/crossent_blocks.c,
csrc/crossent_rows*.c + dispatch), so everything but the parallel loop is
compiled from one source.
"""
import glob
import os
import shutil
import subprocess
import sys
import sysconfig
import tempfile
import warnings

import numpy
from setuptools import Extension, setup

HERE = os.path.dirname(os.path.abspath(__file__))


def _rel(pattern):
    return sorted(os.path.relpath(p, HERE) for p in glob.glob(os.path.join(HERE, pattern)))


OPENMP_PROBE = "#include <omp.h>\nint main(void){return omp_get_max_threads() < 1;}\n"


def _compiler_accepts(flag, program="int main(void){return 0;}\n"):
    """True when the C compiler builds and links `program` with `flag`."""
    cc = os.environ.get("CC") or sysconfig.get_config_var("CC") or "cc"
    cc = cc.split()[0]
    if shutil.which(cc) is None:
        return False
    with tempfile.TemporaryDirectory() as tmp:
        src = os.path.join(tmp, "probe.c")
        with open(src, "w") as f:
            f.write(program)
        cmd = [cc, flag, src, "-o", os.path.join(tmp, "probe")]
        return subprocess.run(cmd, capture_output=True).returncode == 0


SANITIZE = os.environ.get("CROSSENT_SANITIZE", "")  # e.g. "address,undefined"
OPENMP = (os.environ.get("CROSSENT_NO_OPENMP") is None
          and _compiler_accepts("-fopenmp", OPENMP_PROBE))
if not OPENMP:
    warnings.warn("crossent: the C compiler has no OpenMP; the kernels will run on one thread")

# -ffp-contract=off: no fused multiply-add contraction, so that every SIMD
# variant (baseline, AVX2, AVX-512) rounds exactly the same way.
COMPILE_ARGS = ["-O3", "-std=c99", "-ffp-contract=off", "-fno-math-errno", "-Wall", "-Wno-unused-function"]
# A SIMD variant's unit holds every row and block function; past GCC's
# "large unit" size (10 000 insns) its inliner stops growing the unit, and
# each new loss would change how the others' row groups are compiled (and
# their speed, not their bits).
LARGE_UNIT = "--param=large-unit-insns=100000"
if _compiler_accepts(LARGE_UNIT):
    COMPILE_ARGS.append(LARGE_UNIT)
LINK_ARGS = []
if OPENMP:
    COMPILE_ARGS.append("-fopenmp")
    LINK_ARGS.append("-fopenmp")
if SANITIZE:
    COMPILE_ARGS += [f"-fsanitize={SANITIZE}", "-fno-sanitize-recover=all", "-fno-omit-frame-pointer", "-O1", "-g"]
    LINK_ARGS += [f"-fsanitize={SANITIZE}"]

BUILD_FLAGS = " ".join(COMPILE_ARGS)


def _blocking():
    """The block sizes and the parallel threshold, from their one definition."""
    values = {}
    with open(os.path.join(HERE, "python", "crossent", "_blocking.py")) as f:
        exec(f.read(), values)
    return [("CE_" + name, str(values[name]))
            for name in ("BLOCK_ELEMS", "BLOCK_ROWS", "PARALLEL_MIN_WORK")]


MACROS = _blocking() + [
    ("NPY_NO_DEPRECATED_API", "NPY_2_0_API_VERSION"),
    ("CE_BUILD_FLAGS", '"%s"' % BUILD_FLAGS),
    ("CE_HAVE_OPENMP", "1" if OPENMP else "0"),
]
ROW_SOURCES = _rel("csrc/crossent_rows*.c") + _rel("csrc/crossent_dispatch.c") + _rel("csrc/crossent_blocks.c")


def _extension(name, sources):
    return Extension(
        name,
        sources=sources + ROW_SOURCES,
        # rebuild when a header changes (setuptools does not scan includes)
        depends=_rel("csrc/*.h") + _rel("pyx/*.pxd"),
        include_dirs=["csrc", numpy.get_include()],
        define_macros=MACROS,
        extra_compile_args=COMPILE_ARGS,
        extra_link_args=LINK_ARGS,
    )


extensions = []
c_backend_sources = _rel("csrc/crossent_cbinding.c")
if c_backend_sources:
    extensions.append(_extension("crossent._c_backend", c_backend_sources))

try:
    from Cython.Build import cythonize
except ImportError:
    cythonize = None
    print("crossent: Cython is not installed; building the C backend only", file=sys.stderr)

if cythonize is not None:
    pyx_extensions = [
        _extension("crossent." + os.path.splitext(os.path.basename(p))[0], [p])
        for p in _rel("pyx/*.pyx")
    ]
    if pyx_extensions:
        extensions += cythonize(
            pyx_extensions,
            include_path=["pyx"],
            compiler_directives={
                "language_level": 3,
                "boundscheck": False,
                "wraparound": False,
                "cdivision": True,
                "initializedcheck": False,
            },
        )

setup(ext_modules=extensions)
