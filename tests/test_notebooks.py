"""The course notebooks: stored clean, tagged, showing the package's real code, and running end to end.

The execution tests run every notebook headless in fast mode (D2LRNN_FAST=1) with a kernel started
from this interpreter, and fail on any error. The corpus comes from D2LRNN_DATA_DIR (or any other
place d2lrnn looks).
"""
import importlib
import inspect
import json
import os
import sys
import textwrap
import time
from pathlib import Path

import pytest

nbformat = pytest.importorskip("nbformat")

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOK_DIR = ROOT / "notebooks"
NOTEBOOKS = sorted(NOTEBOOK_DIR.glob("[0-9][0-9]_*.ipynb"))
IDS = [p.stem for p in NOTEBOOKS]
KERNEL_NAME = "d2lrnn-test"
CELL_TIMEOUT = 600  # seconds, per cell


def read(path):
    return nbformat.read(str(path), as_version=4)


def tagged(nb, tag):
    return [c for c in nb.cells if tag in c.metadata.get("tags", [])]


def normalise(code):
    """Code with indentation, trailing spaces and blank lines made uniform, for comparison."""
    lines = [line.rstrip() for line in textwrap.dedent(code).strip("\n").splitlines()]
    return "\n".join(line for line in lines if line)


def test_notebooks_exist():
    assert len(NOTEBOOKS) >= 5, f"expected the five course notebooks in {NOTEBOOK_DIR}"
    assert [p.name[:2] for p in NOTEBOOKS] == [f"{i:02d}" for i in range(1, len(NOTEBOOKS) + 1)]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=IDS)
def test_stored_without_outputs(path):
    for i, cell in enumerate(read(path).cells):
        if cell.cell_type == "code":
            assert not cell.outputs, f"{path.name}: cell {i} has stored outputs (run tools/make_notebooks.py)"
            assert cell.execution_count is None, f"{path.name}: cell {i} has an execution count"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=IDS)
def test_parameters_cell(path):
    nb = read(path)
    cells = tagged(nb, "parameters")
    assert len(cells) == 1 and cells[0].cell_type == "code", f"{path.name}: one code cell tagged 'parameters'"
    if "FAST" in cells[0].source:
        assert "D2LRNN_FAST" in cells[0].source, f"{path.name}: FAST must come from the D2LRNN_FAST variable"


def shown_cells():
    for path in NOTEBOOKS:
        for cell in tagged(read(path), "show-source"):
            yield pytest.param(path, cell, id=f"{path.stem}:{cell.metadata['d2lrnn']['source']}")


@pytest.mark.parametrize("path,cell", list(shown_cells()))
def test_shown_code_equals_package(path, cell):
    """A cell that shows library code as the lesson must be exactly that code."""
    dotted = cell.metadata["d2lrnn"]["source"]
    module, name = dotted.rsplit(".", 1)
    obj = getattr(importlib.import_module(module), name)
    assert normalise(cell.source) == normalise(inspect.getsource(obj)), (
        f"{path.name}: the cell showing {dotted} differs from the package; "
        "run `python tools/make_notebooks.py` to refresh it")


def test_lessons_show_rnn_and_train_epoch():
    shown = {c.metadata["d2lrnn"]["source"] for p in NOTEBOOKS for c in tagged(read(p), "show-source")}
    required = {"d2lrnn.model.rnn", "d2lrnn.training.train_epoch", "d2lrnn.model.get_params",
                "d2lrnn.model.init_rnn_state", "d2lrnn.generation.predict_rnn", "d2lrnn.generation.generate",
                "d2lrnn.optim.grad_clipping", "d2lrnn.data.data_iter_random", "d2lrnn.data.data_iter_consecutive"}
    assert required <= shown, f"no lesson shows {sorted(required - shown)}"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=IDS)
def test_lesson_has_exercises(path):
    """Every lesson ends, as the book's sections do, with exercises."""
    headings = [c.source.splitlines()[0] for c in read(path).cells if c.cell_type == "markdown" and c.source]
    assert any("## Exercises" in c.source for c in read(path).cells if c.cell_type == "markdown"), (
        f"{path.name} has no '## Exercises' section (headings: {headings})")


def test_make_notebooks_check_is_clean():
    sys.path.insert(0, str(ROOT / "tools"))
    try:
        import make_notebooks
    finally:
        sys.path.pop(0)
    assert make_notebooks.main(["--check"]) == 0, "run `python tools/make_notebooks.py`"


# --- execution -------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def kernel_env(tmp_path_factory):
    """A kernelspec that starts this interpreter, and the environment of a fast headless run."""
    pytest.importorskip("nbclient")
    pytest.importorskip("ipykernel")
    kernels = tmp_path_factory.mktemp("jupyter") / "kernels" / KERNEL_NAME
    kernels.mkdir(parents=True)
    spec = {"argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
            "display_name": "d2lrnn test", "language": "python"}
    (kernels / "kernel.json").write_text(json.dumps(spec))
    env = {"JUPYTER_PATH": str(kernels.parent.parent), "D2LRNN_FAST": "1", "MPLBACKEND": "Agg",
           "PYTHONWARNINGS": "ignore::DeprecationWarning"}
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    yield
    for k, v in saved.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v


FIGURE_COUNT_CELL = """\
import matplotlib.pyplot as plt
for number in plt.get_fignums():
    plt.figure(number).canvas.draw()  # render every figure: drawing errors show up here
print("FIGURES", len(plt.get_fignums()))"""


@pytest.mark.slow
@pytest.mark.parametrize("path", NOTEBOOKS, ids=IDS)
def test_notebook_runs(path, kernel_env, tmp_path):
    """Execute the notebook top to bottom in fast mode (in a scratch folder); it must draw a figure."""
    from nbclient import NotebookClient

    nb = read(path)
    nb.cells.append(nbformat.v4.new_code_cell(FIGURE_COUNT_CELL))  # Agg keeps figures open: count them
    client = NotebookClient(nb, kernel_name=KERNEL_NAME, timeout=CELL_TIMEOUT,
                            resources={"metadata": {"path": str(tmp_path)}})
    start = time.time()
    client.execute()  # raises CellExecutionError on the first failing cell
    print(f"{path.name}: {time.time() - start:.1f} s")
    printed = "".join(o.get("text", "") for o in nb.cells[-1].outputs)
    assert "FIGURES" in printed and int(printed.split("FIGURES")[1]) >= 1, f"{path.name} drew no figure"
