"""Running the command line as users do: the installed console script."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from xnoryolo.models import ModelFiles


def xnoryolo(*args: str | Path, timeout: float = 240) -> subprocess.CompletedProcess[str]:
    # the installed console script, as users run it (python -m from the checkout root would
    # import the source folder xnoryolo/ instead of the installed package)
    exe = Path(sys.executable).with_name("xnoryolo")
    return subprocess.run(
        [str(exe), *map(str, args)],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def model_args(m: ModelFiles) -> list[str | Path]:
    return ["--cfg", m.cfg, "--weights", m.weights, "--names", m.names]
