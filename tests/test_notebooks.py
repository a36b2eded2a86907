"""The course notebooks: stored clean, tagged, showing the package's real code, and running end to end.

The structural tests are fast: outputs stripped, a parameters cell, shown code equal to the package's
and runnable where it is shown (every name it calls defined earlier in the notebook, through public
names), no private imports, no hard-coded temporary paths, the run time stated at the top, exercises
at the end. The execution tests (marked slow) run every notebook headless in fast mode
(D2LRNN_FAST=1) with a kernel started from this interpreter, and fail on any error. The corpus comes
from D2LRNN_DATA_DIR (or any other place d2lrnn looks).
"""
import ast
import builtins
import importlib.util
import inspect
import json
import os
import re
import sys
import textwrap
import time
from pathlib import Path

import pytest

nbformat = pytest.importorskip("nbformat")

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOK_DIR = ROOT / "notebooks"
NOTEBOOKS = sorted(NOTEBOOK_DIR.glob("[0-9][0-9]_*.ipynb"))
HOMEWORK = sorted((NOTEBOOK_DIR / "homework").glob("*.ipynb"))
IDS = [p.stem for p in NOTEBOOKS]
KERNEL_NAME = "d2lrnn-test"
CELL_TIMEOUT = 600  # seconds, per cell

_spec = importlib.util.spec_from_file_location("make_notebooks", ROOT / "tools" / "make_notebooks.py")
make_notebooks = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(make_notebooks)


def read(path):
    return nbformat.read(str(path), as_version=4)


def tagged(nb, tag):
    return [c for c in nb.cells if tag in c.metadata.get("tags", [])]


def normalise(code):
    """Code with indentation, trailing spaces and blank lines made uniform, for comparison."""
    lines = [line.rstrip() for line in textwrap.dedent(code).strip("\n").splitlines()]
    return "\n".join(line for line in lines if line)


def test_notebooks_exist():
    assert len(NOTEBOOKS) >= 5, f"expected the course notebooks in {NOTEBOOK_DIR}"
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


@pytest.mark.parametrize("path", NOTEBOOKS, ids=IDS)
def test_run_time_stated_at_the_top(path):
    """A student learns before running anything how long full mode takes (and how to shorten it)."""
    first = next(c for c in read(path).cells if c.cell_type == "markdown")
    assert re.search(r"\*\*Run time\.\*\*.*\b(second|minute)", first.source, re.DOTALL), (
        f"{path.name}: the first markdown cell must say '**Run time.** ...' with the full-mode duration")


def shown_cells():
    for path in NOTEBOOKS:
        for index, cell in enumerate(read(path).cells):
            if "show-source" in cell.metadata.get("tags", []):
                yield pytest.param(path, index, id=f"{path.stem}:{cell.metadata['d2lrnn']['source']}")


SHOWN = list(shown_cells())


@pytest.mark.parametrize("path,index", SHOWN)
def test_shown_code_equals_package(path, index):
    """A cell that shows library code as the lesson must be exactly that code."""
    cell = read(path).cells[index]
    dotted = cell.metadata["d2lrnn"]["source"]
    obj = make_notebooks.resolve(dotted)
    assert normalise(cell.source) == normalise(inspect.getsource(obj)), (
        f"{path.name}: the cell showing {dotted} differs from the package; "
        "run `python tools/make_notebooks.py` to refresh it")


def parse(source):
    """A code cell as Python: IPython's magics (`%matplotlib inline`) are left out."""
    return ast.parse("\n".join(line for line in source.splitlines() if not line.lstrip().startswith("%")))


def defined_names(source):
    """Names a cell binds at the top level: imports, definitions, assignments, loop variables."""
    names = set()
    for node in ast.walk(parse(source)):
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            names |= {(a.asname or a.name).split(".")[0] for a in node.names}
        elif isinstance(node, (ast.FunctionDef, ast.ClassDef)):
            names.add(node.name)
        elif isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
            names.add(node.id)
    return names


