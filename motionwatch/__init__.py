"""motionwatch: a live motion detector for cameras and video files."""

import os

# numpy's OpenBLAS starts one thread per core at its first matrix call and lets
# them spin for a while after each one, a cost that showed in short scans
# (docs/performance.md). motionwatch's arrays are small; BLAS threads only compete
# with the decoder. Must be set before numpy is first imported; a user's own
# setting wins.
for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

__version__ = "0.1.0"
