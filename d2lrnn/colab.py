"""Colab support in one place: the repository URL, the notebook badge and the shared setup cell.

Every notebook starts with the badge from `badge_markdown(path)` and, as its first code cell,
`setup_cell_source()`. `tests/test_colab.py` checks that they agree with this module, and
`tools/make_notebooks.py` rewrites them when something here changes.

The install steps are kept as data (`NUMPY_STEP`, `package_step`) so a test can replay them in a
Python 3.12 environment with numpy 2, pointing `package_step` at a local checkout instead of git.
This module imports nothing heavy: it must load without MXNet.
"""

import json

REPO_URL = "https://github.com/d2lrnn/d2lrnn"
BRANCH = "main"

COLAB_BADGE_IMAGE = "https://colab.research.google.com/assets/colab-badge.svg"

# Step 1, only while numpy 2 is loaded (Colab's default): MXNet 1.9.1 needs numpy < 2, and a
# numpy that is already imported cannot be swapped, so the runtime restarts after this step.
# setuptools supplies `distutils`, which MXNet imports and Python 3.12 no longer ships.
NUMPY_STEP = ["numpy>=1.26,<2", "setuptools"]


EXTRA = "compress"  # what the notebooks need beyond Jupyter, which Colab has: `constriction` for notebook 14


def package_spec(repo_url=REPO_URL, branch=BRANCH):
    """The pip requirement that installs d2lrnn, with what the notebooks need, from the repository."""
    return f"d2lrnn[{EXTRA}] @ git+{repo_url}@{branch}"


def package_step(source=None):
    """Step 2: pip arguments that install d2lrnn (and its pinned dependencies) from `source` (a folder)."""
    return [f"{source}[{EXTRA}]" if source else package_spec()]


def github_path(notebook_path):
    """'notebooks/01_x.ipynb' -> 'd2lrnn/d2lrnn/blob/main/notebooks/01_x.ipynb'."""
    owner_repo = REPO_URL.split("github.com/", 1)[1].strip("/")
    return f"{owner_repo}/blob/{BRANCH}/{str(notebook_path).lstrip('/')}"


def colab_url(notebook_path):
    """The link that opens a notebook of this repository in Colab."""
    return f"https://colab.research.google.com/github/{github_path(notebook_path)}"


def badge_markdown(notebook_path):
    """The 'Open in Colab' badge (markdown) for a notebook path relative to the repository."""
    return f"[![Open In Colab]({COLAB_BADGE_IMAGE})]({colab_url(notebook_path)})"


_SETUP_TEMPLATE = '''\
# Setup: on Colab this installs d2lrnn and gets the data; anywhere else it does nothing.
import os, subprocess, sys

if "google.colab" in sys.modules:
    def pip_install(*args):
        subprocess.run([sys.executable, "-m", "pip", "install", "-q", *args], check=True)

    import numpy
    if int(numpy.__version__.split(".")[0]) >= 2:
        # MXNet 1.9.1 needs numpy < 2, but Colab has numpy 2 loaded already: install the older
        # numpy, then restart the runtime so it is the one imported. Happens once per runtime.
        pip_install({numpy_step})
        print("Restarting the runtime to load numpy < 2. Run this cell again, then the rest.")
        os.kill(os.getpid(), 9)
    pip_install({package_step})
    import d2lrnn
    print("d2lrnn", d2lrnn.__version__, "- data:", d2lrnn.get_corpus_path())
'''


def _args(args):
    """['a', 'b'] -> '"a", "b"' (Python string literals for the cell's source)."""
    return ", ".join(json.dumps(a) for a in args)


def setup_cell_source(source=None):
    """The text of every notebook's first code cell (with `source` replacing the git URL)."""
    cell = _SETUP_TEMPLATE.format(numpy_step=_args(NUMPY_STEP), package_step=_args(package_step(source)))
    return cell.rstrip("\n")
