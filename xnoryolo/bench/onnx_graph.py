"""The ONNX graph of a float darknet network, written from the parsed layers (the peers bench
runs it on ONNX Runtime and OpenVINO): convolutions with BN folded as darknet folds it, their
activations, darknet's max pools (window origin -padding/2, taps outside ignored), nearest
upsampling, routes and plain shortcuts. The graph's outputs are the inputs of the detection
heads, raw (each head's logistic and box transform are decode's work, as in `Network.forward`).

Needs the optional `onnx` package (the `.[peers]` extra); nothing in the serving path imports
this module.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from xnoryolo.detector import Network

OPSET = 17
INPUT = "input"

# darknet activations with an exact ONNX counterpart
_ACTIVATIONS: dict[str, tuple[str, dict[str, Any]]] = {
    "leaky": ("LeakyRelu", {"alpha": 0.1}),
    "relu": ("Relu", {}),
    "logistic": ("Sigmoid", {}),
}


class ExportError(Exception):
    """The network has something the ONNX writer does not translate (one-line message)."""


def output_layers(network: Network) -> list[int]:
    """Indices of the layers whose outputs the graph returns: what each detection head reads."""
    return [head.index - 1 for head in network.detection_layers]


def output_name(index: int) -> str:
    return f"layer{index}"


def to_onnx(network: Network) -> bytes:
    """The serialized ONNX model (batch 1, NCHW float32 input named `input`, one output per
    detection head, named `layer<i>` for the layer it reads). The network must hold weights
    (loaded or prepared); binary layers are refused (export the float twin)."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    from xnoryolo.detector.layers import (
        ConvolutionalLayer,
        DropoutLayer,
        MaxpoolLayer,
        RegionLayer,
        RouteLayer,
        ShortcutLayer,
        UpsampleLayer,
        YoloLayer,
    )

    nodes: list[Any] = []
    inits: list[Any] = []
    names: list[str] = []  # tensor name of each layer's output

    def const(name: str, value: np.ndarray) -> str:
        inits.append(numpy_helper.from_array(value, name))
        return name

    def node(op: str, inputs: list[str], out: str, **attrs: Any) -> str:
        nodes.append(helper.make_node(op, inputs, [out], name=out, **attrs))
        return out

    def activation(x: str, act: str, out: str, where: str) -> str:
        if act == "linear":
            return x
        if act not in _ACTIVATIONS:
            raise ExportError(f"{where}: activation={act} has no ONNX translation here")
        op, attrs = _ACTIVATIONS[act]
        return node(op, [x], out, **attrs)

    prev = INPUT
    for layer in network.layers:
        i, where = layer.index, layer.where
        name = output_name(i)
        if isinstance(layer, ConvolutionalLayer):
            if layer.xnor:
                raise ExportError(f"{where}: xnor=1 layers are not exported (use the float twin)")
            w, b = _folded(layer)
            s = layer.spec
            conv = node(
                "Conv",
                [prev, const(f"{name}.w", w), const(f"{name}.b", b)],
                name + ".conv" if layer.activation != "linear" else name,
                kernel_shape=[s.size, s.size],
                strides=[s.stride_y, s.stride_x],
                pads=[s.padding] * 4,
                dilations=[s.dilation] * 2,
                group=s.groups,
            )
            out = activation(conv, layer.activation, name, where)
        elif isinstance(layer, MaxpoolLayer):
            if layer.depth:
                raise ExportError(f"{where}: maxpool_depth=1 is not exported")
            _, h, w_ = layer.in_shape
            _, oh, ow = layer.out_shape
            off = layer.padding // 2
            end_h = (oh - 1) * layer.stride_y + layer.size - off - h
            end_w = (ow - 1) * layer.stride_x + layer.size - off - w_
            if end_h < 0 or end_w < 0:
                raise ExportError(f"{where}: this maxpool's windows stop short of the input")
            out = node(
                "MaxPool",
                [prev],
                name,
                kernel_shape=[layer.size, layer.size],
                strides=[layer.stride_y, layer.stride_x],
                pads=[off, off, end_h, end_w],
            )
        elif isinstance(layer, UpsampleLayer):
            if layer.reverse:
                raise ExportError(f"{where}: a negative upsample stride is not exported")
            st = float(layer.stride)
            scales = const(f"{name}.scales", np.array([1, 1, st, st], np.float32))
            up = node(
                "Resize",
                [prev, "", scales],
                name + ".resize" if layer.scale != 1.0 else name,
                mode="nearest",
                coordinate_transformation_mode="asymmetric",
                nearest_mode="floor",
            )
            if layer.scale != 1.0:
                up = node("Mul", [up, const(f"{name}.k", np.array(layer.scale, np.float32))], name)
            out = up
        elif isinstance(layer, RouteLayer):
            parts = []
            for j, (src, ch) in enumerate(zip(layer.sources, layer.source_channels, strict=True)):
                if layer.groups == 1:
                    parts.append(names[src])
                    continue
                part = ch // layer.groups
                lo = layer.group_id * part
                parts.append(
                    node(
                        "Slice",
                        [
                            names[src],
                            const(f"{name}.{j}.lo", np.array([lo], np.int64)),
                            const(f"{name}.{j}.hi", np.array([lo + part], np.int64)),
                            const(f"{name}.{j}.ax", np.array([1], np.int64)),
                        ],
                        f"{name}.{j}",
                    )
                )
            out = (
                node("Concat", parts, name, axis=1)
                if len(parts) > 1
                else node("Identity", parts, name)
            )
        elif isinstance(layer, ShortcutLayer):
            srcs = layer.sources
            if (
                layer.weights is not None
                or len(srcs) != 1
                or (network.layers[srcs[0]].out_shape != layer.in_shape)
            ):
                raise ExportError(f"{where}: only weightless shortcuts of equal shapes export")
            added = node(
                "Add",
                [prev, names[srcs[0]]],
                name + ".add" if layer.activation != "linear" else name,
            )
            out = activation(added, layer.activation, name, where)
        elif isinstance(layer, YoloLayer | RegionLayer | DropoutLayer):
            out = prev  # heads: their input is the graph's output; dropout: identity
        else:
            raise ExportError(f"{where}: [{layer.type}] layers are not exported")
        names.append(out)
        prev = out

    c, h, w_in = network.input_shape
    outputs = []
    for j in output_layers(network):
        shape = list(network.layers[j].out_shape)
        if names[j] != output_name(j):  # a head right after a dropout or another head
            node("Identity", [names[j]], output_name(j))
        info = helper.make_tensor_value_info(output_name(j), TensorProto.FLOAT, [1, *shape])
        outputs.append(info)
    graph = helper.make_graph(
        nodes,
        "xnoryolo",
        [helper.make_tensor_value_info(INPUT, TensorProto.FLOAT, [1, c, h, w_in])],
        outputs,
        initializer=inits,
    )
    model = helper.make_model(
        graph, opset_imports=[helper.make_opsetid("", OPSET)], producer_name="xnoryolo"
    )
    model.ir_version = 8  # readable by every ONNX Runtime / OpenVINO of the last years
    onnx.checker.check_model(model)
    return bytes(model.SerializeToString())


def _folded(layer: Any) -> tuple[np.ndarray, np.ndarray]:
    """The layer's BN-folded weights (F, C/g, k, k) and bias as float32: darknet's folding,
    done once by prepare() or here on loaded weights."""
    if layer.folded_bias is not None:
        w, b = layer.weights, layer.folded_bias
    else:
        if layer.weights is None:
            raise ExportError(f"{layer.where}: no weights loaded")
        w, b = layer.fold_batchnorm()
    return np.ascontiguousarray(w, np.float32), np.ascontiguousarray(b, np.float32)
