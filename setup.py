"""Build of the Cython kernels.

Portable flags only (no -march=native): SIMD variants are compiled per function with target
attributes and chosen at run time, so one wheel runs on any CPU of its architecture.
Compiler directives are set here, once, for every extension.
"""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

import numpy
from Cython.Build import cythonize
from setuptools import Extension, setup

HERE = Path(__file__).parent
KERNELS = HERE / "kernels"

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
    compile_args = (
        ["-O3", "-fno-strict-aliasing", "-ffp-contract=off", *omp_compile]
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
    return (
        cythonize(exts, compiler_directives=DIRECTIVES, include_path=[_pxd_tree()]) if exts else []
    )


def _pxd_tree() -> str:
    """Cython finds a module's .pxd by its full name; the package directory is mapped
    (xnoryolo.kernels -> kernels/), so mirror the .pxd files under xnoryolo/kernels/."""
    root = HERE / "build" / "pxd"
    dest = root / "xnoryolo" / "kernels"
    dest.mkdir(parents=True, exist_ok=True)
    for pxd in KERNELS.glob("*.pxd"):
        target = dest / pxd.name
        if not target.exists() or target.read_bytes() != pxd.read_bytes():
            shutil.copyfile(pxd, target)
    return str(root)


setup(ext_modules=extensions())
