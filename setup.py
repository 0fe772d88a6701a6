"""Build of the Cython kernels.

Portable flags only (no -march=native): SIMD variants are compiled per function with target
attributes and chosen at run time, so one wheel runs on any CPU of its architecture.
Compiler directives are set here, once, for every extension.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import numpy
from Cython.Build import cythonize
from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext

HERE = Path(__file__).parent
KERNELS = HERE / "xnoryolo" / "kernels"

DIRECTIVES = {
    "language_level": "3",
    "boundscheck": False,
    "wraparound": False,
    "cdivision": True,
    "initializedcheck": False,
    "nonecheck": False,
    "embedsignature": True,
}


def _openmp_flags() -> tuple[list[str], list[str]]:
    if os.environ.get("XNORYOLO_NO_OPENMP"):
        return [], []
    if sys.platform == "darwin":
        return ["-Xpreprocessor", "-fopenmp"], ["-lomp"]
    if sys.platform == "win32":
        return ["/openmp"], []
    return ["-fopenmp"], ["-fopenmp"]


def extensions() -> list[Extension]:
    omp_compile, omp_link = _openmp_flags()
    # gcc and clang: a call of an undeclared function is an error, not a warning. A kernel
    # defined only for one instruction set would otherwise build elsewhere and fail at import
    # (undefined symbol); tests/test_neon_emulated.py checks the same with the x86 macros off.
    compile_args = (
        [
            "-O3",
            "-fno-strict-aliasing",
            "-ffp-contract=off",
            "-Werror=implicit-function-declaration",
            *omp_compile,
        ]
        if sys.platform != "win32"
        else omp_compile
    )
    exts = []
    for pyx in sorted(KERNELS.glob("*.pyx")):
        exts.append(
            Extension(
                f"xnoryolo.kernels.{pyx.stem}",
                [str(pyx.relative_to(HERE))],
                include_dirs=[numpy.get_include(), str(KERNELS)],
                extra_compile_args=compile_args,
                extra_link_args=omp_link,
                define_macros=[("NPY_NO_DEPRECATED_API", "NPY_1_7_API_VERSION")],
            )
        )
    jobs = os.cpu_count() or 1
    return cythonize(exts, compiler_directives=DIRECTIVES, nthreads=jobs) if exts else []


class ParallelBuildExt(build_ext):
    """The extensions compiled side by side, one per core: under emulation (the arm64 check
    in .ci/arm64.sh) each takes minutes."""

    def finalize_options(self) -> None:
        super().finalize_options()
        if not self.parallel:
            self.parallel = os.cpu_count() or 1


setup(ext_modules=extensions(), cmdclass={"build_ext": ParallelBuildExt})
