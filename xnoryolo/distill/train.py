"""The distillation loop: teacher pseudo-labels -> YOLO loss -> binary student, exported exactly.

Time- or step-bounded, with a cosine learning-rate schedule over that budget (so a resumed run
continues the same schedule), periodic held-out agreement (mAP@0.5 of the student against the
teacher on the held-out end of each sequence) and checkpoints for `--resume`.
"""

from __future__ import annotations

import json
import math
import re
import shutil
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager, nullcontext
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from xnoryolo.detector import Detector, Network, read_names
from xnoryolo.detector.layers import YoloLayer
from xnoryolo.detector.video import open_sources
from xnoryolo.evaluate import Box, EvalResult, evaluate

from .data import (
    Augment,
    FrameSet,
    augment,
    cache_key,
    load_frames,
    time_split,
    validation_split,
)
from .loss import LossConfig, output_distill_loss, teacher_boxes, yolo_loss
from .model import DarknetModule, DistillError, build_student
from .progressive import (
    Progression,
    SignFlips,
    feature_loss,
    recalibrate,
    record,
    set_binary,
    warm_start,
    xnor_layers,
)
from .selection import BestCheck, WeightAverage


@dataclass
class TrainConfig:
    size: int = 416
    crop: int = 256
    batch: int = 8
    lr: float = 5e-4
    minutes: float | None = None
    steps: int | None = None
    seed: int = 0
    threads: int | None = None
    holdout: float = 0.25
    heldout_from: int | None = None
    every: int = 1
    teacher_thresh: float = 0.25
    label_thresh: float = 0.5
    eval_minutes: float = 2.0
    eval_frames: int = 48
    checkpoint_minutes: float = 3.0
    log_seconds: float = 20.0
    warmup: int = 20
    augment: Augment = field(default_factory=Augment)
    backend: str = "auto"
    float16: bool = True
    yolo_weight: float = 1.0
    distill_weight: float = 1.0
    # The recipe components below are off by default: in a same-machine 20-minute comparison
    # on the layer-2-float layout they together trailed plain training (see MODEL.md).
    # feature matching on binary layers' pre-activations, annealed linearly to 0 at the end
    feature_weight: float = 0.0
    # the cfg's XNOR layers leave float one by one over this fraction of the budget (0: all
    # binary from the start), each recalibrated and warm-started alone for `warm_steps`
    progressive: float = 0.0
    warm_steps: int = 0
    # BN statistics re-estimated under the binary forward (each layer as it is binarized,
    # and all of them before export when that brings the student closer to the teacher)
    recalibrate: bool = False
    # "teacher": YOLO-loss labels = the teacher's detections on each augmented crop itself;
    # "cached": the frame's cached labels moved through the crop
    crop_labels: str = "cached"
    # straight-through window of the binary layers' input signs: None = |x| <= 1 (the
    # classic clipped identity), else this many standard deviations of each input channel
    ste_width: float | None = None
    # start from an earlier student (its cfg and .weights, same conv shapes) instead of the
    # teacher; its XNOR layers are binary from the first step
    init_cfg: str | None = None
    init_weights: str | None = None
    # the end of each sequence's training frames kept out of training to choose the weights
    # the run ends with: the check that scores best there (see selection.py)
    validation: float = 0.0
    # decay of an exponential moving average of the weights, evaluated and exported (0: off)
    average: float = 0.0
    # (class name, factor) pairs: the terms of the losses that teach that class count this
    # many times (see LossConfig.class_weights and output_distill_loss)
    class_weights: tuple[tuple[str, float], ...] = ()


def resolve_class_weights(
    pairs: Sequence[tuple[str, float]], names: Sequence[str]
) -> tuple[float, ...]:
    """Per-class factors in class order from (name, factor) pairs; () when there are none."""
    if not pairs:
        return ()
    weights = [1.0] * len(names)
    for name, w in pairs:
        if name not in names:
            raise DistillError(f"class weight for {name!r}: not a class of the teacher's names")
        if not w >= 0:
            raise DistillError(f"class weight for {name!r} must be 0 or more, not {w}")
        weights[list(names).index(name)] = float(w)
    return tuple(weights)


