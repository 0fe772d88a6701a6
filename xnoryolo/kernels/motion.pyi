# Type stub of the compiled motion-gate module (kernels/motion.pyx).
import numpy as np

def motion_picture(
    image: np.ndarray,
    grey: np.ndarray,
    rows: np.ndarray,
    ref: np.ndarray | None,
    mask: np.ndarray | None,
    delta: int,
) -> int: ...
