"""A darknet network: built from a cfg in one pass (every shape known before any weights are
read), loaded from a strictly checked weights file, then run layer by layer."""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from . import packed
from .backends import Backend, get_backend
from .bits_plan import BitsPlan, plan_bits
from .bytes_plan import BytesPlan, plan_bytes, run_step
from .cfg import Cfg, Section, parse_cfg_text, read_cfg
from .errors import CfgError, WeightsError
from .layers import (
    BuildContext,
    ConvolutionalLayer,
    Layer,
    NetParams,
    RegionLayer,
    RouteLayer,
    ShortcutLayer,
    YoloLayer,
    build_layer,
)
from .pool_plan import PoolPlan, plan_pools
from .quantize import INPUT_QUANT, check_precision
from .weights import WeightsHeader, WeightsReader

# [net] keys used only for training/augmentation: read by darknet, ignored at inference.
NET_IGNORED = frozenset(
    """
    batch subdivisions momentum decay angle saturation exposure hue learning_rate burn_in
    max_batches policy steps scales max_chart_loss mosaic mosaic_bound cutmix mixup blur
    gaussian_noise flip jitter resize adam B1 B2 eps power gamma step seq_scales rate
    time_steps track augment_speed sequential_subdivisions try_fix_nan random
    label_smooth_eps letter_box_train inputs max_crop min_crop aspect center clip
    contrastive contrastive_jit_flip contrastive_color unsupervised_contrastive loss_scale
    dynamic_minibatch optimized_memory workspace_size_limit_MB adversarial_lr attention
    num_sigmas_reject_badlabels equidistant_point show_receptive_field stopbackward
    cudnn_half batchnorm_model train_only_bn mosaic_min_offset
    """.split()
)


# What forward(keep=False) leaves in the slot of an output no later layer reads.
DROPPED = np.empty(0, np.float32)
DROPPED.flags.writeable = False


