"""The README's notebook table lists every notebook with its Colab link."""
from d2lrnn import colab

from helpers import ROOT


def test_every_notebook_is_in_the_readme_with_its_colab_link():
    readme = (ROOT / "README.md").read_text()
    notebooks = sorted(ROOT.glob("notebooks/[0-9][0-9]_*.ipynb"))
    assert notebooks
    for nb in notebooks:
        rel = nb.relative_to(ROOT).as_posix()
        assert f"]({rel})" in readme and colab.colab_url(rel) in readme, f"README lacks {rel}"
