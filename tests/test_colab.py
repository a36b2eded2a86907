"""Colab: every notebook's badge and setup cell agree with d2lrnn/colab.py, and the setup cell works.

The rehearsal builds what Colab has (Python 3.12 with numpy 2 already imported), runs the setup
cell there with the package coming from this checkout instead of git, expects the one restart,
runs it again, then imports d2lrnn and trains one epoch.
"""
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

nbformat = pytest.importorskip("nbformat")

from d2lrnn import colab  # noqa: E402

from helpers import ROOT  # noqa: E402

NOTEBOOKS = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
IDS = [p.stem for p in NOTEBOOKS]


def read(path):
    return nbformat.read(str(path), as_version=4)


def test_the_links_and_the_install_line_are_the_published_ones():
    """Written out in full: what a student clicks and what pip installs on Colab."""
    path = "notebooks/02_text_to_onehot.ipynb"
    url = "https://colab.research.google.com/github/d2lrnn/d2lrnn/blob/main/notebooks/02_text_to_onehot.ipynb"
    assert colab.colab_url(path) == url
    assert colab.badge_markdown(path) == (
        f"[![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)]({url})")
    assert colab.package_spec() == "d2lrnn[compress] @ git+https://github.com/d2lrnn/d2lrnn@main"
    install = 'pip_install("d2lrnn[compress] @ git+https://github.com/d2lrnn/d2lrnn@main")'
    assert install in colab.setup_cell_source()
    source = colab.setup_cell_source("/local/src")  # the rehearsal installs this checkout instead
    assert 'pip_install("/local/src[compress]")' in source and "git+" not in source


@pytest.mark.parametrize("path", NOTEBOOKS, ids=IDS)
def test_badge(path):
    first = read(path).cells[0]
    assert first.cell_type == "markdown"
    assert first.source.split("\n")[0] == colab.badge_markdown(path.relative_to(ROOT).as_posix()), (
        f"{path.name}: the badge disagrees with d2lrnn/colab.py (run tools/make_notebooks.py)")


@pytest.mark.parametrize("path", NOTEBOOKS, ids=IDS)
def test_setup_cell_is_first_code_cell(path):
    code = [c for c in read(path).cells if c.cell_type == "code"]
    assert code and code[0].source == colab.setup_cell_source(), (
        f"{path.name}: the first code cell must be d2lrnn.colab.setup_cell_source() "
        "(run tools/make_notebooks.py)")


def test_setup_cell_does_nothing_off_colab(monkeypatch):
    """Locally (no google.colab module) the cell neither runs pip nor kills the kernel."""
    monkeypatch.delitem(sys.modules, "google.colab", raising=False)

    def forbidden(*args, **kwargs):
        raise AssertionError(f"the setup cell acted outside Colab: {args}")

    monkeypatch.setattr(subprocess, "run", forbidden)
    monkeypatch.setattr(os, "kill", forbidden)
    exec(compile(colab.setup_cell_source(), "setup-cell", "exec"), {})


# --- the Colab rehearsal ----------------------------------------------------------------------------

def python312():
    """A Python 3.12 interpreter (pyenv's on these machines), or None."""
    candidates = [os.environ.get("D2LRNN_PYTHON312")]
    roots = [os.environ.get("PYENV_ROOT"), str(Path.home() / ".pyenv")]
    if shutil.which("pyenv"):
        out = subprocess.run(["pyenv", "root"], capture_output=True, text=True)
        roots.insert(0, out.stdout.strip())
    candidates += [str(Path(r) / "versions" / "3.12.1" / "bin" / "python") for r in roots if r]
    candidates += sorted(str(p) for r in roots if r for p in Path(r).glob("versions/3.12.*/bin/python"))
    candidates.append(shutil.which("python3.12"))
    return next((c for c in candidates if c and Path(c).is_file()), None)


