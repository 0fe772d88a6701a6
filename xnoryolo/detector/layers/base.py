"""What every layer shares: the `Layer` base, the build context, the packed-bits step types
and the option helpers the builders use."""

from __future__ import annotations

import difflib
import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from typing import ClassVar, Protocol

import numpy as np

from ..activations import ACTIVATIONS
from ..backends import Backend
from ..cfg import Section
from ..errors import CfgWarning, DarknetDivergenceWarning

F32 = np.float32
Shape = tuple[int, int, int]  # (c, h, w)
# packed sign bits (kernels/README.md): uint64 (hp, wp, ceil(c/64)) with a border of `pad`
Layout = tuple[tuple[int, int, int], int]


def natural_layout(shape: Shape) -> Layout:
    """Packed bits of a (c, h, w) output with no border."""
    c, h, w = shape
    return ((h, w, (c + 63) // 64), 0)


@dataclass(frozen=True)
class BitsStep:
    """How one layer runs on the detect path when sign bits are handed on (Network plans)."""

    layout: Layout  # where its bits go: its bits reader's input layout, else natural
    want_float: bool = False  # the float output is read too (a binary conv only)
    next_bits: bool = True  # the next layer reads the bits (else the floats) as its input
    pool: Layer | None = None  # a float conv that runs the following maxpool itself
    done: bool = False  # a maxpool whose work the previous layer did


class FloatSource(Protocol):
    """Where layers read their arrays: a weights.WeightsReader, already checked against the
    sizes the layers ask for."""

    def read(self, n: int, what: str) -> np.ndarray:
        """The next `n` float32 values; `what` names them in errors."""
        ...


@dataclass(frozen=True)
class NetParams:
    width: int
    height: int
    channels: int
    letter_box: bool


@dataclass
class BuildContext:
    index: int
    in_shape: Shape
    layers: list[Layer]
    net: NetParams


def diverge(section: Section, message: str) -> None:
    """Warn (once, at load) that darknet's CPU path is defective here and what xnoryolo does."""
    warnings.warn(
        f"{section.path}:{section.line}: [{section.name}] {message}",
        DarknetDivergenceWarning,
        stacklevel=3,
    )


def cfg_warn(section: Section, message: str) -> None:
    warnings.warn(
        f"{section.path}:{section.line}: [{section.name}] {message}", CfgWarning, stacklevel=3
    )


def activation_option(section: Section, default: str) -> str:
    name = section.get_str("activation", default)
    if name not in ACTIVATIONS:
        hint = difflib.get_close_matches(name, ACTIVATIONS, n=1)
        more = f" (did you mean {hint[0]}?)" if hint else ""
        raise section.error(f"unknown activation {name!r}{more}", "activation")
    return name


def positive(section: Section, key: str, value: int) -> int:
    if value < 1:
        raise section.error(f"{key}={value} must be >= 1", key)
    return value


@dataclass
class Layer:
    """Base: identity geometry, no weights. Subclasses set `type` and override what they need."""

    type: ClassVar[str] = "layer"
    index: int
    section: Section
    in_shape: Shape
    out_shape: Shape

    # Training-only keys darknet reads for this section; never reported as unknown.
    IGNORED: ClassVar[frozenset[str]] = frozenset()

    @property
    def where(self) -> str:
        return f"layer {self.index} ({self.type}, {self.section.path}:{self.section.line})"

    @property
    def outputs(self) -> int:
        c, h, w = self.out_shape
        return c * h * w

    @property
    def reads(self) -> tuple[int, ...]:
        """Earlier layers whose outputs this layer reads by index (besides its input x)."""
        return ()

    def weight_floats(self) -> int:
        return 0

    def load(self, reader: FloatSource) -> None:
        """Read this layer's arrays; the reader was already size-checked against the cfg."""

    def prepare(self, backend: Backend) -> None:
        """Fold BN, binarize, pack: whatever turns loaded arrays into inference form."""

    def forward(self, x: np.ndarray, outputs: list[np.ndarray]) -> np.ndarray:
        raise NotImplementedError

    # Chained binary layers (kernels/README.md): layers whose readers are binary layers may
    # hand them sign bits, packed, instead of floats; Network plans which (BitsStep).
    @property
    def bits_input(self) -> Layout | None:
        """The packed layout this layer reads its input `x` in when given bits, or None."""
        return None

    @property
    def emits_bits(self) -> bool:
        """Whether this layer can produce its output as sign bits (given bits inputs where it
        reads any)."""
        return False

    def forward_bits(
        self,
        x: np.ndarray,
        outputs: list[np.ndarray],
        step: BitsStep,
        bits: Mapping[int, np.ndarray],
    ) -> tuple[np.ndarray | None, np.ndarray]:
        """(float output or None, output sign bits in step.layout); `bits` holds the bits
        earlier layers emitted."""
        raise NotImplementedError

    def summary(self) -> str:
        c, h, w = self.in_shape
        oc, oh, ow = self.out_shape
        return (
            f"{self.index:4d} {self.type:<14s} {w:4d} x{h:4d} x{c:5d} -> {ow:4d} x{oh:4d} x{oc:5d}"
        )
