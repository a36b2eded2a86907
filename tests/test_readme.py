"""The README's notebook table lists every notebook with its Colab link."""
from pathlib import Path

from d2lrnn import colab

ROOT = Path(__file__).resolve().parent.parent


def test_every_notebook_is_in_the_readme_with_its_colab_link():
    readme = (ROOT / "README.md").read_text()
    notebooks = sorted(ROOT.glob("notebooks/[0-9][0-9]_*.ipynb"))
    assert notebooks
    for nb in notebooks:
        rel = nb.relative_to(ROOT).as_posix()
        assert f"]({rel})" in readme and colab.colab_url(rel) in readme, f"README lacks {rel}"
