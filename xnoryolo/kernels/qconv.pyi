# Type stub of the compiled qconv module (kernels/qconv.pyx).
import numpy as np

from xnoryolo.kernels.protocols import Activate, ConvGeometry

def path_names() -> tuple[str, ...]: ...
def path_supported(name: str) -> bool: ...
def available_paths() -> list[str]: ...
def sign_thresholds(mult: np.ndarray, bias: np.ndarray) -> np.ndarray: ...

class Int8Conv:
    c: int
    h: int
    w: int
    filters: int
    size: int
    stride_y: int
    stride_x: int
    padding: int
    dilation: int
    groups: int
    out_h: int
    out_w: int
    k: int
    kp: int
    fgp: int
    threads: int
    path: int
    zero: int
    top: int
    block: int
    direct: bool
    in_scale: float
    activation: str
    def __init__(
        self,
        qweights: np.ndarray,
        w_scale: np.ndarray,
        bias: np.ndarray,
        spec: ConvGeometry,
        in_scale: float,
        in_zero: int,
        activation: str,
        threads: int,
        path: str,
        activate: Activate | None = None,
        direct: bool | None = None,
        in_top: int = 255,
    ) -> None: ...
    @property
    def path_name(self) -> str: ...
    @property
    def tile_name(self) -> str: ...
    def __call__(self, x: np.ndarray) -> np.ndarray: ...
    def run_int(self, x: np.ndarray) -> np.ndarray: ...
    @property
    def emits_bytes(self) -> bool: ...
    def run_bytes(
        self,
        x: np.ndarray,
        out_scale: float,
        out_zero: int,
        pool: tuple[int, int, int, int, int, int] | None = None,
        out_top: int = 255,
    ) -> np.ndarray: ...
    def takes_pool(self, pool: object) -> bool: ...
    def run_pooled_bits(
        self, x: np.ndarray, pool: object, out: np.ndarray, out_pad: int = 0
    ) -> np.ndarray: ...
