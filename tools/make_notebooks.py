"""Refresh the generated cells of the course notebooks and strip their outputs.

The notebooks in notebooks/ are the source: edit them in Jupyter. A few cells are generated from
the package, found by their tags:

* `colab-badge` (markdown): its first line becomes `d2lrnn.colab.badge_markdown(path)`;
* `colab-setup` (code): becomes `d2lrnn.colab.setup_cell_source()`;
* `show-source` (code, with metadata {"d2lrnn": {"source": "module.function"}}): becomes the
  function's source, so the lesson shows the package's real code.

Usage:
    python tools/make_notebooks.py          # rewrite notebooks/*.ipynb in place
    python tools/make_notebooks.py --check  # exit 1 and list the notebooks that are out of date
    python tools/make_notebooks.py notebooks/12_x.ipynb  # only the notebooks named
"""
import argparse
import importlib
import inspect
import sys
from pathlib import Path

import nbformat

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = ROOT / "notebooks"
sys.path.insert(0, str(ROOT))

from d2lrnn import colab  # noqa: E402  (after the path tweak, for use from a plain checkout)


KERNELSPEC = {"display_name": "Python 3", "language": "python", "name": "python3"}


def notebook_paths():
    """The course notebooks, in lesson order (work in progress under notebooks/wip is skipped)."""
    return sorted(NOTEBOOKS.glob("[0-9][0-9]_*.ipynb"))


def relative(path):
    """The notebook's path inside the repository, as used in Colab links."""
    return Path(path).resolve().relative_to(ROOT).as_posix()


def shown_object(cell):
    """The function a `show-source` cell displays, e.g. d2lrnn.model.rnn."""
    dotted = cell.metadata["d2lrnn"]["source"]
    module, name = dotted.rsplit(".", 1)
    return getattr(importlib.import_module(module), name)


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
            cell.source = inspect.getsource(shown_object(cell)).rstrip("\n")
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
    for path in [p.resolve() for p in args.paths] or notebook_paths():
        before = path.read_text(encoding="utf-8")
        nb = refresh(nbformat.reads(before, as_version=4), path)
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
