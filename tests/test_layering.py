"""The layering contract (pyproject's [tool.importlinter], docs/architecture.md): it holds for
the tree, and it catches a wrong import. Cython sources are outside import-linter's view, so
their imports are checked here."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "xnoryolo"
LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")

need_linter = pytest.mark.skipif(
    not LINT_IMPORTS.is_file(), reason="import-linter is not installed (the extra .[dev])"
)


def _lint(tree: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(LINT_IMPORTS), "--no-cache"],
        cwd=tree,
        env={"PYTHONPATH": str(tree), "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=120,
    )


def _copy_sources(dest: Path) -> Path:
    """The package's Python sources and the contract, without builds or data."""
    shutil.copy(ROOT / "pyproject.toml", dest / "pyproject.toml")
    for src in PACKAGE.rglob("*.py"):
        target = dest / src.relative_to(ROOT)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(src, target)
    return dest


@need_linter
def test_the_contract_holds_and_catches_an_upward_import(tmp_path: Path) -> None:
    tree = _copy_sources(tmp_path)
    kept = _lint(tree)
    assert kept.returncode == 0, kept.stdout + kept.stderr
    assert "Contracts: " in kept.stdout and " broken" in kept.stdout

    blas = tree / "xnoryolo" / "kernels" / "blas.py"
    blas.write_text(blas.read_text() + "\nfrom xnoryolo.service import settings  # noqa\n")
    broken = _lint(tree)
    assert broken.returncode == 1, broken.stdout
    assert "xnoryolo.kernels.blas -> xnoryolo.service.settings" in broken.stdout


_CIMPORT = re.compile(r"^\s*(?:from\s+(\S+)\s+c?import|c?import\s+(\S+))", re.MULTILINE)


@pytest.mark.parametrize(
    "source",
    sorted(p.name for p in (PACKAGE / "kernels").iterdir() if p.suffix in (".pyx", ".pxd")),
)
def test_cython_kernels_import_nothing_of_the_project(source: str) -> None:
    text = (PACKAGE / "kernels" / source).read_text()
    modules = {a or b for a, b in _CIMPORT.findall(text)}
    outside = sorted(
        m
        for m in modules
        if m.startswith(("xnoryolo", ".")) and not m.startswith(("xnoryolo.kernels", "."))
    )
    assert outside == [], f"{source} imports {outside}: kernels must import nothing else"
