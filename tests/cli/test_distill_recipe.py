"""Each training component of the distillation recipe changes the loss as intended, on a tiny
net (needs torch): feature matching, BN re-estimation, warm start, progressive binarization,
sign-flip rates, teacher labels on crops, dense output distillation, per-class loss weights,
the weight average and the choice of the best check."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from netgen import write_model
from xnoryolo.detector import Network
from xnoryolo.detector.layers import YoloLayer

torch = pytest.importorskip(
    "torch", reason="torch is not installed (pip install torch==2.13.0; the `train` extra)"
)
from xnoryolo.distill.loss import (  # noqa: E402
    LossConfig,
    output_distill_loss,
    teacher_boxes,
    yolo_loss,
)
from xnoryolo.distill.model import DistillError, build_student  # noqa: E402
from xnoryolo.distill.progressive import (  # noqa: E402
    Progression,
    SignFlips,
    feature_loss,
    recalibrate,
    record,
    warm_start,
)
from xnoryolo.distill.selection import BestCheck, WeightAverage  # noqa: E402

STUDENT = """[net]
width=32
height=32
channels=3

[convolutional]
batch_normalize=1
filters=8
size=3
stride=1
pad=1
activation=leaky

[convolutional]
xnor=1
bin_output=1
batch_normalize=1
filters=16
size=3
stride=1
pad=1
activation=leaky

[maxpool]
size=2
stride=2

[convolutional]
xnor=1
batch_normalize=1
filters=16
size=3
stride=1
pad=1
activation=leaky

[convolutional]
size=1
stride=1
pad=1
filters=14
activation=linear

