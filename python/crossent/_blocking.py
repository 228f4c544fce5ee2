"""The blocking rules every backend follows, defined here once: the NumPy
reference reads them, and setup.py hands them to the C build (as
CE_BLOCK_ELEMS, CE_BLOCK_ROWS and CE_PARALLEL_MIN_WORK).

A reduction's partial sums are taken over fixed blocks and added in block
order, so results never depend on the thread count (docs/kernels.md,
"Determinism").
"""

# Elements of an elementwise kernel's block, and rows of a row kernel's.
BLOCK_ELEMS = 4096
BLOCK_ROWS = 64

# Below this many elements of work, a second thread costs more (its wake-up,
# false sharing of the block sums) than it saves, and the bindings keep the GIL.
PARALLEL_MIN_WORK = 32768