def set_net_size(cfg_text: str, width: int, height: int) -> str:
    """Replace width=/height= in the [net] section of a cfg (first occurrence wins in darknet)."""
    m = re.search(r"^\s*\[(net|network)\]\s*$", cfg_text, re.M)
    if m is None:
        raise DistillError("student cfg has no [net] section")
    nxt = re.search(r"^\s*\[", cfg_text[m.end() :], re.M)
    end = m.end() + (nxt.start() if nxt else len(cfg_text) - m.end())
    head = cfg_text[m.end() : end]
    for key, val in (("width", width), ("height", height)):
        head, n = re.subn(rf"^(\s*{key}\s*=\s*)\d+", rf"\g<1>{val}", head, count=1, flags=re.M)
        if not n:
            head = f"\n{key}={val}" + head
    return cfg_text[: m.end()] + head + cfg_text[end:]


def truth_boxes(labels: np.ndarray, thresh: float) -> list[Box]:
    """Teacher labels (network-relative) above thresh as evaluation boxes."""
    return [
        (int(r[0]), float(r[1]), float(r[2]), float(r[3]), float(r[4]), float(r[5]))
        for r in labels
        if r[1] > thresh
    ]


def student_boxes(
    module: DarknetModule, detector: Detector, frames: FrameSet, batch: int = 8
) -> list[list[Box]]:
    """Student detections (network-relative) on the stored frames, via the engine's decoding."""
    net = detector.network
    heads = [ly.index for ly in net.detection_layers]
    out: list[list[Box]] = []
    module.eval()
    with torch.no_grad():
        for s in range(0, len(frames.images), batch):
            x = torch.from_numpy(frames.images[s : s + batch]).permute(0, 3, 1, 2).float() / 255
            outs = module(x)
            for b in range(x.shape[0]):
                layer_out: list[Any] = [None] * len(net.layers)
                for i in heads:
                    layer_out[i] = outs[i][b].numpy()
                dets = detector.postprocess(layer_out, net.net.width, net.net.height).detections()
                out.append([(d.class_id, d.prob, d.x, d.y, d.w, d.h) for d in dets])
    module.train()
    return out


def agreement(
    module: DarknetModule, detector: Detector, frames: FrameSet, label_thresh: float
) -> EvalResult:
    truths = [truth_boxes(lb, label_thresh) for lb in frames.labels]
    return evaluate(student_boxes(module, detector, frames), truths)


def _summary(result: EvalResult, names: Sequence[str], top: int = 4) -> str:
    if not result.defined:
        return UNDEFINED.format(frames=result.frames)
    ranked = sorted(
        ((c.n_gt, k, c.ap) for k, c in result.classes.items() if c.ap is not None), reverse=True
    )
    per = ", ".join(f"{names[k]} {ap:.3f}" for _, k, ap in ranked[:top])
    return f"mAP@0.5 {result.map:.3f} ({per})"


UNDEFINED = (
    "agreement undefined: the teacher detects nothing above the label threshold in the "
    "{frames} held-out frames, so there is nothing to agree on; hold out frames "
    "that show objects, e.g. --heldout-from FRAME"
)


