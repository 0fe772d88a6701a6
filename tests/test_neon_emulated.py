"""The NEON micro-kernels, compiled on any machine with emulated intrinsics (tests/neon_emu.h)
and checked against the portable ones. On arm64 the real path also runs in test_kernels.py."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
KERNELS = HERE.parent / "xnoryolo" / "kernels"


def _cc() -> str:
    cc = next((c for c in ("cc", "gcc", "clang") if shutil.which(c)), None)
    if cc is None:
        pytest.skip("no C compiler on PATH to build the emulated NEON check")
    return cc


def test_header_builds_without_x86(tmp_path: Path) -> None:
    """Edge boxes are often arm64: the header with the x86 macros off must still compile,
    warning-free (an x86-only name outside `#ifdef XN_X86` would break the arm64 build)."""
    build = subprocess.run(
        [_cc(), "-fsyntax-only", "-Wall", "-Werror", f"-I{KERNELS}", f"-I{HERE}",
         str(HERE / "non_x86_check.c")],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert build.returncode == 0, build.stderr


def test_neon_tiles_match_portable(tmp_path: Path) -> None:
    cc = _cc()
    exe = tmp_path / "neon_emu_check"
    build = subprocess.run(
        [cc, "-O1", "-DXN_EMULATE_NEON", f"-I{KERNELS}", f"-I{HERE}",
         str(HERE / "neon_emu_check.c"), "-o", str(exe), "-lm"],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert build.returncode == 0, build.stderr
    run = subprocess.run([str(exe)], capture_output=True, text=True, check=False, timeout=120)
    assert run.returncode == 0, run.stdout + run.stderr
    assert "0 mismatches" in run.stdout
