"""Distillation of a darknet teacher into a (partly) binary student, in PyTorch.

Torch is an optional dependency (the `train` extra): nothing in this package is imported by
the engine or the service, and the `xnoryolo distill` subcommand (`xnoryolo.cli.distill`)
imports it only when run.

* `model`   - a torch twin of an engine `Network` whose forward is darknet's inference
              arithmetic (XNOR layers included), plus export to darknet `.weights`;
* `loss`    - YOLO loss on teacher pseudo-labels, dense output distillation, the teacher's
              detections decoded on each augmented crop;
* `progressive` - feature matching on binary layers' pre-activations, BN re-estimation under
              the binary forward, layer-by-layer binarization with warm starts, sign-flip rates;
* `search`  - the layout search (`--target-agreement`): sensitivity scan, progressive stages,
              `xnoryolo bench` frame times, the table it explored;
* `data`    - frames from videos/images, time-based hold-out split, augmentation;
* `train`   - the training loop (checkpoints, resume, held-out agreement, report).
"""
