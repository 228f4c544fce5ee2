"""New output arrays (gradients, per-sample losses, activations), the large
ones on recycled memory.

glibc's malloc gives every allocation above 32 MiB its own fresh mapping and
returns it to the system on free, so a 10^7-element float32 gradient (40 MB)
costs page faults on every call: the kernel zeroes each page again on its
first write.  Those faults are nearly a third of a 10^7-element
``binary_cross_entropy_with_logits`` call with its gradient
(docs/performance.md, "Memory").

So an output of RECYCLE_MIN_BYTES to RECYCLE_MAX_BYTES is a view of a buffer
kept here, and the next output of a size that fits takes that buffer again
once no view of it is alive.  At most SLOTS buffers are kept (two, so that
``loss, grad = f(...)`` in a loop alternates between them while the previous
gradient is still bound); they are held for the life of the process, or
until :func:`release_memory` drops the idle ones.  Such an output is a plain
writeable C-contiguous array whose ``base`` is the buffer.
"""
import math
import sys
import threading

import numpy as np

RECYCLE_MIN_BYTES = 32 << 20
RECYCLE_MAX_BYTES = 256 << 20
SLOTS = 2

_lock = threading.Lock()
_buffers: list = []   # 1-D uint8 arrays; outputs are views of them


def _idle(index):
    """No view of _buffers[index] is alive: its only references are the list
    and getrefcount's argument (NumPy points every view's base at the buffer
    itself, not at the view it was made from)."""
    return sys.getrefcount(_buffers[index]) == 2


def empty(shape, dtype):
    """np.empty(shape, dtype), on a recycled buffer when it is large."""
    dtype = np.dtype(dtype)
    nbytes = math.prod(shape) * dtype.itemsize
    if not RECYCLE_MIN_BYTES <= nbytes <= RECYCLE_MAX_BYTES:
        return np.empty(shape, dtype)
    with _lock:
        # A buffer of nbytes to 2 * nbytes, so that a small output does not
        # hold a much larger buffer.
        fits = [i for i in range(len(_buffers))
                if nbytes <= _buffers[i].size < 2 * nbytes and _idle(i)]
        if fits:
            buffer = _buffers[fits[0]]
        else:
            buffer = np.empty(nbytes, np.uint8)
            idle = [i for i in range(len(_buffers)) if _idle(i)]
            if len(_buffers) < SLOTS:
                _buffers.append(buffer)
            elif idle:
                _buffers[idle[0]] = buffer
        return buffer[:nbytes].view(dtype).reshape(shape)


def release_memory():
    """Free the memory crossent keeps for recycling large outputs: the kept
    buffers (at most two, of 32 to 256 MiB) that no array uses any more.
    Returns the number of bytes freed.  Results of later calls are recycled
    again; see docs/performance.md."""
    with _lock:
        idle = [i for i in range(len(_buffers)) if _idle(i)]
        freed = sum(_buffers[i].size for i in idle)
        _buffers[:] = [b for i, b in enumerate(_buffers) if i not in idle]
    return freed
