# Type stub of the compiled resize module (kernels/resize.pyx).
import numpy as np

def resize_bgr(img: np.ndarray, w: int, h: int) -> np.ndarray: ...
