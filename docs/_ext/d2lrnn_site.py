"""Small Sphinx extension for the course website.

* Notebooks are read through `read_lesson`, which folds the Colab setup cell (tag `colab-setup`)
  behind a "show code" toggle: outside Colab it does nothing, and it would otherwise open every page.
  The notebook files themselves are not touched.
* The Colab badge image (an external SVG in every notebook's first cell) is replaced by a copy in
  docs/_static, so pages load no third-party image; the link still opens the notebook in Colab.
* MathJax 3 is copied into _static/mathjax from the sphinx-mathjax-offline package (only the parts
  the TeX/CHTML build loads), so formulas render without a CDN.
"""
import importlib.util
import shutil
from pathlib import Path

import nbformat
from docutils import nodes
from sphinx.transforms import SphinxTransform
from sphinx.util import logging

logger = logging.getLogger(__name__)

ROOT = Path(__file__).resolve().parents[2]
LOCAL_BADGE = "/_static/colab-badge.svg"  # leading slash: relative to the docs folder
MATHJAX_PARTS = ["tex-chtml.js", "output/chtml", "input/tex/extensions", "ui", "a11y", "adaptors"]


def _colab_module():
    """d2lrnn/colab.py loaded on its own (d2lrnn's __init__ would import MXNet into Sphinx)."""
    spec = importlib.util.spec_from_file_location("_d2lrnn_colab", ROOT / "d2lrnn" / "colab.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


COLAB = _colab_module()


def read_lesson(text, path=None):
    """myst-nb reader for .ipynb: the notebook as stored, with its Colab setup cell folded."""
    nb = nbformat.reads(text, as_version=4)
    for cell in nb.cells:
        tags = cell.metadata.setdefault("tags", [])
        if "colab-setup" in tags and "hide-input" not in tags:
            tags.append("hide-input")
    return nb


class LocalColabBadge(SphinxTransform):
    """Point the Colab badge's <img> at the local copy (before Sphinx collects the images)."""

    default_priority = 400

    def apply(self, **kwargs):
        for image in self.document.findall(nodes.image):
            if image.get("uri") == COLAB.COLAB_BADGE_IMAGE:
                image["uri"] = LOCAL_BADGE
                image["classes"].append("colab-badge")
                if isinstance(image.parent, nodes.reference):
                    image.parent["classes"].append("colab-badge-link")


def _mathjax_source():
    spec = importlib.util.find_spec("sphinx-mathjax-offline")  # the package's folder has a hyphen
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(list(spec.submodule_search_locations)[0]) / "static" / "mathjax"


def copy_mathjax(app, exc):
    if exc is not None or app.builder.format != "html":
        return
    source = _mathjax_source()
    if source is None:
        logger.warning("sphinx-mathjax-offline is not installed: formulas will not render "
                       "(pip install -e '.[docs]')")
        return
    target = Path(app.outdir) / "_static" / "mathjax"
    for part in MATHJAX_PARTS:
        src, dst = source / part, target / part
        if src.is_dir():
            shutil.copytree(src, dst, dirs_exist_ok=True)
        else:
            dst.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dst)


def setup(app):
    app.add_transform(LocalColabBadge)
    app.connect("build-finished", copy_mathjax)
    return {"version": "1", "parallel_read_safe": True, "parallel_write_safe": True}
