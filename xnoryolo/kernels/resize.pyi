# Type stub of the compiled resize module (kernels/resize.pyx).
import numpy as np

def resize_bgr(img: np.ndarray, w: int, h: int, threads: int = 1) -> np.ndarray: ...