def distill(
    teacher_cfg: str | Path,
    teacher_weights: str | Path,
    student_cfg: str | Path,
    names_path: str | Path,
    data: Sequence[str | Path],
    out_dir: str | Path,
    cfg: TrainConfig,
    resume: bool = False,
    log: Callable[[str], None] = print,
) -> dict[str, Any]:
    if cfg.minutes is None and cfg.steps is None:
        raise DistillError("give a budget: minutes or steps")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    torch.manual_seed(cfg.seed)
    rng = np.random.default_rng(cfg.seed)
    names = read_names(names_path)
    class_weights = resolve_class_weights(cfg.class_weights, names)

    # ---- models
    text = set_net_size(Path(student_cfg).read_text(), cfg.size, cfg.size)
    (out / "student.cfg").write_text(text)
    shutil.copyfile(names_path, out / "names")
    student_net = Network.from_cfg(out / "student.cfg")
    heads = [ly for ly in student_net.layers if isinstance(ly, YoloLayer)]
    if not heads:
        raise DistillError("the student has no [yolo] layer to train")
    teacher = Detector.from_files(
        teacher_cfg, teacher_weights, names_path, cfg.backend, thresh=cfg.teacher_thresh
    )
    if teacher.classes != heads[0].classes:
        raise DistillError(
            f"teacher has {teacher.classes} classes, student {heads[0].classes}: they must agree"
        )
    net_w, net_h = student_net.net.width, student_net.net.height
    lb = student_net.net.letter_box

    # ---- data and cached teacher labels
    sources = open_sources(data)
    split = time_split(sources, cfg.holdout, cfg.heldout_from)
    train_all, val_all = validation_split(split.train, cfg.validation)
    train_idx = {k: v[:: cfg.every] for k, v in train_all.items()}
    held_all = split.heldout
    held_idx = _spread(held_all, cfg.eval_frames)
    val_idx = _spread(val_all, cfg.eval_frames)
    key = cache_key(Path(teacher_cfg), Path(teacher_weights), sources, thresh=cfg.teacher_thresh)
    cache_path = out / "teacher-labels.json"
    cache: dict[str, Any] = {}
    if cache_path.is_file():
        stored = json.loads(cache_path.read_text())
        if stored.get("key") == key:
            cache = stored["labels"]
    before = len(cache)
    t0 = time.perf_counter()
    train = load_frames(sources, train_idx, teacher, net_w, net_h, lb, cache)
    held = load_frames(sources, held_idx, teacher, net_w, net_h, lb, cache)
    valid = load_frames(sources, val_idx, teacher, net_w, net_h, lb, cache)
    if len(cache) != before:
        cache_path.write_text(json.dumps({"key": key, "labels": cache}))
    if not len(train.images):
        raise DistillError("no training frames")
    counts: dict[str, int] = {}
    for lab in train.labels:
        for r in lab:
            if r[1] > cfg.label_thresh:
                counts[names[int(r[0])]] = counts.get(names[int(r[0])], 0) + 1
    log(
        f"data: {len(train.images)} training frames, "
        + (f"{len(valid.images)} validation frames, " if cfg.validation else "")
        + f"{len(held.images)} held-out frames "
        f"(labels: {len(cache) - before} new teacher runs in {time.perf_counter() - t0:.0f} s); "
        f"pseudo-labels > {cfg.label_thresh}: "
        + ", ".join(f"{k} {v}" for k, v in sorted(counts.items(), key=lambda kv: -kv[1]))
    )

    # ---- student
    already: list[int] = []
    if cfg.init_cfg and cfg.init_weights:
        init_net = Network.from_cfg(cfg.init_cfg)
        init_net.load_weights(cfg.init_weights)
        module = build_student(student_net, init_net, cfg.float16)
        already = [ly.index for ly in init_net.layers if getattr(ly, "xnor", False)]
    else:
        module = build_student(student_net, teacher.network, cfg.float16)
    module.train()
    for _, conv in module.convs:
        conv.ste_width = cfg.ste_width
    if cfg.crop_labels not in ("teacher", "cached"):
        raise DistillError(f"crop labels {cfg.crop_labels!r}: teacher or cached")
    teacher_module = build_student(Network.from_cfg(teacher_cfg), teacher.network).eval()
    teacher_module.requires_grad_(False)
    t_heads = [ly.index for ly in teacher_module.network.layers if isinstance(ly, YoloLayer)]
    if t_heads != [h.index for h in heads]:
        raise DistillError("distillation needs the same [yolo] layers in both cfgs")
    binary_cfg = xnor_layers(module)
    same_shape = all(
        i < len(teacher_module.mods)
        and isinstance(teacher_module.mods[i], type(module.mods[i]))
        and tuple(getattr(teacher_module.mods[i], "weight", torch.zeros(0)).shape)
        == tuple(getattr(module.mods[i], "weight", torch.zeros(0)).shape)
        for i in binary_cfg
    )
    if not same_shape and (cfg.feature_weight or cfg.recalibrate or cfg.warm_steps):
        log("feature matching, recalibration and warm start off: the layouts differ there")
    feat_on = same_shape
    progression = Progression(module, cfg.progressive, already)
    if feat_on:
        record(module, binary_cfg, True)
        record(teacher_module, binary_cfg, True)
    opt = torch.optim.Adam(module.parameters(), lr=cfg.lr)
    average = WeightAverage(module, cfg.average) if cfg.average else None
    best = BestCheck()
    step, elapsed = 0, 0.0
    ckpt = out / "checkpoint.pt"
    if resume and ckpt.is_file():
        state = torch.load(ckpt, weights_only=True)
        module.load_state_dict(state["model"])
        opt.load_state_dict(state["optimizer"])
        step, elapsed = int(state["step"]), float(state["elapsed"])
        for i in state.get("binary", binary_cfg):
            set_binary(module, int(i))
        rng.bit_generator.state = json.loads(state["numpy_rng"])
        if average is not None and state.get("average") is not None:
            average.load_state_dict(state["average"])
        if state.get("best") is not None:
            best.load_state_dict(state["best"])
        torch.set_rng_state(state["torch_rng"])
        log(f"resumed from {ckpt} at step {step} ({elapsed / 60:.1f} min)")
    # after the resume: the first rates compare with the signs the run stopped at
    flips = SignFlips(module)
    decoder = Detector(student_net, names, thresh=0.005, letter_box=False)
    budget_s = cfg.minutes * 60 if cfg.minutes is not None else None
    loss_cfg = LossConfig(label_thresh=cfg.label_thresh, class_weights=class_weights)

    def frac_done() -> float:
        parts = []
        if budget_s is not None:
            parts.append(elapsed / budget_s)
        if cfg.steps is not None:
            parts.append(step / cfg.steps)
        return max(parts)

    def save_checkpoint() -> None:
        tmp = ckpt.with_name(".checkpoint.pt.tmp")
        torch.save(
            {
                "model": module.state_dict(),
                "optimizer": opt.state_dict(),
                "step": step,
                "elapsed": elapsed,
                "binary": progression.binary(),
                "numpy_rng": json.dumps(rng.bit_generator.state),
                "torch_rng": torch.get_rng_state(),
                "average": None if average is None else average.state_dict(),
                "best": best.state_dict(),
            },
            tmp,
        )
        tmp.replace(ckpt)

    @contextmanager
    def evaluated() -> Iterator[None]:
        """The weights a check scores and the run exports: the average where there is one."""
        with average.applied() if average is not None else nullcontext():
            yield

    def sample(r: np.random.Generator, n: int) -> tuple[torch.Tensor, list[np.ndarray]]:
        xs, ts = [], []
        for i in r.integers(len(train.images), size=n):
            x, t = augment(train.images[i], train.labels[i], cfg.augment, r)
            xs.append(x)
            ts.append(t)
        return torch.from_numpy(np.stack(xs)), ts

    # fixed crops for recalibration (their own generator: the training stream is unchanged)
    calib_rng = np.random.default_rng(cfg.seed + 1)
    calib = [sample(calib_rng, cfg.batch)[0] for _ in range(4)] if feat_on else []

    def warm_batch() -> torch.Tensor:
        return sample(calib_rng, cfg.batch)[0]

    def binarize(layers: list[int]) -> None:
        for i in layers:
            set_binary(module, i)
            if not feat_on:
                continue
            note = ""
            if cfg.recalibrate:
                recalibrate(module, teacher_module, [i], calib)
            if cfg.warm_steps:
                loss_i = warm_start(module, teacher_module, i, warm_batch, cfg.warm_steps, cfg.lr)
                note = f", warm start {cfg.warm_steps} steps: feature loss {loss_i:.3f}"
            log(f"layer {i} binary at step {step}{note}")
        if feat_on:
            record(module, binary_cfg, True)
            record(teacher_module, binary_cfg, True)

    start = time.perf_counter() - elapsed
    step_s = 0.0  # moving average of a step's wall time: the last step must fit the budget
    eval_s = 0.0
    last_log = last_eval = last_ckpt = elapsed
    seen_images, window_imgs, window_t = 0, 0, time.perf_counter()
    session_start = elapsed  # throughput counts this session only (after --resume too)
    running: dict[str, float] = {}
    while frac_done() < 1.0:
        if budget_s is not None and elapsed + step_s > budget_s:
            break
        t_step = time.perf_counter()
        frac = frac_done()
        due = progression.due(frac)
        if due:
            binarize(due)
        lr = cfg.lr * 0.5 * (1 + math.cos(math.pi * min(1.0, frac)))
        if step < cfg.warmup:
            lr *= (step + 1) / cfg.warmup
        for g in opt.param_groups:
            g["lr"] = lr
        batch, ts = sample(rng, cfg.batch)
        with torch.no_grad():
            t_outs = teacher_module(batch)
        t_raw = [t_outs[h.index - 1] for h in heads]
        if cfg.crop_labels == "teacher":
            ts = teacher_boxes(t_raw, heads, batch.shape[3], batch.shape[2], cfg.teacher_thresh)
        outs = module(batch)
        raw = [outs[h.index - 1] for h in heads]
        loss, parts = yolo_loss(raw, heads, ts, batch.shape[3], batch.shape[2], loss_cfg)
        loss = loss * cfg.yolo_weight
        if cfg.distill_weight:
            d_loss, d_parts = output_distill_loss(raw, t_raw, heads, class_weights)
            loss = loss + cfg.distill_weight * d_loss
            parts.update(d_parts)
        w_feat = cfg.feature_weight * max(0.0, 1.0 - frac)
        if feat_on and w_feat:
            f_loss, f_parts = feature_loss(module, teacher_module, progression.binary())
            loss = loss + w_feat * f_loss
            parts.update(f_parts)
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(module.parameters(), 10.0)
        opt.step()
        if average is not None:
            average.update()
        step += 1
        seen_images += cfg.batch
        window_imgs += cfg.batch
        for name, val in parts.items():
            running[name] = 0.9 * running.get(name, val) + 0.1 * val
        lv = float(loss.detach())
        running["loss"] = 0.9 * running.get("loss", lv) + 0.1 * lv
        elapsed = time.perf_counter() - start
        dt = time.perf_counter() - t_step
        step_s = dt if step_s == 0.0 else 0.9 * step_s + 0.1 * dt
        if elapsed - last_log >= cfg.log_seconds:
            rate = window_imgs / max(1e-9, time.perf_counter() - window_t)
            window_imgs, window_t = 0, time.perf_counter()
            detail = " ".join(f"{k} {running[k]:.2f}" for k in running if k != "loss")
            rates = flips.rates()
            flip = " ".join(f"{i}:{100 * r:.2f}" for i, r in rates.items())
            log(
                f"step {step} {elapsed / 60:5.1f} min {rate:5.1f} img/s lr {lr:.2e} "
                f"loss {running['loss']:.2f} ({detail}) sign flips % {flip}"
            )
            last_log = elapsed
        remaining = math.inf if budget_s is None else budget_s - elapsed
        if (
            (len(held.images) or len(valid.images))
            and elapsed - last_eval >= cfg.eval_minutes * 60
            and remaining > eval_s + step_s
        ):
            t_eval = time.perf_counter()
            with evaluated():
                if len(valid.images):
                    result = agreement(module, decoder, valid, cfg.label_thresh)
                    # a check counts once every XNOR layer runs binary, as exported
                    done = len(progression.binary()) == len(progression.layers)
                    kept = done and best.offer(module, step, _score(result))
                    log(
                        f"validation agreement at step {step}: {_summary(result, names)}"
                        + (" (best so far)" if kept else "")
                    )
                if len(held.images):
                    log(
                        f"held-out agreement at step {step}: "
                        + _summary(agreement(module, decoder, held, cfg.label_thresh), names)
                    )
            last_eval = elapsed = time.perf_counter() - start
            eval_s = time.perf_counter() - t_eval
        if elapsed - last_ckpt >= cfg.checkpoint_minutes * 60:
            save_checkpoint()
            last_ckpt = elapsed
    train_minutes = elapsed / 60
    rest = progression.finish()
    if rest:
        binarize(rest)
    if average is not None:
        average.apply_for_good()
    chosen: dict[str, Any] | None = None
    if len(valid.images):
        last = _score(agreement(module, decoder, valid, cfg.label_thresh))
        restored = best.restore_if_better(module, last)
        kept_step, kept_score = (best.step, best.score) if restored else (step, last)
        chosen = {
            "frames": len(valid.images),
            "last_step": step,
            "last_mAP": last,
            "kept_step": kept_step,
            "kept_mAP": kept_score,
            "checks": [list(h) for h in best.history],
        }
        log(
            f"validation: the weights of step {kept_step} kept (validation mAP@0.5 "
            f"{_fmt(kept_score)}; the last step's {_fmt(last)})"
        )
    if feat_on and cfg.recalibrate:
        before_l, after_l = recalibrate_if_better(module, teacher_module, heads, calib)
        log(
            f"BN statistics re-estimated under the binary forward: output distillation loss "
            f"{before_l:.3f} -> {after_l:.3f} ({'kept' if after_l < before_l else 'reverted'})"
        )
    record(module, binary_cfg, False)
    record(teacher_module, binary_cfg, False)
    save_checkpoint()

    # ---- export, verify in the engine, final held-out agreement on every held-out frame
    weights = module.export_weights(out / "student.weights", seen=step * cfg.batch)
    engine = Network.load(out / "student.cfg", weights, "numpy")
    probe = torch.from_numpy(train.images[:1]).permute(0, 3, 1, 2).float() / 255
    with torch.no_grad():
        t_out = module.eval()(probe)
    e_out = engine.forward(probe[0].numpy())
    max_diff = max(float(np.abs(t_out[h.index][0].numpy() - e_out[h.index]).max()) for h in heads)
    log(
        f"exported {weights} ({weights.stat().st_size} bytes); "
        f"engine vs torch max |diff| {max_diff:.2e}"
    )
    packed = export_packed(out, engine, names, train.images)
    log(f"packed {packed} with int8 activation ranges from {CALIBRATION_FRAMES} training frames")
    full_held = load_frames(sources, held_all, teacher, net_w, net_h, lb, cache)
    if len(cache) != before:
        cache_path.write_text(json.dumps({"key": key, "labels": cache}))
    final = (
        agreement(module, decoder, full_held, cfg.label_thresh) if len(full_held.images) else None
    )
    if final is not None:
        log(
            f"final held-out agreement ({len(full_held.images)} frames): "
            + _summary(final, names, 8)
        )
    else:
        log("held-out agreement undefined: no held-out frames (--holdout 0?)")
    report = {
        "teacher": {"cfg": str(teacher_cfg), "weights": str(teacher_weights)},
        "student_cfg": str(student_cfg),
        "out": {
            "cfg": str(out / "student.cfg"),
            "weights": str(weights),
            "names": str(out / "names"),
            "packed": str(packed),
        },
        "data": [
            {
                "path": str(s.path),
                "frames": s.count,
                "train": [
                    min(split.train[str(s.path)], default=None),
                    max(split.train[str(s.path)], default=None),
                ],
                "heldout": [
                    min(held_all[str(s.path)], default=None),
                    max(held_all[str(s.path)], default=None),
                ],
            }
            for s in sources
        ],
        "train_frames": len(train.images),
        "pseudo_labels": counts,
        "steps": step,
        "images": step * cfg.batch,
        "minutes": round(train_minutes, 2),
        "budget_minutes": cfg.minutes,
        "images_per_s": (
            round(seen_images / max(1e-9, elapsed - session_start), 2) if seen_images else None
        ),
        "engine_vs_torch_max_abs_diff": max_diff,
        "validation": chosen,
        "heldout_agreement": None if final is None else final.to_json(names),
        "heldout_agreement_undefined": (
            "no held-out frames"
            if final is None
            else None
            if final.defined
            else UNDEFINED.format(frames=final.frames)
        ),
        "config": {k: v for k, v in asdict(cfg).items()},
        "torch": torch.__version__,
    }
    (out / "report.json").write_text(json.dumps(report, indent=1) + "\n")
    return report