@pytest.mark.parametrize("path,index", SHOWN)
def test_shown_code_runs_where_it_is_shown(path, index):
    """Every global name the shown function uses is defined by an earlier cell, under a public name."""
    nb = read(path)
    cell = nb.cells[index]
    obj = make_notebooks.resolve(cell.metadata["d2lrnn"]["source"])
    needed = set(inspect.getclosurevars(obj).globals) - set(dir(builtins))
    before = set()
    for earlier in nb.cells[:index]:
        if earlier.cell_type == "code":
            before |= defined_names(earlier.source)
    missing = sorted(needed - before)
    assert not missing, f"{path.name}, cell {index}: the shown code uses {missing}, undefined before it"
    private = sorted(n for n in needed if n.startswith("_"))
    assert not private, f"{path.name}, cell {index}: the shown code relies on private names {private}"


def private_uses(sources):
    """`_name`s of d2lrnn a notebook reaches: imported from it, or read as attributes of a d2lrnn module.

    Aliases are fine (`import d2lrnn as _ref` in a hidden test); `__version__`-style names are public."""
    private = lambda name: name.startswith("_") and not name.endswith("__")  # noqa: E731
    trees = [parse(s) for s in sources]
    modules, found = set(), []
    for node in (n for tree in trees for n in ast.walk(tree)):
        if isinstance(node, ast.Import):
            modules |= {a.asname or a.name for a in node.names if a.name.split(".")[0] == "d2lrnn"}
        elif isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] == "d2lrnn":
            found += [f"from {node.module} import {a.name}" for a in node.names if private(a.name)]
            modules |= {a.asname or a.name for a in node.names}  # d2lrnn's modules and names alike
    for node in (n for tree in trees for n in ast.walk(tree)):
        if isinstance(node, ast.Attribute) and private(node.attr):
            root = node.value
            while isinstance(root, ast.Attribute):
                root = root.value
            if isinstance(root, ast.Name) and root.id in modules:
                found.append(ast.unparse(node))
    return found


@pytest.mark.parametrize("path", NOTEBOOKS + HOMEWORK, ids=[p.stem for p in NOTEBOOKS + HOMEWORK])
def test_no_private_names_of_the_package(path):
    """Notebooks use d2lrnn through public names only (no `from d2lrnn.x import _y`, no `d2l._y`)."""
    cells = [c.source for c in read(path).cells
             if c.cell_type == "code" and "show-source" not in c.metadata.get("tags", [])]
    assert not private_uses(cells), f"{path.name} uses private names of d2lrnn: {private_uses(cells)}"


def test_private_names_are_found():
    cells = ["from d2lrnn.bptt import BACKWARD, _column_sums", "import d2lrnn as d2l\nd2l.model._x(1)",
             "from d2lrnn import compress as cz\ncz._Stepper"]
    assert private_uses(cells) == ["from d2lrnn.bptt import _column_sums", "d2l.model._x", "cz._Stepper"]
    cells = ["import d2lrnn as _ref\n_ref.rnn", "from d2lrnn.generation import sample_index as _s",
             "import d2lrnn\nd2lrnn.__version__"]
    assert private_uses(cells) == []


@pytest.mark.parametrize("path", NOTEBOOKS + HOMEWORK, ids=[p.stem for p in NOTEBOOKS + HOMEWORK])
def test_no_hard_coded_temporary_paths(path):
    """Files a notebook writes go next to it (or where the student says), never to /tmp or C:\\Temp."""
    for i, cell in enumerate(read(path).cells):
        if cell.cell_type == "code":
            assert not re.search(r"[\"'](/tmp/|/var/tmp/|[A-Za-z]:\\\\)", cell.source), (
                f"{path.name}, cell {i}: hard-coded temporary path")


