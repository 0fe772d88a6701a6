# Type stub of the compiled xconv module (kernels/xconv.pyx).
import numpy as np

from xnoryolo.kernels.protocols import Activate, ConvGeometry

def isa_names() -> tuple[str, ...]: ...
def isa_supported(name: str) -> bool: ...
def best_isa() -> str: ...
def pack_weights(signs: np.ndarray) -> np.ndarray: ...
def sign_limits(k: int, scale: np.ndarray, bias: np.ndarray) -> np.ndarray: ...
def popcount_peak(isa: str, nwords: int = 64, reps: int = 200000) -> tuple[int, float, int]: ...

class BinaryConv:
    c: int
    h: int
    w: int
    filters: int
    size: int
    stride_y: int
    stride_x: int
    padding: int
    out_h: int
    out_w: int
    k: int
    kw: int
    cw: int
    fpad: int
    isa: int
    threads: int
    activation: str
    emits_bits: bool
    def __init__(
        self,
        signs: np.ndarray,
        scale: np.ndarray,
        bias: np.ndarray,
        spec: ConvGeometry,
        activation: str,
        threads: int,
        isa: str,
        *,
        activate: Activate | None = None,
    ) -> None: ...
    @property
    def isa_name(self) -> str: ...
    def __call__(self, x: np.ndarray) -> np.ndarray: ...
    def dot(self, x: np.ndarray) -> np.ndarray: ...
    def pack(self, x: np.ndarray) -> np.ndarray: ...
    @property
    def packed_shape(self) -> tuple[int, int, int]: ...
    def run(
        self,
        x: np.ndarray,
        bits: np.ndarray | None = None,
        bits_pad: int = 0,
        want_float: bool = True,
    ) -> np.ndarray | None: ...

class FloatConv:
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
    threads: int
    activation: str
    isa: int
    direct: bool
    own_gemm: bool
    def __init__(
        self,
        weights: np.ndarray,
        bias: np.ndarray,
        spec: ConvGeometry,
        activation: str,
        threads: int,
        isa: str = "portable",
        *,
        activate: Activate | None = None,
    ) -> None: ...
    @property
    def isa_name(self) -> str: ...
    def __call__(self, x: np.ndarray) -> np.ndarray: ...
    def takes_pool(self, pool: MaxPool) -> bool: ...
    def run_pooled(self, x: np.ndarray, pool: MaxPool) -> np.ndarray: ...
    def run_pooled_bits(
        self, x: np.ndarray, pool: MaxPool, out: np.ndarray, out_pad: int = 0
    ) -> np.ndarray: ...

class MaxPool:
    def __init__(
        self,
        c: int,
        h: int,
        w: int,
        size: int,
        stride_y: int,
        stride_x: int,
        padding: int,
        out_h: int,
        out_w: int,
        threads: int,
        isa: str = "portable",
    ) -> None: ...
    def __call__(self, x: np.ndarray) -> np.ndarray: ...
    @property
    def packed_shape(self) -> tuple[int, int, int]: ...
    def run_bits(self, x: np.ndarray, out: np.ndarray, out_pad: int = 0) -> np.ndarray: ...
