"""Packed weights for binary networks (`.xnor` files): what the engine runs, nothing more.

Darknet's `.weights` stores every XNOR layer as full float32 weights plus BatchNorm arrays,
although inference only uses the signs of the BN-folded weights, one scale per filter and the
folded bias. A packed file stores exactly those, so it loads into outputs identical (bit for
bit) to loading the `.weights` it came from, at a fraction of the size.

Layout (little-endian)::

    magic    8 bytes   b"XNORYOLO"
    version  uint32    1
    hlen     uint32    length of the JSON header in bytes (padded with spaces to 8n)
    header   hlen      UTF-8 JSON: {"version": 1, "cfg": <cfg text>, "names": [..] | null,
                       "seen": int, "layers": [{"index", "kind", "offset", "bytes", ...}]}
    data               the layers' blocks, in cfg order, each at header-relative `offset`
                       (from the first byte after the header), 4-byte aligned

Blocks, per kind:

* `xnor` (conv with xnor=1): `filters` rows of ceil(K/8) bytes of sign bits (K = taps per
  filter in darknet's (c, ky, kx) order; bit i of a row is byte i//8, bit i%8, i.e.
  little bit order; 1 means w' > 0, 0 means w' <= 0), padded to 4 bytes; then
  float32 scale[filters] (mean |w'| per filter) and float32 bias'[filters].
* `float` (any other conv): folded weights w'[filters][K] as `dtype` (`f4`, or `f2` when every
  value is exactly a float16 - a lossless choice made at pack time), padded to 4 bytes; then
  float32 bias'[filters].
* `shortcut` (weighted [shortcut]): the raw float32 weights as in the `.weights` file.
* `batchnorm` ([batchnorm]): float32 biases, scales, rolling_mean, rolling_variance [c].

BN is always folded (darknet's fuse_conv_batchnorm, in double), so the cfg's batch_normalize
only matters when converting back: `to_darknet_weights` writes scales = 1, mean = 0 and a
variance for which darknet's fold is an exact no-op, giving a `.weights` with identical outputs.
"""

from __future__ import annotations

import json
import math
import struct
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from .errors import WeightsError
from .layers import BatchnormLayer, ConvolutionalLayer, Layer, ShortcutLayer
from .quantize import WEIGHT_TOP, ActQuant
from .weights import WeightsHeader

MAGIC = b"XNORYOLO"
VERSION = 1
SUFFIX = ".xnor"
F32 = np.float32


def _identity_variance() -> float:
    """float32 v whose fold factor 1/sqrt(v + 1e-5) (double) rounds every float32 to itself."""
    base = int(np.array([1.0 - 1e-5], F32).view(np.int32)[0])
    cands = (base + np.arange(-4, 5, dtype=np.int32)).view(F32)
    errs = [abs(1.0 / math.sqrt(float(v) + 0.00001) - 1.0) for v in cands]
    best = int(np.argmin(errs))
    assert errs[best] < 2.0**-26  # below half an ulp of any float32
    return float(cands[best])


IDENTITY_VARIANCE = _identity_variance()


class LoadedNetwork(Protocol):
    """What the format reads of a network with loaded weights (a `Network`; network.py
    loads packed files through this module, so this module does not import it)."""

    @property
    def layers(self) -> Sequence[Layer]: ...

    @property
    def header(self) -> WeightsHeader | None: ...


def is_packed(path: str | Path | bytes) -> bool:
    return isinstance(path, str | Path) and Path(path).suffix.lower() == SUFFIX


def _pad4(b: bytes) -> bytes:
    return b + b"\0" * (-len(b) % 4)


def _folded(layer: ConvolutionalLayer) -> tuple[np.ndarray, np.ndarray]:
    if layer.folded_bias is not None:  # prepared: weights hold the folded form
        assert layer.weights is not None
        return layer.weights, layer.folded_bias
    return layer.fold_batchnorm()


