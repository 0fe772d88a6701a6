"""The cfg reader: darknet's lexing and defaults, and one clear error line for bad cfgs."""

from __future__ import annotations

import warnings
from pathlib import Path

import pytest

from netgen import TINY
from xnoryolo.detector import CfgError, CfgWarning, Network
from xnoryolo.detector.cfg import parse_cfg_text
from xnoryolo.detector.layers import ConvolutionalLayer, MaxpoolLayer


def build(text: str, tmp_path: Path) -> Network:
    p = tmp_path / "net.cfg"
    p.write_text(text)
    return Network.from_cfg(p)


def test_whitespace_comments_and_first_duplicate_wins(tmp_path: Path) -> None:
    text = TINY.replace("filters=8", "filters = 8\n# a comment\n; another\n  filters=16  ")
    with pytest.warns(CfgWarning, match=r"net.cfg:\d+: \[convolutional\] duplicate filters="):
        net = build(text, tmp_path)
    assert net.layers[0].out_shape == (8, 24, 32)


def test_darknet_defaults(tmp_path: Path) -> None:
    text = (
        "[net]\nwidth=10\nheight=7\nchannels=2\n"
        "[convolutional]\nfilters=4\nsize=3\n[maxpool]\nstride=2\n"
    )
    net = build(text, tmp_path)
    conv, pool = net.layers
    assert isinstance(conv, ConvolutionalLayer) and isinstance(pool, MaxpoolLayer)
    assert conv.activation == "logistic"  # darknet's conv default
    assert conv.spec.padding == 0 and conv.out_shape == (4, 5, 8)
    assert (pool.size, pool.padding) == (2, 1)  # size defaults to stride, padding to size-1
    assert pool.out_shape == (4, 3, 4)  # (5 + 1 - 2)//2 + 1, (8 + 1 - 2)//2 + 1


def test_pad_means_half_size_and_dilation_not_in_output_size(tmp_path: Path) -> None:
    text = (
        "[net]\nwidth=9\nheight=9\nchannels=1\n[convolutional]\nfilters=1\nsize=5\npad=1\n"
        "padding=7\ndilation=2\nactivation=linear\n"
    )
    conv = build(text, tmp_path).layers[0]
    assert isinstance(conv, ConvolutionalLayer)
    assert conv.spec.padding == 2 and conv.out_shape == (1, 9, 9)


def test_trailing_comment_in_value_is_tolerated() -> None:
    cfg = parse_cfg_text("[route]\nlayers=-1,8#x\n")
    assert cfg.sections[0].get_ints("layers") == [-1, 8]


@pytest.mark.parametrize(
    ("old", "new", "message"),
    [
        ("filters=8", "filters=eight", r":8: \[convolutional\] filters=eight: not an integer"),
        ("filters=8", "filters=", r":8: filters= has no value"),
        ("filters=8", "filters 8", r":8: expected key=value"),
        ("filters=18", "filters=17", r"outputs 17 channels but 2 masked anchors"),
        ("mask=0,1", "mask=0,5", r"mask entry 5 is not an anchor index"),
        ("anchors=4,5, 8,9, 12,14", "anchors=4,5, 8,9", r"anchors= has 4 values but num=3"),
        ("activation=leaky", "activation=leakey", r"unknown activation 'leakey' \(did you mean"),
        ("width=32", "width=0", r"\[net\] width=0"),
        ("size=3\nstride=1\npad=1", "size=99\nstride=1\npad=0", r"does not fit the 32x24 input"),
        ("[net]", "[convolutional]", r"first section must be \[net\]"),
    ],
)
def test_malformed_cfg_names_file_and_line(
    tmp_path: Path, old: str, new: str, message: str
) -> None:
    assert old in TINY
    with pytest.raises(CfgError, match=message) as info:
        build(TINY.replace(old, new, 1), tmp_path)
    assert str(info.value).startswith(str(tmp_path / "net.cfg"))


def test_bad_route_index(tmp_path: Path) -> None:
    text = TINY.replace("[yolo]", "[route]\nlayers=-9\n\n[yolo]")
    with pytest.raises(CfgError, match=r"net.cfg:\d+: layers=-9 refers to layer -6"):
        build(text, tmp_path)
    text = TINY.replace("[yolo]", "[route]\nlayers=3\n\n[yolo]")
    with pytest.raises(CfgError, match=r"layers=3 refers to layer 3, but only layers 0..2"):
        build(text, tmp_path)


def test_route_of_different_sizes_cannot_work(tmp_path: Path) -> None:
    text = TINY.replace("[yolo]", "[route]\nlayers=-1,0\n\n[yolo]")
    with pytest.raises(CfgError, match=r"routed layers must have the same size"):
        build(text, tmp_path)


def test_unknown_option_and_section_warn_with_file_line(tmp_path: Path) -> None:
    text = TINY.replace("activation=leaky", "activation=leaky\nfilterz=3")
    with pytest.warns(CfgWarning, match=r"net.cfg:\d+: \[convolutional\] unknown option filterz="):
        build(text, tmp_path)
    text = TINY.replace("[maxpool]", "[maxpoool]\n\n[maxpool]")
    with pytest.warns(CfgWarning, match=r"unknown section \[maxpoool\] \(did you mean \[maxpool\]"):
        net = build(text, tmp_path)
    assert [layer.type for layer in net.layers][:3] == ["convolutional", "unknown", "maxpool"]


def test_training_keys_do_not_warn(tmp_path: Path) -> None:
    text = TINY.replace("channels=3", "channels=3\nbatch=64\nsubdivisions=2\nlearning_rate=0.001")
    text = text.replace("num=3", "num=3\njitter=.3\nignore_thresh=.7\nrandom=1")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        build(text, tmp_path)


def test_unsupported_layer_is_a_clear_error(tmp_path: Path) -> None:
    text = TINY.replace("[yolo]", "[reorg]\nstride=2\n\n[yolo]")
    with pytest.raises(CfgError, match=r"\[reorg\] layers are not supported"):
        build(text, tmp_path)


def test_unreadable_and_binary_cfg(tmp_path: Path) -> None:
    with pytest.raises(CfgError, match="cannot read cfg"):
        Network.from_cfg(tmp_path / "missing.cfg")
    p = tmp_path / "w.cfg"
    p.write_bytes(b"\x00\x00\x02\x00garbage")
    with pytest.raises(CfgError, match="binary data"):
        Network.from_cfg(p)
