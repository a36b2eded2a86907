"""The course website: its pages list every lesson and homework question, and it builds and works
in a real browser.

The slow test builds the site in fast mode (D2LRNN_FAST=1) into a temporary folder with
tools/build_site.py and checks it with tools/check_site.py in Debian's headless Chromium: no console
error, every image loaded, every lesson with its plots and Colab badge, navigation in lesson order,
search working, no homework master published. It needs the `[docs]` extra and /usr/bin/chromium
(`apt-get install chromium`), and is skipped, saying which is missing, without them.
"""
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
LESSONS = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
MASTERS = sorted((ROOT / "notebooks" / "homework").glob("*.ipynb"))
CHROMIUM = Path("/usr/bin/chromium")


def test_lessons_come_from_notebooks_folder():
    """One source: the site reads notebooks/ through a symlink, it holds no copy."""
    link = DOCS / "lessons"
    assert link.is_symlink() and link.resolve() == (ROOT / "notebooks").resolve()
    assert not list(DOCS.glob("*.ipynb"))


def test_index_lists_every_lesson_in_order():
    listed = re.findall(r"\{doc\}`lessons/([0-9][0-9]_\w+)`", (DOCS / "index.md").read_text(encoding="utf-8"))
    assert listed == [p.stem for p in LESSONS], "docs/index.md's lesson table is out of date"


def test_homework_page_describes_every_question():
    """Every question of every master, with its points, and nothing of the masters' code."""
    page = (DOCS / "homework.md").read_text(encoding="utf-8")
    for master in MASTERS:
        cells = json.loads(master.read_text(encoding="utf-8"))["cells"]
        for cell in cells:
            text = "".join(cell["source"])
            found = re.search(r"# BEGIN QUESTION\s*\nname:\s*(\w+)\s*\npoints:\s*(\d+)", text)
            if found:
                name, points = found.groups()
                row = re.search(rf"\| `{name}` \| (\d+) \|", page)
                assert row, f"docs/homework.md does not describe {master.stem}:{name}"
                assert row.group(1) == points, f"{master.stem}:{name} is worth {points} points"


def test_homework_masters_are_outside_the_site():
    """The masters (with solutions) match no page pattern of docs/conf.py."""
    matching = pytest.importorskip("sphinx.util.matching", reason="the [docs] extra is not installed")
    conf = {}
    exec(compile("".join(line for line in (DOCS / "conf.py").read_text().splitlines(keepends=True)
                         if line.startswith(("include_patterns", "exclude_patterns"))), "conf", "exec"), conf)
    included = matching.Matcher(conf["include_patterns"])
    for master in MASTERS:
        assert not included(f"lessons/homework/{master.name}"), f"{master.name} would be rendered"
    for lesson in LESSONS:
        assert included(f"lessons/{lesson.name}")


def _missing_for_build():
    for module in ("sphinx", "myst_nb", "sphinx_book_theme", "playwright"):
        try:
            __import__(module)
        except ImportError:
            return f"{module} is not installed (pip install -e '.[docs]')"
    if not CHROMIUM.exists():
        return "no /usr/bin/chromium (Debian: apt-get install -y chromium)"
    return None


@pytest.mark.slow
def test_site_builds_and_works_in_chromium(tmp_path):
    missing = _missing_for_build()
    if missing:
        pytest.skip(missing)
    env = {**os.environ, "PYTHONWARNINGS": "ignore::DeprecationWarning"}
    out, state = tmp_path / "site", tmp_path / "state"
    build = subprocess.run([sys.executable, str(ROOT / "tools" / "build_site.py"), "--fast",
                            "--out", str(out), "--state", str(state)],
                           cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    print(build.stdout[-3000:])
    assert build.returncode == 0, f"the site build failed:\n{build.stdout[-3000:]}\n{build.stderr[-5000:]}"
    assert "executed now" in build.stdout  # a fresh state: every notebook ran in this build

    check = subprocess.run([sys.executable, str(ROOT / "tools" / "check_site.py"), str(out),
                            "--screenshot-dir", str(tmp_path / "shots")],
                           cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    print(check.stdout)
    assert check.returncode == 0, f"the browser check failed:\n{check.stdout}\n{check.stderr[-3000:]}"
    assert list((tmp_path / "shots").glob("*.png")), "no screenshot written"
