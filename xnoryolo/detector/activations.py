"""Darknet activations (activations.h), float32, elementwise.

`ACTIVATIONS` maps every name darknet's get_activation accepts to a function. Darknet's CPU
`activate()` has no case for `relu6` (and `[shortcut]` none for `hard_mish`), so darknet outputs
0 there; xnoryolo computes the real function and the network warns once at load time.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

F32 = np.float32
Activation = Callable[[np.ndarray], np.ndarray]


def _logistic(x: np.ndarray) -> np.ndarray:
    return F32(1) / (F32(1) + np.exp(-x))


def _tanh(x: np.ndarray) -> np.ndarray:
    return F32(2) / (F32(1) + np.exp(F32(-2) * x)) - F32(1)


def _softplus(x: np.ndarray, threshold: float = 20.0) -> np.ndarray:
    with np.errstate(over="ignore"):
        mid = np.log(np.exp(x) + F32(1))
    return np.where(x > threshold, x, np.where(x < -threshold, np.exp(x), mid)).astype(F32)


def _linear(x: np.ndarray) -> np.ndarray:
    return x


def _leaky(x: np.ndarray) -> np.ndarray:
    return np.where(x > 0, x, F32(0.1) * x)


def _relu(x: np.ndarray) -> np.ndarray:
    return np.where(x > 0, x, F32(0))


def _relu6(x: np.ndarray) -> np.ndarray:
    return np.clip(x, F32(0), F32(6))


def _mish(x: np.ndarray) -> np.ndarray:
    return x * _tanh(_softplus(x))


def _swish(x: np.ndarray) -> np.ndarray:
    return x * _logistic(x)


def _hard_mish(x: np.ndarray) -> np.ndarray:
    return np.where(x > 0, x, np.where(x > -2, x * x / F32(2) + x, F32(0))).astype(F32)


def _elu(x: np.ndarray) -> np.ndarray:
    return np.where(x >= 0, x, np.exp(x) - F32(1)).astype(F32)


def _selu(x: np.ndarray) -> np.ndarray:
    return np.where(x >= 0, F32(1.0507) * x, F32(1.0507 * 1.6732) * (np.exp(x) - F32(1))).astype(
        F32
    )


def _gelu(x: np.ndarray) -> np.ndarray:
    return (F32(0.5) * x * (F32(1) + np.tanh(F32(0.797885) * x + F32(0.035677) * x**3))).astype(F32)


def _relie(x: np.ndarray) -> np.ndarray:
    return np.where(x > 0, x, F32(0.01) * x)


def _ramp(x: np.ndarray) -> np.ndarray:
    return (x * (x > 0) + F32(0.1) * x).astype(F32)


def _plse(x: np.ndarray) -> np.ndarray:
    return np.where(
        x < -4,
        F32(0.01) * (x + F32(4)),
        np.where(x > 4, F32(0.01) * (x - F32(4)) + F32(1), F32(0.125) * x + F32(0.5)),
    ).astype(F32)


def _hardtan(x: np.ndarray) -> np.ndarray:
    return np.clip(x, F32(-1), F32(1))


def _lhtan(x: np.ndarray) -> np.ndarray:
    return np.where(
        x < 0, F32(0.001) * x, np.where(x > 1, F32(0.001) * (x - F32(1)) + F32(1), x)
    ).astype(F32)


def _loggy(x: np.ndarray) -> np.ndarray:
    return F32(2) / (F32(1) + np.exp(-x)) - F32(1)


def _stair(x: np.ndarray) -> np.ndarray:
    n = np.floor(x)
    half = np.floor(x / F32(2))
    return np.where(n % 2 == 0, half, (x - n) + half).astype(F32)


ACTIVATIONS: dict[str, Activation] = {
    "linear": _linear,
    "leaky": _leaky,
    "revleaky": _leaky,
    "relu": _relu,
    "relu6": _relu6,
    "logistic": _logistic,
    "tanh": _tanh,
    "mish": _mish,
    "swish": _swish,
    "hard_mish": _hard_mish,
    "elu": _elu,
    "selu": _selu,
    "gelu": _gelu,
    "relie": _relie,
    "ramp": _ramp,
    "plse": _plse,
    "hardtan": _hardtan,
    "lhtan": _lhtan,
    "loggy": _loggy,
    "stair": _stair,
}

# Names darknet accepts whose CPU forward is not the function's formula (see module docstring).
DARKNET_CPU_ZERO = {"relu6"}
DARKNET_CPU_ZERO_SHORTCUT = {"relu6", "hard_mish"}


def activate(x: np.ndarray, name: str) -> np.ndarray:
    """Apply a darknet activation by name; the result is float32."""
    with np.errstate(over="ignore", under="ignore"):
        return np.asarray(ACTIVATIONS[name](x), dtype=F32)