@dataclass
class Network:
    path: str
    net: NetParams
    layers: list[Layer]
    header: WeightsHeader | None = None
    backend: Backend | None = None
    precision: str = "f32"

    # ---------------------------------------------------------------- building
    @classmethod
    def from_cfg(cls, cfg: str | Path | Cfg) -> Network:
        parsed = cfg if isinstance(cfg, Cfg) else read_cfg(cfg)
        first = parsed.sections[0]
        if first.name not in ("net", "network"):
            raise CfgError(
                parsed.path, first.line, f"first section must be [net], got [{first.name}]"
            )
        net = _net_params(first)
        shape = (net.channels, net.height, net.width)
        layers: list[Layer] = []
        for section in parsed.sections[1:]:
            ctx = BuildContext(len(layers), shape, layers, net)
            layer = build_layer(section, ctx)
            layers.append(layer)
            shape = layer.out_shape
        if not layers:
            raise CfgError(parsed.path, first.line, "no layers after [net]")
        _check_memory(first, net, layers)
        _resolve_bin_output(layers)
        first.warn_unused(NET_IGNORED)
        for layer in layers:
            layer.section.warn_unused(layer.IGNORED)
        return cls(parsed.path, net, layers)

    # ---------------------------------------------------------------- weights
    def weight_floats(self) -> list[tuple[str, int]]:
        return [(layer.where, layer.weight_floats()) for layer in self.layers]

    def load_weights(self, weights: str | Path | bytes) -> WeightsHeader:
        if isinstance(weights, bytes | bytearray):
            reader = WeightsReader(bytes(weights))
        else:
            reader = WeightsReader.open(weights, self.weight_floats())
        reader.check_size(self.weight_floats())
        for layer in self.layers:
            reader.owner = layer.where
            layer.load(reader)
        reader.finish()
        self.header = reader.header
        return reader.header

    def prepare(
        self,
        backend: Backend | str = "auto",
        threads: int | None = None,
        precision: str | None = None,
    ) -> Network:
        """Fold BN, binarize XNOR weights and build kernels; call after load_weights().

        precision: "f32" (darknet parity), "int8" (the non-binary convs run int8: needs a
        calibrated network, `calibrate.calibrate`) or None: int8 when calibrated, else f32."""
        self.backend = get_backend(backend, threads) if isinstance(backend, str) else backend
        calibrated = self.calibrated
        if precision is None:
            precision = "int8" if calibrated else "f32"
        self.precision = check_precision(precision)
        if precision == "int8" and not calibrated:
            raise WeightsError(
                f"{self.path}: precision int8 needs int8 calibration, which this model has "
                "not: calibrate it on frames (xnoryolo pack --calibrate VIDEO_OR_DIR), or run f32"
            )
        for layer in self.layers:
            if isinstance(layer, ConvolutionalLayer):
                layer.int8 = precision == "int8" and not layer.xnor and layer.act_quant is not None
            layer.prepare(self.backend)
        # kernels changed: plan again on first use
        self.__dict__.pop("bits_plan", None)
        self.__dict__.pop("bytes_plan", None)
        self.__dict__.pop("pool_plan", None)
        return self

    @property
    def takes_bytes(self) -> bool:
        """Whether forward takes the input as uint8 bytes (preprocess_bytes): the first layer
        is a conv prepared int8 on the pixel grid (scale 1/255, zero point 0), whose kernel
        would quantise the float tensor to those very bytes; only the first layer reads the
        network input."""
        first = self.layers[0] if self.layers else None
        return (
            isinstance(first, ConvolutionalLayer)
            and first.int8
            and first.act_quant is not None
            and first.act_quant.same_bytes(INPUT_QUANT)
            and first.kernel is not None
        )

    @property
    def calibrated(self) -> bool:
        """Whether some non-binary conv has the calibrated quantisation of its input."""
        return any(
            isinstance(ly, ConvolutionalLayer) and not ly.xnor and ly.act_quant is not None
            for ly in self.layers
        )

    @classmethod
    def load(
        cls,
        cfg: str | Path | None,
        weights: str | Path | bytes | None,
        backend: Backend | str = "auto",
        threads: int | None = None,
        precision: str | None = None,
    ) -> Network:
        """A prepared network from a cfg and darknet `.weights`, or from a packed `.xnor` file
        (which embeds its cfg: `cfg` may then be None, else it replaces the embedded one).
        precision: see prepare() (a packed file with int8 calibration runs int8 by default)."""
        if weights is not None and packed.is_packed(weights):
            assert isinstance(weights, str | Path)
            return cls.from_packed(weights, backend, threads, cfg, precision)
        if cfg is None:
            raise WeightsError("no cfg given (only a packed .xnor file carries its own)")
        network = cls.from_cfg(cfg)
        if weights is None:
            raise WeightsError("no weights given")
        network.load_weights(weights)
        return network.prepare(backend, threads, precision)

    @classmethod
    def from_packed(
        cls,
        path: str | Path,
        backend: Backend | str = "auto",
        threads: int | None = None,
        cfg: str | Path | None = None,
        precision: str | None = None,
    ) -> Network:
        """A prepared network from a `.xnor` file (detector.packed); `cfg` (optional) replaces
        the embedded cfg, e.g. to run at another input size (layer shapes must still fit)."""
        p = Path(path)
        header, body = packed.read_packed(p)
        parsed = read_cfg(cfg) if cfg is not None else parse_cfg_text(header["cfg"], f"{p}:cfg")
        network = cls.from_cfg(parsed)
        packed.fill(network.layers, header, body, str(p))
        network.header = WeightsHeader(0, 2, 5, int(header.get("seen", 0)))
        return network.prepare(backend, threads, precision)

    # ---------------------------------------------------------------- running
    @property
    def input_shape(self) -> tuple[int, int, int]:
        return (self.net.channels, self.net.height, self.net.width)

    def forward(
        self,
        x: np.ndarray,
        keep: bool = True,
        on_layer: Callable[[int], None] | None = None,
    ) -> list[np.ndarray]:
        """Run on a (c, h, w) float32 tensor, or its uint8 bytes where `takes_bytes`; returns
        every layer's output (darknet layout).

        With keep=False, outputs nothing later reads are dropped as soon as possible (their
        slots hold the empty array `DROPPED`), and layers read by binary layers hand them
        packed sign bits instead of floats (`bits_plan`; their slots may then hold those bits),
        and int8 layers read by int8 layers hand them their input bytes (`bytes_plan`), and
        float convs run the maxpool after them (`pool_plan`), and [yolo] layers leave their
        logistic to the decoder (`Logits`): only the outputs of the detection layers are
        meant to be read, by the decoder or through `head_outputs`. `on_layer(i)` is called
        after layer i (timing)."""
        if x.shape != self.input_shape:
            raise ValueError(f"input tensor shape {x.shape} != network input {self.input_shape}")
        if x.dtype == np.uint8:
            if not self.takes_bytes:
                raise ValueError(
                    "uint8 input needs a first layer prepared int8 on the pixel grid "
                    "(Network.takes_bytes); give the float32 tensor (preprocess)"
                )
            x = np.ascontiguousarray(x)
        else:
            x = np.ascontiguousarray(x, dtype=np.float32)
        last_use = self._drop_plan if not keep else {}
        bits_plan = self.bits_plan if not keep else {}
        bytes_plan = self.bytes_plan if not keep else {}
        pool_plan = self.pool_plan if not keep else {}
        lean_heads = not keep
        outputs: list[np.ndarray] = []
        bits: dict[int, np.ndarray] = {}  # sign bits the planned layers emitted
        for i, layer in enumerate(self.layers):
            step = bits_plan.get(i)
            byte_step = bytes_plan.get(i)
            if byte_step is not None:  # int8 -> int8: the reader's input bytes
                y = nxt = run_step(layer, x, byte_step)
            elif i in pool_plan:  # a float conv and its pool, or that pool (done)
                pool = pool_plan[i]
                if pool is None:
                    y = nxt = x
                else:
                    assert isinstance(layer, ConvolutionalLayer)
                    y = nxt = layer.forward_pooled(x, pool)
            elif step is None and lean_heads and isinstance(layer, YoloLayer):
                y = nxt = layer.forward_lean(x)  # its logistic left to the decoder
            elif step is None:
                y = nxt = layer.forward(x, outputs)
            elif step.done:
                y = nxt = bits[i] = x  # the previous layer did this one's work
            else:
                y_float, bits[i] = layer.forward_bits(x, outputs, step, bits)
                y = bits[i] if y_float is None else y_float
                nxt = bits[i] if step.next_bits else y
            outputs.append(y)
            x = nxt
            for j in last_use.get(i, ()):
                outputs[j] = DROPPED
                bits.pop(j, None)
            if on_layer is not None:
                on_layer(i)
        return outputs

    def head_outputs(self, outputs: list[np.ndarray]) -> dict[int, np.ndarray]:
        """The detection layers' outputs as darknet has them, from either kind of forward
        (a lean forward's `Logits` activated), by layer index."""
        return {
            d.index: d.activated(outputs[d.index]) if isinstance(d, YoloLayer) else outputs[d.index]
            for d in self.detection_layers
        }

    @functools.cached_property
    def _drop_plan(self) -> dict[int, list[int]]:
        """After layer i runs, the outputs no later layer (or the decoder) reads: computed once,
        the layer graph never changes after building."""
        last: dict[int, int] = {}
        for layer in self.layers:
            last[layer.index - 1] = layer.index
            for src in layer.reads:
                last[src] = max(last.get(src, 0), layer.index)
        for d in self.detection_layers:
            last[d.index] = len(self.layers)
        drop: dict[int, list[int]] = {}
        for j, i in last.items():
            if j >= 0:
                drop.setdefault(i, []).append(j)
        return drop

    @functools.cached_property
    def bits_plan(self) -> BitsPlan:
        """`plan_bits` for these layers as prepared (forward(keep=False) runs it); prepare()
        plans again on first use."""
        return plan_bits(self.layers)

    @functools.cached_property
    def bytes_plan(self) -> BytesPlan:
        """`plan_bytes` for these layers as prepared (forward(keep=False) runs it)."""
        return plan_bytes(self.layers, self.bits_plan)

    @functools.cached_property
    def pool_plan(self) -> PoolPlan:
        """`plan_pools` for these layers as prepared (forward(keep=False) runs it)."""
        return plan_pools(self.layers, self.bits_plan.keys() | self.bytes_plan.keys())

    @functools.cached_property
    def detection_layers(self) -> list[YoloLayer | RegionLayer]:
        return [ly for ly in self.layers if isinstance(ly, YoloLayer | RegionLayer)]

    def summary(self) -> str:
        return "\n".join(layer.summary() for layer in self.layers)


