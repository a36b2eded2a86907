"""Refresh the generated cells of the course notebooks and strip their outputs.

The notebooks in notebooks/ are the source: edit them in Jupyter. A few cells are generated from
the package, found by their tags:

* `colab-badge` (markdown): its first line becomes `d2lrnn.colab.badge_markdown(path)`;
* `colab-setup` (code): becomes `d2lrnn.colab.setup_cell_source()` (in the homework masters of
  notebooks/homework/, followed by the otter-grader install students need for `grader.check`);
* `show-source` (code, with metadata {"d2lrnn": {"source": "module.function"}}, or
  "module.Class.method"): becomes the function's source, dedented, so the lesson shows the package's
  real code and running the cell defines that function in the notebook (a method becomes a plain
  function whose first argument is the object).

Of the homework masters only the setup cell is refreshed (tools/build_homework.py builds the rest).

Usage:
    python tools/make_notebooks.py          # rewrite the notebooks (and the masters' setup cells)
    python tools/make_notebooks.py --check  # exit 1 and list the notebooks that are out of date
    python tools/make_notebooks.py notebooks/12_x.ipynb  # only the notebooks named
"""
import argparse
import importlib
import inspect
import sys
import textwrap
from pathlib import Path

import nbformat

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = ROOT / "notebooks"
sys.path.insert(0, str(ROOT))

from d2lrnn import colab  # noqa: E402  (after the path tweak, for use from a plain checkout)

KERNELSPEC = {"display_name": "Python 3", "language": "python", "name": "python3"}
HOMEWORK = NOTEBOOKS / "homework"
# What a homework master's setup cell adds to every notebook's, inside its `if "google.colab"` block
HOMEWORK_SETUP = ('\n    # Homework: grader.check() needs otter-grader.'
                  '\n    pip_install("otter-grader==7.0.0")')


def notebook_paths():
    """The course notebooks, in lesson order (work in progress under notebooks/wip is skipped)."""
    return sorted(NOTEBOOKS.glob("[0-9][0-9]_*.ipynb"))


def homework_paths():
    """The homework masters (otter-grader's format)."""
    return sorted(HOMEWORK.glob("*.ipynb"))


def refresh_master(nb):
    """Rewrite the setup cell of a homework master and nothing else; returns the notebook."""
    for cell in nb.cells:
        if "colab-setup" in cell.metadata.get("tags", []):
            cell.source = colab.setup_cell_source() + HOMEWORK_SETUP
    return nb


def relative(path):
    """The notebook's path inside the repository, as used in Colab links."""
    return Path(path).resolve().relative_to(ROOT).as_posix()


def resolve(dotted):
    """The object a dotted name refers to: the longest importable module, then attributes of it.

    "d2lrnn.cells.rnn_cell.rnn" is a function; "d2lrnn.cells.batched.BatchedModel.loss_and_grads" a
    method of a class."""
    parts = dotted.split(".")
    for cut in range(len(parts) - 1, 0, -1):
        try:
            obj = importlib.import_module(".".join(parts[:cut]))
        except ModuleNotFoundError:
            continue
        for name in parts[cut:]:
            obj = getattr(obj, name)
        return obj
    raise ModuleNotFoundError(f"no module in {dotted!r}")


def shown_object(cell):
    """The function a `show-source` cell displays, e.g. d2lrnn.cells.rnn_cell.rnn."""
    return resolve(cell.metadata["d2lrnn"]["source"])


def shown_source(cell):
    """What a `show-source` cell holds: the function's source, dedented (a method becomes top-level code)."""
    return textwrap.dedent(inspect.getsource(shown_object(cell))).rstrip("\n")


def refresh(nb, path):
    """Rewrite the generated cells of one notebook and drop its outputs; returns the notebook."""
    for cell in nb.cells:
        tags = cell.metadata.get("tags", [])
        if "colab-badge" in tags:
            lines = cell.source.split("\n")
            cell.source = "\n".join([colab.badge_markdown(relative(path))] + lines[1:])
        elif "colab-setup" in tags:
            cell.source = colab.setup_cell_source()
        elif "show-source" in tags:
            cell.source = shown_source(cell)
        if cell.cell_type == "code":
            cell.outputs = []
            cell.execution_count = None
        for key in ("execution", "lines_to_next_cell"):  # run records and jupytext leftovers
            cell.metadata.pop(key, None)
    nb.metadata = {"kernelspec": KERNELSPEC, "language_info": {"name": "python"}}
    return nb


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="only report notebooks that would change")
    parser.add_argument("paths", nargs="*", type=Path, help="only these notebooks (default: all)")
    args = parser.parse_args(argv)
    stale = []
    for path in [p.resolve() for p in args.paths] or notebook_paths() + homework_paths():
        before = path.read_text(encoding="utf-8")
        nb = nbformat.reads(before, as_version=4)
        nb = refresh_master(nb) if path.parent == HOMEWORK else refresh(nb, path)
        after = nbformat.writes(nb) + "\n"
        if after != before:
            stale.append(path)
            if not args.check:
                path.write_text(after, encoding="utf-8")
    for path in stale:
        print(("out of date: " if args.check else "updated: ") + relative(path))
    return 1 if args.check and stale else 0


if __name__ == "__main__":
    sys.exit(main())
