"""The README's notebook install, tried as a student would: a fresh venv, `pip install -e ".[notebooks]"`
and nothing else, then every notebook executed there with Jupyter (fast mode). This is the test that
catches a notebook needing a package the install does not bring."""
import os
import shutil
import subprocess
import sys

import pytest

from helpers import ROOT

SOURCES = ("d2lrnn", "notebooks", "pyproject.toml", "setup.py", "d2lrnn-mxnet-numpy.pth", "README.md",
           "LICENSE")
SKIP = shutil.ignore_patterns("__pycache__", "*.egg-info", "runs")


def run(cmd, **kwargs):
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=1800, **kwargs)
    return out.returncode, out.stdout + out.stderr


@pytest.mark.slow
def test_the_readme_notebook_install_runs_every_notebook(tmp_path, corpus_dir):
    src = tmp_path / "d2lrnn-src"  # a copy: an editable install writes its build files next to the sources
    src.mkdir()
    for name in SOURCES:
        path = ROOT / name
        if path.is_dir():
            shutil.copytree(path, src / name, ignore=SKIP)
        else:
            shutil.copy(path, src / name)
    venv = tmp_path / "venv"
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    env.update(PIP_DISABLE_PIP_VERSION_CHECK="1", D2LRNN_FAST="1", D2LRNN_DATA_DIR=str(corpus_dir),
               MPLBACKEND="module://matplotlib_inline.backend_inline")
    code, log = run([sys.executable, "-m", "venv", str(venv)], env=env)
    assert code == 0, log
    python, jupyter = venv / "bin" / "python", venv / "bin" / "jupyter"
    code, log = run([str(python), "-m", "pip", "install", "-q", "-e", f"{src}[notebooks]"], env=env, cwd=src)
    assert code == 0, log[-3000:]
    notebooks = sorted((src / "notebooks").glob("[0-9][0-9]_*.ipynb"))
    assert len(notebooks) == len(list((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb")))
    failed = []
    for nb in notebooks:
        code, log = run([str(jupyter), "nbconvert", "--to", "notebook", "--execute", "--output-dir",
                         str(tmp_path / "executed"), "--ExecutePreprocessor.timeout=600", str(nb)],
                        env=env, cwd=nb.parent)
        if code:
            failed.append(f"{nb.name}:\n{log[-2000:]}")
    assert not failed, "\n\n".join(failed)
