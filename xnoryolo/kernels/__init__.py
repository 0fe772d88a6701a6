"""Fast Cython kernels (see kernels/README.md). `backend.FastBackend` is the entry point."""

import os

# Idle OpenMP workers spin only ~1000 rounds before sleeping. On a small machine shared with
# other work (video decode, the HTTP service, other processes) a long-spinning thread loses
# its core and barriers then wait scheduler time slices; measured on the 2-core dev VM,
# network ms at 2 threads, quiet / one CPU hog beside it: libgomp default spin 5.1 / 32-34,
# GOMP_SPINCOUNT=10000 5.3 / 32-55, 1000 5.7 / 12, OMP_WAIT_POLICY=PASSIVE 9.5 / 9.5-14.5
# (1 thread: 8.7-9.3). Must be set before libgomp initialises; explicit settings win.
if "OMP_WAIT_POLICY" not in os.environ:
    os.environ.setdefault("GOMP_SPINCOUNT", "1000")
