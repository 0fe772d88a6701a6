"""The NEON micro-kernels, compiled on any machine with emulated intrinsics (tests/neon_emu.h)
and checked against the portable ones. On arm64 the real path also runs in test_kernels.py."""

from __future__ import annotations

import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import numpy as np
import pytest

from refdata import ROOT

HERE = Path(__file__).resolve().parents[1] / "helpers"  # the C checks and neon_emu.h
KERNELS = ROOT / "xnoryolo" / "kernels"


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


def _xconv_c(tmp_path: Path) -> Path:
    """The C file Cython generates from xconv.pyx: the build's own when it is newer than its
    sources, else generated into tmp_path."""
    built = KERNELS / "xconv.c"
    sources = (KERNELS / "xconv.pyx", KERNELS / "xconv.pxd")
    if built.is_file() and all(built.stat().st_mtime >= s.stat().st_mtime for s in sources):
        return built
    pytest.importorskip("Cython", reason="no generated xconv.c and no Cython to generate it")
    out = tmp_path / "xconv.c"
    gen = subprocess.run(
        [sys.executable, "-m", "cython", "-3", str(KERNELS / "xconv.pyx"), "-o", str(out)],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert gen.returncode == 0, gen.stderr
    return out


def test_module_builds_without_x86(tmp_path: Path) -> None:
    """The module's C (Cython's output around the header) with the x86 macros off: every
    kernel it calls must be declared on every platform. A kernel defined only under
    `#ifdef XN_X86` is an implicit declaration there, which the arm64 build merely warns
    about and the import then fails on (undefined symbol)."""
    cc = _cc()
    python_h = Path(sysconfig.get_paths()["include"]) / "Python.h"
    if not python_h.is_file():
        pytest.skip(f"{python_h} is absent (no Python development headers)")
    source = _xconv_c(tmp_path)
    build = subprocess.run(
        [cc, "-fsyntax-only", "-Werror=implicit-function-declaration",
         "-DNPY_NO_DEPRECATED_API=NPY_1_7_API_VERSION", f'-DXN_GENERATED_C="{source}"',
         f"-I{python_h.parent}", f"-I{np.get_include()}", f"-I{KERNELS}", f"-I{HERE}",
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