def pack(
    network: LoadedNetwork,
    cfg_text: str,
    names: list[str] | None = None,
    calibration: dict[str, Any] | None = None,
) -> bytes:
    """Bytes of a `.xnor` file for a network with loaded weights (prepared or not); the float
    convs' int8 input quantisation (`act_quant`) goes with them, `calibration` (how it was
    measured: frames, source, percentile) into the header."""
    blocks: list[bytes] = []
    table: list[dict[str, Any]] = []
    offset = 0
    for layer in network.layers:
        entry: dict[str, Any] = {"index": layer.index}
        if isinstance(layer, ConvolutionalLayer):
            if layer.weights is None:
                raise WeightsError(f"{layer.where}: no weights loaded")
            w, b = _folded(layer)
            f = layer.spec.filters
            flat = np.ascontiguousarray(w, F32).reshape(f, -1)
            entry.update(filters=f, k=flat.shape[1])
            if layer.xnor:
                scale = (np.abs(flat.astype(np.float64)).sum(axis=1) / flat.shape[1]).astype(F32)
                bits = np.packbits(flat > 0, axis=1, bitorder="little")
                data = _pad4(bits.tobytes()) + scale.astype("<f4").tobytes()
                data += np.asarray(b, "<f4").tobytes()
                entry["kind"] = "xnor"
            else:
                half = flat.astype(np.float16)
                lossless = bool(np.array_equal(half.astype(F32), flat, equal_nan=True))
                dtype = "<f2" if lossless else "<f4"
                data = _pad4(flat.astype(dtype).tobytes()) + np.asarray(b, "<f4").tobytes()
                entry.update(kind="float", dtype=dtype[1:])
                if layer.act_quant is not None:
                    entry["int8"] = layer.act_quant.to_json()
        elif isinstance(layer, ShortcutLayer) and layer.weight_floats():
            raise WeightsError(f"{layer.where}: weighted [shortcut] is not supported by pack")
        elif isinstance(layer, BatchnormLayer):
            if layer.params is None:
                raise WeightsError(f"{layer.where}: no weights loaded")
            data = b"".join(np.asarray(p, "<f4").tobytes() for p in layer.params)
            entry["kind"] = "batchnorm"
        else:
            continue
        entry.update(offset=offset, bytes=len(data))
        table.append(entry)
        blocks.append(data)
        offset += len(data)
    seen = network.header.seen if network.header is not None else 0
    header: dict[str, Any] = {
        "version": VERSION,
        "cfg": cfg_text,
        "names": names,
        "seen": seen,
        "layers": table,
    }
    if calibration is not None:
        header["calibration"] = calibration
    hjson = json.dumps(header, separators=(",", ":")).encode()
    hjson += b" " * (-len(hjson) % 8)
    return MAGIC + struct.pack("<II", VERSION, len(hjson)) + hjson + b"".join(blocks)


def read_header(data: bytes, where: str = "<packed>") -> tuple[dict[str, Any], memoryview]:
    if len(data) < 16 or data[:8] != MAGIC:
        raise WeightsError(f"{where}: not a packed xnoryolo (.xnor) file")
    version, hlen = struct.unpack_from("<II", data, 8)
    if version != VERSION:
        raise WeightsError(f"{where}: packed format version {version}, this reader knows {VERSION}")
    if 16 + hlen > len(data):
        raise WeightsError(f"{where}: file ends inside the header")
    try:
        header = json.loads(bytes(data[16 : 16 + hlen]).decode())
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise WeightsError(f"{where}: corrupt header ({exc})") from None
    return header, memoryview(data)[16 + hlen :]


def read_packed(path: str | Path) -> tuple[dict[str, Any], memoryview]:
    """The header and the blocks of a `.xnor` file (`Network.from_packed` loads one)."""
    p = Path(path)
    try:
        data = p.read_bytes()
    except OSError as exc:
        raise WeightsError(f"{p}: cannot read packed weights: {exc.strerror or exc}") from None
    return read_header(data, str(p))


