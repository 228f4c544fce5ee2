"""crossent: fast cross-entropy losses and their gradients for NumPy.

Every function validates its arguments once, then runs one compiled kernel
(Cython, or the C fallback) or the NumPy reference; see ``crossent.info()``.
The formulas and their derivations are in docs/math.md.
"""
import importlib
import sysconfig

from . import _backends
from . import _api
from ._api import *  # noqa: F401,F403 (the public functions, listed once in _api.FUNCTIONS)
from ._backends import (backends, get_backend, get_num_threads, set_backend, set_num_threads,
                        use_backend)
from ._outputs import release_memory
from ._linear_ce import linear_cross_entropy

__version__ = "0.1.0"

__all__ = list(_api.__all__) + [
    "backends", "get_backend", "set_backend", "use_backend", "set_num_threads",
    "get_num_threads", "release_memory", "info", "linear", "evaluate",
    "loss_partial", "LossPartial", "merge_partials", "objectives", "linear_cross_entropy",
]


def info():
    """A dict describing this installation: version, backends, the default
    backend, the SIMD variant its kernels use, threads, OpenMP, compiler and
    build flags."""
    default = _backends.get_backend()
    kernel_info = _backends.module(default).info()
    return {
        "version": __version__,
        "backends": backends(),
        "default_backend": default,
        "simd": kernel_info.get("simd"),
        "simd_available": kernel_info.get("simd_available"),
        "num_threads": get_num_threads(),
        "cpu_count": _backends.cpu_count(),
        "openmp": kernel_info.get("openmp"),
        "compiler": sysconfig.get_config_var("CC"),
        "build_flags": kernel_info.get("build_flags"),
    }


def __getattr__(name):
    # linear, objectives and evaluate are imported on first use, to keep `import crossent` light.
    # (import_module, not `from . import linear`: that would look the attribute
    # up on this module again and recurse.)
    if name == "linear":
        return importlib.import_module(f"{__name__}.linear")
    if name == "objectives":
        return importlib.import_module(f"{__name__}.objectives")
    if name == "evaluate":
        from ._eval import evaluate
        return evaluate
    if name in ("loss_partial", "LossPartial", "merge_partials"):
        from . import _partial
        return getattr(_partial, name)
    if name == "dask":
        return importlib.import_module(f"{__name__}.dask")
    raise AttributeError(f"module 'crossent' has no attribute {name!r}")