def _net_params(section: Section) -> NetParams:
    width = section.get_int("width", 0)
    height = section.get_int("height", 0)
    channels = section.get_int("channels", 0)
    for key, value in (("width", width), ("height", height), ("channels", channels)):
        if value < 1:
            raise section.error(f"[net] {key}={value}: must be set to a positive value", key)
        if value > MAX_INPUT_SIDE:
            raise section.error(f"[net] {key}={value}: more than {MAX_INPUT_SIDE}", key)
    letter_box = bool(section.get_int("letter_box", 0))
    return NetParams(width, height, channels, letter_box)


# Beyond this one layer's output (float32) is not a network to run on an edge box: a [net]
# width/height typo (416000) is refused here instead of failing in an allocation mid-frame.
MAX_LAYER_BYTES = 2 << 30
MAX_INPUT_SIDE = 1 << 16


def _check_memory(section: Section, net: NetParams, layers: list[Layer]) -> None:
    worst = max(layers, key=lambda ly: math.prod(ly.out_shape))
    need = 4 * max(math.prod(worst.out_shape), net.channels * net.height * net.width)
    if need > MAX_LAYER_BYTES:
        raise section.error(
            f"[net] width={net.width} height={net.height}: {worst.where}'s output alone would "
            f"need {need / (1 << 30):.1f} GiB (at most {MAX_LAYER_BYTES >> 30} GiB per layer)",
            "width",
        )


def _resolve_bin_output(layers: list[Layer]) -> None:
    """Darknet clears bin_output for every route input and around every shortcut."""

    def clear(i: int) -> None:
        layer = layers[i] if 0 <= i < len(layers) else None
        if isinstance(layer, ConvolutionalLayer):
            layer.bin_output = False

    for layer in layers:
        if isinstance(layer, RouteLayer):
            for i in layer.sources:
                clear(i)
        elif isinstance(layer, ShortcutLayer):
            clear(layer.index - 1)
            clear(layer.sources[0])  # darknet clears l.index, the first from= layer, only
