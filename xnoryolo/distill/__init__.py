"""Distillation of a darknet teacher into a (partly) binary student, in PyTorch.

Torch is an optional dependency (the `train` extra): nothing in this package is imported by
the engine or the service, and the `xnoryolo distill` subcommand (`xnoryolo.cli.distill`)
imports it only when run.

* `model`   - a torch twin of an engine `Network` whose forward is darknet's inference
              arithmetic (XNOR layers included), plus export to darknet `.weights`;
* `loss`    - YOLO loss on teacher pseudo-labels;
* `data`    - frames from videos/images, time-based hold-out split, augmentation;
* `train`   - the training loop (checkpoints, resume, held-out agreement, report).
"""