[yolo]
mask=0,1
anchors=4,4, 8,8
classes=2
num=2
"""
XNOR = [1, 3]


@pytest.fixture
def pair(tmp_path: Path):
    """(student, float teacher) modules: the same weights, the teacher without XNOR."""
    cfg, weights = write_model(tmp_path, STUDENT, seed=4)
    float_cfg = tmp_path / "teacher.cfg"
    float_cfg.write_text(STUDENT.replace("xnor=1\nbin_output=1\n", "").replace("xnor=1\n", ""))
    teacher_net = Network.from_cfg(float_cfg)
    teacher_net.load_weights(weights)
    student = build_student(Network.from_cfg(cfg), teacher_net)
    teacher = build_student(Network.from_cfg(float_cfg), teacher_net).eval()
    teacher.requires_grad_(False)
    return student, teacher, cfg


def _x(seed: int = 0, n: int = 4) -> torch.Tensor:
    return torch.from_numpy(np.random.default_rng(seed).random((n, 3, 32, 32), np.float32))


def _feat(student, teacher, x, layers=XNOR) -> float:
    record(student, layers, True)
    record(teacher, layers, True)
    with torch.no_grad():
        student(x)
        teacher(x)
    loss, _ = feature_loss(student, teacher, layers)
    return float(loss)


def test_progression_starts_float_and_binarizes_in_order(pair) -> None:
    student, teacher, _ = pair
    prog = Progression(student, 0.5)
    assert prog.layers == XNOR and prog.binary() == []
    # all float: the student is the teacher, feature matching has nothing to correct
    assert _feat(student, teacher, _x()) == pytest.approx(0.0, abs=1e-10)
    with pytest.raises(DistillError, match="still trained in float"):
        student.weights_bytes()
    assert prog.due(0.0) == [1]
    student.mods[1].binary = True
    assert prog.due(0.2) == [] and prog.due(0.25) == [3]
    assert prog.finish() == [3] and prog.binary() == XNOR
    student.weights_bytes()  # exportable now
    assert Progression(student, 0.0).binary() == XNOR  # 0: binary from the start
    # an earlier student's binary layers stay binary; only the others wait their turn
    later = Progression(student, 0.5, already=[1])
    assert later.binary() == [1] and later.due(0.0) == [3]


def test_feature_loss_grows_with_binarization_and_trains_the_layer(pair) -> None:
    student, teacher, _ = pair
    Progression(student, 0.5)
    x = _x()
    student.mods[1].binary = True
    one = _feat(student, teacher, x, [1])
    assert one > 0.1
    record(student, [1], True)
    record(teacher, [1], True)
    student(x)
    teacher(x)
    loss, parts = feature_loss(student, teacher, [1])
    loss.backward()
    assert parts["feat"] == pytest.approx(one, rel=1e-5)
    assert student.mods[1].weight.grad is not None and student.mods[1].weight.grad.abs().sum() > 0
    assert student.mods[0].weight.grad.abs().sum() > 0  # reaches the float layer before it


def test_recalibration_matches_the_teachers_statistics_and_keeps_signs(pair) -> None:
    student, teacher, _ = pair
    Progression(student, 0.0)  # everything binary
    batches = [_x(1), _x(2)]
    signs = {i: (student.mods[i].weight.detach() > 0).clone() for i in XNOR}
    recalibrate(student, teacher, XNOR, batches)
    for i in XNOR:
        assert torch.equal(student.mods[i].weight.detach() > 0, signs[i])
    record(student, XNOR, True)
    record(teacher, XNOR, True)
    with torch.no_grad():
        x = torch.cat(batches)
        student(x)
        teacher(x)
    for i in XNOR:
        s, t = student.mods[i].pre.double(), teacher.mods[i].pre.double()
        np.testing.assert_allclose(s.mean((0, 2, 3)), t.mean((0, 2, 3)), atol=1e-3)
        np.testing.assert_allclose(s.std((0, 2, 3)), t.std((0, 2, 3)), rtol=1e-2, atol=1e-4)


def test_warm_start_trains_one_layer_towards_the_teacher(pair) -> None:
    student, teacher, _ = pair
    Progression(student, 0.0)
    x = _x(3, 8)
    before = _feat(student, teacher, x, [1])
    others = {k: v.clone() for k, v in student.state_dict().items() if not k.startswith("mods.1.")}
    torch.manual_seed(0)
    warm_start(student, teacher, 1, lambda: x, steps=30, lr=1e-2)
    assert _feat(student, teacher, x, [1]) < 0.9 * before
    for k, v in student.state_dict().items():
        if k in others:
            assert torch.equal(v, others[k]), k


def test_sign_flips_count_changed_signs(pair) -> None:
    student, _, _ = pair
    flips = SignFlips(student)
    assert flips.rates() == {1: 0.0, 3: 0.0}
    with torch.no_grad():
        w = student.mods[3].weight
        w.view(-1)[:10] = -w.view(-1)[:10]
    rates = flips.rates()
    assert rates[1] == 0.0 and rates[3] == pytest.approx(10 / w.numel())
    assert flips.rates()[3] == 0.0  # since the previous look


def test_teacher_boxes_decode_and_suppress(pair) -> None:
    _, _, cfg = pair
    head = next(ly for ly in Network.from_cfg(cfg).layers if isinstance(ly, YoloLayer))
    raw = torch.full((2, 14, 4, 4), -20.0)  # 2 anchors x (5 + 2 classes), 4x4 cells
    # image 0: anchor 1, cell (row 2, col 1), class 1, centred, w = h = the anchor (8 px)
    raw[0, 7 + 0, 2, 1] = raw[0, 7 + 1, 2, 1] = 0.0
    raw[0, 7 + 2, 2, 1] = raw[0, 7 + 3, 2, 1] = 0.0
    raw[0, 7 + 4, 2, 1] = raw[0, 7 + 6, 2, 1] = 6.0
    # the same object from anchor 0 of that cell, weaker: suppressed by NMS
    raw[0, 0:2, 2, 1] = 0.0
    raw[0, 2:4, 2, 1] = float(np.log(2.0))
    raw[0, 4, 2, 1] = raw[0, 6, 2, 1] = 3.0
    out = teacher_boxes([raw], [head], 32, 32, thresh=0.25)
    assert len(out) == 2 and out[1].shape == (0, 6)
    assert out[0].shape == (1, 6)
    c, p, cx, cy, w, h = out[0][0]
    assert c == 1 and p == pytest.approx(1 / (1 + np.exp(-6.0)) ** 2, rel=1e-5)
    assert (cx, cy, w, h) == pytest.approx((1.5 * 8, 2.5 * 8, 8, 8))


def test_output_distillation_is_zero_at_the_teacher_and_pulls_towards_it(pair) -> None:
    _, _, cfg = pair
    head = next(ly for ly in Network.from_cfg(cfg).layers if isinstance(ly, YoloLayer))
    t = torch.randn(2, 14, 4, 4)
    zero, _ = output_distill_loss([t.clone()], [t], [head])
    assert float(zero) == pytest.approx(0.0, abs=1e-4)
    s = (t + torch.randn_like(t)).requires_grad_(True)
    loss, parts = output_distill_loss([s], [t], [head])
    assert float(loss.detach()) > 0.1 and parts["d_obj"] > 0
    loss.backward()
    with torch.no_grad():
        moved = s - 0.05 * s.grad
        closer, _ = output_distill_loss([moved], [t], [head])
    assert float(closer) < float(loss.detach())


def test_class_weights_scale_only_their_class_labels_terms(pair) -> None:
    _, _, cfg = pair
    head = next(ly for ly in Network.from_cfg(cfg).layers if isinstance(ly, YoloLayer))
    raw = torch.randn(1, 14, 4, 4, generator=torch.Generator().manual_seed(3))
    # one label of each class, in different cells; class, prob, cx, cy, w, h (input pixels)
    labels = [np.array([[0, 0.9, 5.0, 5.0, 7.0, 9.0], [1, 0.9, 21.0, 27.0, 9.0, 8.0]])]
    only = [labels[0][:1]], [labels[0][1:]]

    def parts(targets: list[np.ndarray], weights: tuple[float, ...]) -> dict[str, float]:
        conf = LossConfig(class_weights=weights)
        return yolo_loss([raw], [head], targets, 32, 32, conf)[1]

    base0, base1, base = parts(only[0], ()), parts(only[1], ()), parts(labels, ())
    heavy = parts(labels, (3.0, 1.0))
    for k in ("xy", "wh", "obj", "cls"):
        # the class-0 label's share triples, the class-1 label's stays
        assert base0[k] > 0
        assert heavy[k] == pytest.approx(base[k] + 2 * base0[k], rel=1e-5)
    assert heavy["noobj"] == pytest.approx(base["noobj"], rel=1e-6)
    assert parts(labels, (1.0, 1.0)) == pytest.approx(base, rel=1e-6)
    assert parts(only[1], (3.0, 1.0)) == pytest.approx(base1, rel=1e-6)


def test_class_weights_in_output_distillation_count_where_the_teacher_sees_the_class(
    pair,
) -> None:
    _, _, cfg = pair
    head = next(ly for ly in Network.from_cfg(cfg).layers if isinstance(ly, YoloLayer))
    t = torch.full((1, 14, 4, 4), -20.0)
    # the teacher: class 0 at anchor 0 of cell (1, 1), class 1 at anchor 1 of cell (3, 2)
    t[0, 4, 1, 1] = t[0, 5, 1, 1] = 20.0
    t[0, 7 + 4, 3, 2] = t[0, 7 + 6, 3, 2] = 20.0
    s0 = t.clone()
    s0[0, 0:5, 1, 1] += 1.0  # the student off at the class-0 object only
    s1 = t.clone()
    s1[0, 7 : 7 + 5, 3, 2] += 1.0  # ... at the class-1 object only
    for s, changed in ((s0, 3.0), (s1, 1.0)):
        base, _ = output_distill_loss([s], [t], [head])
        heavy, _ = output_distill_loss([s], [t], [head], (3.0, 1.0))
        same, _ = output_distill_loss([s], [t], [head], (1.0, 1.0))
        assert float(base) > 0.1
        assert float(heavy) == pytest.approx(changed * float(base), rel=1e-3)
        assert float(same) == pytest.approx(float(base), rel=1e-6)


def test_recalibrated_student_exports_exactly(pair, tmp_path: Path) -> None:
    student, teacher, cfg = pair
    prog = Progression(student, 0.5)
    prog.finish()
    recalibrate(student, teacher, XNOR, [_x(5)])
    record(student, XNOR, False)
    out = student.export_weights(tmp_path / "s.weights")
    net = Network.load(cfg, out, "numpy")
    x = _x(6, 1)
    with torch.no_grad():
        got = student(x)[-1].numpy()[0]
    want = net.forward(x[0].numpy())[-1]
    assert np.abs(got - want).max() < 1e-4


def test_ste_width_follows_each_channels_scale_and_keeps_the_forward(pair) -> None:
    """The classic window (|x| <= 1) passes no gradient through a channel whose inputs are all
    large; a window in channel standard deviations passes it, and the forward is unchanged."""
    student, _, _ = pair
    Progression(student, 0.0)
    x = _x(5)
    # scale layer 0's filters so that its outputs (the signed input of layer 1) are far above 1
    with torch.no_grad():
        student.mods[0].weight.mul_(200.0)
        student.mods[0].bias.mul_(200.0)
    grads, outs = {}, {}
    for width in (None, 2.0):
        student.zero_grad()
        student.mods[1].ste_width = width
        out = student(x)[-1]
        out.square().mean().backward()
        grads[width] = student.mods[0].weight.grad.abs().sum(dim=(1, 2, 3))
        outs[width] = out.detach()
    assert torch.equal(outs[None], outs[2.0])
    assert (student(x)[0].detach().abs() > 1).float().mean() > 0.85  # mostly blocked at 1
    assert grads[2.0].sum() > 20 * grads[None].sum()
    assert (grads[2.0] > 0).all()  # every filter of layer 0 learns through the wider window


def _out(module, x) -> torch.Tensor:
    with torch.no_grad():
        return module(x)[-1].clone()


def test_weight_average_smooths_swings_and_swaps_back(pair) -> None:
    student, _, _ = pair
    x = _x(5)
    avg = WeightAverage(student, 0.9)
    start = [p.detach().clone() for p in student.parameters()]
    own = _out(student, x)
    with avg.applied():  # nothing averaged yet: the same weights
        torch.testing.assert_close(_out(student, x), own, rtol=0, atol=0)
    # weights that jump back and forth: the average stays near their middle, the jumps shrink
    mid = _out(student, x)
    for k in range(60):
        with torch.no_grad():
            for p, p0 in zip(student.parameters(), start, strict=True):
                p.copy_(p0 * (1.5 if k % 2 else 0.5))
        avg.update()
    last = _out(student, x)
    with avg.applied():
        smoothed = _out(student, x)
    # the module's own weights come back untouched after the swap
    torch.testing.assert_close(_out(student, x), last, rtol=0, atol=0)
    assert (smoothed - mid).abs().mean() < 0.5 * (last - mid).abs().mean()
    # the decay ramps up: the first update follows the weights, later ones remember more
    fresh = WeightAverage(student, 0.9)
    assert fresh.rate() < 0.01 and avg.rate() > 0.4
    # the state survives a checkpoint round trip
    state = avg.state_dict()
    again = WeightAverage(student, 0.9)
    again.load_state_dict(state)
    assert again.updates == 60
    for a, b in zip(again.avg, avg.avg, strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=0)
    avg.apply_for_good()
    torch.testing.assert_close(_out(student, x), smoothed, rtol=0, atol=0)
    with pytest.raises(ValueError, match="decay"):
        WeightAverage(student, 1.0)


def test_best_check_keeps_the_best_weights_and_restores_them_only_if_better(pair) -> None:
    student, _, _ = pair
    x = _x(6)
    best = BestCheck()
    assert not best.offer(student, 1, None)  # undefined scores never win
    assert best.offer(student, 2, 0.7)
    good = _out(student, x)
    with torch.no_grad():
        for p in student.parameters():
            p.mul_(-1.0)
    assert not best.offer(student, 3, 0.6)  # worse: the kept weights stay
    assert not best.offer(student, 4, 0.7)  # a tie keeps the earlier weights
    worse = _out(student, x)
    assert not best.restore_if_better(student, 0.7)  # the last weights are as good: kept
    torch.testing.assert_close(_out(student, x), worse, rtol=0, atol=0)
    assert best.restore_if_better(student, 0.5)
    torch.testing.assert_close(_out(student, x), good, rtol=0, atol=0)
    assert best.step == 2 and best.history == [(1, None), (2, 0.7), (3, 0.6), (4, 0.7)]
    again = BestCheck()
    again.load_state_dict(best.state_dict())
    assert (again.step, again.score, again.history) == (2, 0.7, best.history)
