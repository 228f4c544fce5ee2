"""Types of crossent._c_backend: the C backend, whose functions are the Cython
backend's (one binding, csrc/crossent_pybind.h, serves both)."""
from ._cython_backend import *