def test_lessons_show_the_lecture_code():
    shown = {read(p).cells[i].metadata["d2lrnn"]["source"] for p, i in (s.values for s in SHOWN)}
    required = {"d2lrnn." + name for name in [
        "cells.rnn_cell.rnn", "cells.rnn_cell.get_params", "cells.rnn_cell.init_rnn_state",
        "cells.rnn_cell.rnn_backward", "cells.gru_cell.gru", "cells.lstm_cell.lstm", "training.train_epoch",
        "generation.predict_rnn", "generation.generate", "optim.grad_clipping", "data.data_iter_random",
        "data.data_iter_consecutive"]}
    assert required <= shown, f"no lesson shows {sorted(required - shown)}"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=IDS)
def test_lesson_has_exercises(path):
    """Every lesson ends, as the book's sections do, with exercises."""
    headings = [c.source.splitlines()[0] for c in read(path).cells if c.cell_type == "markdown" and c.source]
    assert any("## Exercises" in c.source for c in read(path).cells if c.cell_type == "markdown"), (
        f"{path.name} has no '## Exercises' section (headings: {headings})")


def test_make_notebooks_check_is_clean():
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


def images(nb):
    """How many PNG images the executed notebook shows (each figure, rendered by the inline backend)."""
    return sum("image/png" in o.get("data", {}) for c in nb.cells if c.cell_type == "code" for o in c.outputs)


def stderr_text(nb):
    """Everything the notebook wrote to stderr (warnings included), cell by cell."""
    return {i: "".join(o.get("text", "") for o in c.get("outputs", []) if o.get("name") == "stderr")
            for i, c in enumerate(nb.cells) if c.cell_type == "code"}


@pytest.mark.slow
@pytest.mark.parametrize("path", NOTEBOOKS, ids=IDS)
def test_notebook_runs(path, kernel_env, tmp_path):
    """Execute the notebook top to bottom in fast mode (in a scratch folder); every figure it creates must
    reach the output as an image, and it must warn about nothing (a warning in a lesson is either a bug or
    noise a student cannot act on)."""
    from nbclient import NotebookClient

    nb = read(path)
    figures = sum(c.source.count("plt.show()") for c in nb.cells if c.cell_type == "code")
    client = NotebookClient(nb, kernel_name=KERNEL_NAME, timeout=CELL_TIMEOUT,
                            resources={"metadata": {"path": str(tmp_path)}})
    start = time.time()
    client.execute()  # raises CellExecutionError on the first failing cell
    print(f"{path.name}: {time.time() - start:.1f} s")
    assert images(nb) >= max(figures, 1), f"{path.name}: {images(nb)} images, {figures} plt.show()"
    warnings = {i: text for i, text in stderr_text(nb).items() if re.search(r"\w+Warning: ", text)}
    assert not warnings, f"{path.name} printed warnings: {warnings}"


@pytest.mark.slow
def test_the_compression_notebook_explains_without_its_coder(kernel_env):
    """Where constriction cannot be installed (Python 3.9), notebook 14 shows recorded outputs, not errors."""
    from nbclient import NotebookClient

    path = NOTEBOOK_DIR / "14_perplexity_as_compression.ipynb"
    nb = read(path)
    nb.cells.insert(1, nbformat.v4.new_code_cell(  # as if constriction were not installed
        "import importlib.util as _util\n_find = _util.find_spec\n"
        "_util.find_spec = lambda name, *a, **k: None if name == 'constriction' else _find(name, *a, **k)"))
    NotebookClient(nb, timeout=CELL_TIMEOUT, kernel_name=KERNEL_NAME,
                   resources={"metadata": {"path": str(NOTEBOOK_DIR)}}).execute()  # it reads figures/
    printed = "".join(o.get("text", "") for c in nb.cells for o in c.get("outputs", []))
    assert "constriction, the range coder, is not installed" in printed
    assert "writes the same words after its header: True" in printed and "32,745 bytes" in printed
