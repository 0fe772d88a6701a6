"""One ISA tier of `xnoryolo bench --peers`, in a process of its own: the parent sets the
tier's environment (oneDNN reads ONEDNN_MAX_CPU_ISA once, when OpenVINO first runs), sends the
run's config as JSON on stdin and reads the tier's result as one JSON line on stdout."""

from __future__ import annotations

import json
import sys


def main() -> int:
    from xnoryolo.detector.errors import XnoryoloError

    from .peer_bench import run_tier

    config = json.loads(sys.stdin.read())
    try:
        result = run_tier(config)
    except XnoryoloError as exc:
        result = {"isa": config.get("isa"), "note": str(exc), "engines": []}
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