def _spread(frames: dict[str, list[int]], n: int) -> dict[str, list[int]]:
    """About n of the frames, evenly spread over all sequences."""
    total = sum(len(v) for v in frames.values())
    step = max(1, math.ceil(total / max(1, n)))
    return {k: v[::step] for k, v in frames.items()}


def _score(result: EvalResult) -> float | None:
    return result.map if result.defined else None


def _fmt(score: float | None) -> str:
    return "undefined" if score is None else f"{score:.3f}"


CALIBRATION_FRAMES = 64  # training frames the int8 activation ranges are measured on


def export_packed(out: Path, engine: Network, names: Sequence[str], images: np.ndarray) -> Path:
    """`out/student.xnor`: the exported student packed with its int8 input quantisation,
    measured on frames spread over its own training frames (letterboxed uint8 HWC), so it runs
    int8 by default; f32 stays available with --precision f32."""
    from xnoryolo.detector import calibrate
    from xnoryolo.detector.packed import pack

    picks = np.unique(np.linspace(0, len(images) - 1, min(CALIBRATION_FRAMES, len(images))))
    tensors = (
        np.ascontiguousarray(images[int(i)].transpose(2, 0, 1), np.float32) / 255 for i in picks
    )
    quants, frames = calibrate.measure(engine, tensors, calibrate.DEFAULT_PERCENTILE)
    calibrate.apply(engine, quants)
    record = {
        "frames": frames,
        "source": "distillation training frames",
        "percentile": calibrate.DEFAULT_PERCENTILE,
    }
    data = pack(engine, (out / "student.cfg").read_text(), list(names), record)
    path = out / "student.xnor"
    tmp = path.with_suffix(".xnor.tmp")
    tmp.write_bytes(data)
    tmp.replace(path)
    return path


def recalibrate_if_better(
    module: DarknetModule,
    teacher: DarknetModule,
    heads: Sequence[YoloLayer],
    calib: Sequence[torch.Tensor],
) -> tuple[float, float]:
    """Re-estimate every binary layer's BN statistics; keep them only if the output
    distillation loss on the calibration crops falls. Returns (before, after)."""

    def score() -> float:
        total = 0.0
        with torch.no_grad():
            for x in calib:
                s, t = module(x), teacher(x)
                d, _ = output_distill_loss(
                    [s[h.index - 1] for h in heads], [t[h.index - 1] for h in heads], heads
                )
                total += float(d)
        return total / max(1, len(calib))

    saved = {k: v.clone() for k, v in module.state_dict().items()}
    before = score()
    recalibrate(module, teacher, xnor_layers(module), calib)
    after = score()
    if after >= before:
        module.load_state_dict(saved)
    return before, after