def fill(layers: Sequence[Layer], header: dict[str, Any], body: memoryview, where: str) -> None:
    """Put the packed arrays into freshly built layers in the form prepare() turns into
    exactly the packed signs, scales and biases (BN already folded: bn = None)."""
    entries = {int(e["index"]): e for e in header["layers"]}
    end = 0
    for layer in layers:
        e = entries.pop(layer.index, None)
        expect = (
            "xnor"
            if isinstance(layer, ConvolutionalLayer) and layer.xnor
            else "float"
            if isinstance(layer, ConvolutionalLayer)
            else "batchnorm"
            if isinstance(layer, BatchnormLayer)
            else None
        )
        if e is None and expect is None:
            continue
        if e is None or e.get("kind") != expect:
            got = None if e is None else e.get("kind")
            raise WeightsError(f"{where}: {layer.where} needs a {expect} block, file has {got}")
        off, size = int(e["offset"]), int(e["bytes"])
        if off + size > len(body):
            raise WeightsError(f"{where}: {layer.where}: block past the end of the file")
        block = body[off : off + size]
        end = max(end, off + size)
        if isinstance(layer, BatchnormLayer):
            c = layer.in_shape[0]
            if size != 16 * c:
                raise WeightsError(f"{where}: {layer.where}: batchnorm block has {size} bytes")
            arr = np.frombuffer(block, "<f4").astype(F32)
            layer.params = tuple(arr[i * c : (i + 1) * c] for i in range(4))
            continue
        assert isinstance(layer, ConvolutionalLayer)
        s = layer.spec
        f, k = s.filters, s.k
        if (int(e["filters"]), int(e["k"])) != (f, k):
            raise WeightsError(
                f"{where}: {layer.where} has {f} filters x {k} taps, the file "
                f"{e['filters']} x {e['k']}: the packed model does not fit this cfg"
            )
        shape = (f, s.c // s.groups, s.size, s.size)
        if expect == "xnor":
            row = (k + 7) // 8
            nbits = f * row + (-(f * row) % 4)
            if size != nbits + 8 * f:
                raise WeightsError(f"{where}: {layer.where}: xnor block has {size} bytes")
            bits = np.frombuffer(block, np.uint8, f * row).reshape(f, row)
            signs = np.unpackbits(bits, axis=1, count=k, bitorder="little").astype(bool)
            scale = np.frombuffer(block, "<f4", f, nbits).astype(F32)
            bias = np.frombuffer(block, "<f4", f, nbits + 4 * f).astype(F32)
            # +-scale per filter: binarizes back to these signs and, summed in double, to
            # exactly this mean |w'|
            w = np.where(signs, scale[:, None], -scale[:, None]).astype(F32)
        else:
            dtype = "<" + str(e.get("dtype", "f4"))
            if dtype not in ("<f4", "<f2"):
                raise WeightsError(f"{where}: {layer.where}: unknown dtype {dtype}")
            nb = f * k * int(dtype[-1])
            nw = nb + (-nb % 4)
            if size != nw + 4 * f:
                raise WeightsError(f"{where}: {layer.where}: float block has {size} bytes")
            w = np.frombuffer(block, dtype, f * k).astype(F32)
            bias = np.frombuffer(block, "<f4", f, nw).astype(F32)
            layer.act_quant = _act_quant(e.get("int8"), f"{where}: {layer.where}")
        layer.weights = w.reshape(shape)
        layer.biases = bias
        layer.bn = None
    if entries:
        raise WeightsError(f"{where}: blocks for layers {sorted(entries)} that this cfg lacks")
    if end != len(body):
        raise WeightsError(f"{where}: {len(body) - end} bytes left over after the last block")


def _act_quant(entry: Any, where: str) -> ActQuant | None:
    if entry is None:
        return None
    try:
        return ActQuant(
            float(entry["scale"]),
            int(entry["zero"]),
            int(entry.get("top", 255)),
            int(entry.get("weight_top", WEIGHT_TOP)),
        )
    except (TypeError, KeyError, ValueError) as exc:
        raise WeightsError(f"{where}: bad int8 entry {entry!r}: {exc}") from None


def packed_names(path: str | Path) -> list[str] | None:
    header, _ = read_header(Path(path).read_bytes(), str(path))
    names = header.get("names")
    return list(names) if names else None


def to_darknet_weights(network: LoadedNetwork) -> bytes:
    """A darknet `.weights` (0.2.5) for a network loaded from a packed file (or any loaded
    network): folded weights, BN arrays that make darknet's fold a no-op."""
    seen = network.header.seen if network.header is not None else 0
    parts = [WeightsHeader(0, 2, 5, seen).to_bytes()]
    for layer in network.layers:
        if isinstance(layer, ConvolutionalLayer):
            if layer.dontload:
                continue
            if layer.batch_normalize and layer.dontloadscales:
                raise WeightsError(f"{layer.where}: dontloadscales cannot hold folded weights")
            w, b = _folded(layer)
            n = layer.spec.filters
            parts.append(np.asarray(b, "<f4").tobytes())
            if layer.batch_normalize:
                parts.append(np.ones(n, "<f4").tobytes() + np.zeros(n, "<f4").tobytes())
                parts.append(np.full(n, IDENTITY_VARIANCE, "<f4").tobytes())
            parts.append(np.ascontiguousarray(w, "<f4").tobytes())
        elif isinstance(layer, ShortcutLayer) and layer.weight_floats():
            raise WeightsError(f"{layer.where}: weighted [shortcut] is not supported")
        elif isinstance(layer, BatchnormLayer) and layer.params is not None:
            parts.extend(np.asarray(a, "<f4").tobytes() for a in layer.params)
    return b"".join(parts)
