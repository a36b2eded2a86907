"""The README: its notebook table lists every notebook with its Colab link, its library example runs."""
from d2lrnn import colab

from helpers import ROOT


def test_every_notebook_is_in_the_readme_with_its_colab_link():
    readme = (ROOT / "README.md").read_text()
    notebooks = sorted(ROOT.glob("notebooks/[0-9][0-9]_*.ipynb"))
    assert notebooks
    for nb in notebooks:
        rel = nb.relative_to(ROOT).as_posix()
        assert f"]({rel})" in readme and colab.colab_url(rel) in readme, f"README lacks {rel}"


def test_the_library_example_runs(capsys):
    """The README's Python example, with one epoch of a 16-unit model instead of 160 of 256."""
    readme = (ROOT / "README.md").read_text()
    code = readme.split("## The library", 1)[1].split("```python\n", 1)[1].split("```", 1)[0]
    small = code.replace("num_epochs=160", "num_epochs=1").replace("num_hiddens=256", "num_hiddens=16")
    assert small.count("num_epochs=1,") == 1 and "num_hiddens=256" not in small
    exec(compile(small, "README.md", "exec"), {})
    assert capsys.readouterr().out.strip().startswith("time traveller")