# What a Colab kernel looks like to the cell: google.colab loaded and numpy already imported.
CELL_RUNNER = """\
import sys, types
sys.modules["google.colab"] = types.ModuleType("google.colab")
import numpy
exec(compile(open(sys.argv[1]).read(), "setup-cell", "exec"))
"""

ONE_EPOCH = textwrap.dedent("""\
    import d2lrnn as d2l  # first: on Python 3.12 it restores numpy.bool before MXNet loads
    import numpy, mxnet as mx
    print("numpy", numpy.__version__, "mxnet", mx.__version__)
    corpus, char_to_idx, idx_to_char, vocab_size = d2l.corpus_from_text("the time machine " * 40)
    history = d2l.train_and_predict_rnn(
        d2l.rnn, d2l.get_params, d2l.init_rnn_state, 32, vocab_size, mx.cpu(), corpus, idx_to_char,
        char_to_idx, False, 1, 10, 1e2, 1e-2, 4, 1, 10, ["the"])
    assert len(history.perplexity) == 1 and history.perplexity[0] < 2 * vocab_size
    print("ONE EPOCH OK", history)
""")


def run(cmd, **kwargs):
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=1200, **kwargs)
    return out.returncode, out.stdout + out.stderr


@pytest.mark.slow
def test_colab_rehearsal(tmp_path):
    python = python312()
    if python is None:
        pytest.skip("no Python 3.12 interpreter found (set D2LRNN_PYTHON312 or install it with pyenv)")
    import d2lrnn

    env = dict(os.environ, D2LRNN_DATA_DIR=str(d2lrnn.get_corpus_path().parent),
               PIP_DISABLE_PIP_VERSION_CHECK="1")
    env.pop("PYTHONPATH", None)
    venv = tmp_path / "colab"
    code, log = run([python, "-m", "venv", str(venv)])
    assert code == 0, log
    vpython = str(venv / "bin" / "python")
    code, log = run([vpython, "-m", "pip", "install", "-q", "numpy>=2"], env=env)
    assert code == 0, log

    # The package source: a copy of the checkout (pip would otherwise write build files into it).
    src = tmp_path / "src"
    shutil.copytree(ROOT / "d2lrnn", src / "d2lrnn", ignore=shutil.ignore_patterns("__pycache__"))
    for name in ("pyproject.toml", "setup.py", "d2lrnn-mxnet-numpy.pth", "README.md", "LICENSE"):
        if (ROOT / name).exists():
            shutil.copy(ROOT / name, src / name)
    cell = tmp_path / "setup_cell.py"
    cell.write_text(colab.setup_cell_source(str(src)))
    runner = tmp_path / "runner.py"
    runner.write_text(CELL_RUNNER)

    # First run: numpy 2 is loaded, so the cell installs numpy < 2 and ends the kernel (SIGKILL).
    code, log = run([vpython, str(runner), str(cell)], env=env, cwd=tmp_path)
    assert code == -9, f"expected the cell to restart the runtime, got exit code {code}:\n{log}"
    assert "Restarting the runtime" in log
    # Second run, as after the restart: numpy < 2 now, so it installs d2lrnn and finds the data.
    code, log = run([vpython, str(runner), str(cell)], env=env, cwd=tmp_path)
    assert code == 0, log
    assert "d2lrnn" in log and "timemachine.txt" in log, log
    code, log = run([vpython, "-c", ONE_EPOCH], env=env, cwd=tmp_path)
    assert code == 0 and "ONE EPOCH OK" in log, log
    # A student's own cell may import MXNet before d2lrnn: the start-up hook installed with d2lrnn prepares
    # numpy for it (Python 3.12 has numpy 1.26, without the `numpy.bool` MXNet 1.9.1 uses).
    probe = ("import mxnet, numpy; "
             "print('MXNET FIRST OK', mxnet.nd.ones(2).sum().asscalar(), numpy.__version__)")
    code, log = run([vpython, "-c", probe], env=env, cwd=tmp_path)
    assert code == 0 and "MXNET FIRST OK 2.0 1.26" in log, log
    print(log)
