"""Sphinx configuration of the course website.

Build it with `python tools/build_site.py` (full mode, into _site/) or `python tools/build_site.py --fast`
(D2LRNN_FAST=1, seconds per notebook, into _site-fast/). The lessons are read straight from
notebooks/ through the `lessons` symlink beside this file, executed by myst-nb and cached with
jupyter-cache, one cache per mode so that a fast run never stands in for a full one.

Only the pages named in `include_patterns` are part of the site: the homework masters in
notebooks/homework/ hold the solutions and are never read, let alone rendered.
"""
import json
import os
import shutil
import sys
from pathlib import Path

DOCS = Path(__file__).resolve().parent
sys.path.insert(0, str(DOCS / "_ext"))  # the d2lrnn_site extension

FAST = os.environ.get("D2LRNN_FAST", "0") == "1"
MODE = "fast" if FAST else "full"
# Everything execution leaves behind, one folder per mode: jupyter_cache/ (the executed notebooks),
# work/ (the lessons' working folder), ipython/ and jupyter/ (the kernel and its settings), and with
# tools/build_site.py (which sets this variable) also doctrees/ and html/.
STATE = Path(os.environ.get("D2LRNN_SITE_STATE", DOCS / "_build" / MODE))

# The kernels that execute the lessons inherit this process's environment. MPLBACKEND=Agg (as set
# by CI for the tests) would leave every figure undrawn, so the notebook's own inline backend is
# forced here; jupyter-cache does not see environment variables, so this must never vary.
os.environ["MPLBACKEND"] = "module://matplotlib_inline.backend_inline"
# Kernel settings (retina figures, one working folder): docs/_ext/ipython_kernel_config.py.
(STATE / "ipython" / "profile_default").mkdir(parents=True, exist_ok=True)
(STATE / "work").mkdir(parents=True, exist_ok=True)
shutil.copyfile(DOCS / "_ext" / "ipython_kernel_config.py",
                STATE / "ipython" / "profile_default" / "ipython_kernel_config.py")
os.environ["IPYTHONDIR"] = str(STATE / "ipython")
os.environ["D2LRNN_SITE_WORKDIR"] = str(STATE / "work")
# The notebooks ask for the kernel "python3": make it this interpreter (the one with d2lrnn and
# MXNet), whatever python3 kernel a user-wide Jupyter set-up may define.
(STATE / "jupyter" / "kernels" / "python3").mkdir(parents=True, exist_ok=True)
(STATE / "jupyter" / "kernels" / "python3" / "kernel.json").write_text(json.dumps({
    "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
    "display_name": "Python 3 (d2lrnn site build)", "language": "python"}))
os.environ["JUPYTER_PATH"] = os.pathsep.join(
    [str(STATE / "jupyter")] + [p for p in os.environ.get("JUPYTER_PATH", "").split(os.pathsep) if p])

project = "d2lrnn"
author = "the d2lrnn authors"
copyright = "the d2lrnn authors, Apache-2.0"
html_title = "RNNs from scratch with MXNet"

extensions = [
    "myst_nb",          # Markdown pages and executed notebooks
    "sphinx.ext.mathjax",
    "sphinx.ext.githubpages",  # .nojekyll, so GitHub Pages serves the _static/ folder
    "d2lrnn_site",      # docs/_ext: Colab badge served locally, setup cell folded, MathJax bundled
]

# The site's pages; anything else under docs/ (and so under notebooks/) is ignored.
include_patterns = ["index.md", "homework.md", "lessons/[0-9][0-9]_*.ipynb"]
exclude_patterns = ["_build", "lessons/homework/**", "lessons/wip/**", "**/.ipynb_checkpoints"]

# --- MyST and notebook execution -------------------------------------------------------------------
myst_enable_extensions = ["dollarmath", "amsmath"]
myst_heading_anchors = 3

# Notebooks are read as stored, with the Colab setup cell folded (docs/_ext/d2lrnn_site.py).
nb_custom_formats = {".ipynb": ["d2lrnn_site.read_lesson", {}, False]}
nb_execution_mode = "cache"
# One cache per mode: D2LRNN_FAST changes every training run but not the code cells jupyter-cache
# hashes, so sharing a cache would serve fast outputs to a full build (and back).
nb_execution_cache_path = str(STATE / "jupyter_cache")
nb_execution_timeout = 3600        # seconds per cell: full-mode training cells take minutes
nb_execution_raise_on_error = True  # a failing cell fails the build
nb_execution_show_tb = True
nb_execution_in_temp = True         # never in notebooks/ (the kernel then moves to STATE/work, see above)
nb_merge_streams = True             # one block per cell for printed text, not one per flush
nb_output_stderr = "show"

# --- HTML ---------------------------------------------------------------------------------------------
html_theme = "sphinx_book_theme"
html_static_path = ["_static"]
html_css_files = ["d2lrnn.css"]
html_show_sourcelink = False
html_copy_source = True             # the download button offers the notebook (without outputs)
html_last_updated_fmt = None
html_context = {"default_mode": "light"}  # plots are drawn on white; readers can still switch
html_theme_options = {
    "repository_url": "https://github.com/d2lrnn/d2lrnn",
    "use_repository_button": True,
    "use_download_button": True,
    "home_page_in_toc": True,
    "show_navbar_depth": 1,
    "show_toc_level": 2,
    "navigation_with_keys": False,
    # The book theme's layout: no top navigation bar (search sits in the left sidebar). Spelled
    # out because with Sphinx 9 the theme's empty defaults did not reach the page template, and a
    # top bar with a second search box appeared.
    "navbar_start": [], "navbar_center": [], "navbar_end": [], "navbar_persistent": [],
}
if FAST:
    html_theme_options["announcement"] = (
        "Fast build (D2LRNN_FAST=1): every training run was cut to seconds, so the numbers and "
        "plots here are not the lecture's. Build without --fast for the real course.")

# The site makes no third-party request: MathJax is served from _static/mathjax (copied there by
# docs/_ext/d2lrnn_site.py from the pinned sphinx-mathjax-offline package) and the Colab badge
# image from _images/.
mathjax_path = "mathjax/tex-chtml.js"
