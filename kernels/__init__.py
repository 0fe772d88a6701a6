"""Fast Cython kernels (see kernels/README.md). `backend.FastBackend` is the entry point."""

import os

# Idle OpenMP workers sleep instead of spinning: on a small machine shared with other work
# (video decode, the HTTP service, other processes) a spinning worker loses its core and every
# barrier then waits a whole scheduler time slice (measured: 2-thread frames 9x slower under
# load). Must be set before libgomp initialises; an explicit OMP_WAIT_POLICY wins.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
