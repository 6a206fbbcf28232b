"""Import numba's CUDA target through here: numba-cuda (0.30 and earlier) registers an
overload of np.row_stack when it first compiles a kernel, and NumPy 2.5 removed that alias of
np.vstack, so it is given back before that happens."""

import numpy as np

if not hasattr(np, "row_stack"):
    np.row_stack = np.vstack

from numba import cuda

__all__ = ["cuda"]
