"""Homework scaffolding: every master in notebooks/homework/ builds with otter assign, its solutions
pass all tests, its untouched student notebook scores below full marks on every question, and no
solution code, hidden test or marker leaks into the student notebook."""
import argparse
import ast
import importlib.util
import re
from pathlib import Path

import pytest

pytest.importorskip("otter", reason="otter-grader is not installed (pip install -e '.[instructor]')")
pytest.importorskip("ipykernel", reason="ipykernel is not installed (pip install -e '.[instructor]')")
nbformat = pytest.importorskip("nbformat")

ROOT = Path(__file__).resolve().parent.parent
_spec = importlib.util.spec_from_file_location("build_homework", ROOT / "tools" / "build_homework.py")
build_homework = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(build_homework)

MASTERS = build_homework.find_masters()
if not MASTERS:
    pytest.skip("no master notebooks in notebooks/homework/", allow_module_level=True)

# Lines otter assign must never leave in a student notebook.
MARKERS = re.compile(r"#\s*(BEGIN|END)\s+(SOLUTION|PROMPT|QUESTION|TESTS|TEST CONFIG|IGNORE)\b"
                     r"|#\s*SOLUTION\b|#\s*HIDDEN\b|#\s*ASSIGNMENT CONFIG\b|#\s*SEED\b", re.IGNORECASE)


@pytest.fixture(scope="module", params=MASTERS, ids=[m.stem for m in MASTERS])
def built(request, tmp_path_factory):
    """otter assign for one master (solution tests included) into a temporary folder."""
    return build_homework.build(request.param, tmp_path_factory.mktemp("homework"))


def _code(nb):
    return [c.source for c in nb.cells if c.cell_type == "code"]


def _master_parts(path):
    """(solution lines, hidden-test lines) of a master: stripped, and only those not also used elsewhere."""
    nb = nbformat.read(path, as_version=4)
    solution, hidden, other = set(), set(), set()
    for src in _code(nb):
        lines = src.splitlines()
        if lines and re.match(r"#\s*HIDDEN\b", lines[0].strip(), re.IGNORECASE):
            hidden.update(l.strip() for l in lines[1:])
            continue
        inside = False
        for line in lines:
            s = line.strip()
            if re.match(r"#\s*BEGIN SOLUTION", s):
                inside = True
            elif re.match(r"#\s*END SOLUTION", s):
                inside = False
            elif inside or s.endswith("# SOLUTION"):
                solution.add(s)
            else:
                other.add(s)
    keep = lambda lines: {l for l in lines - other if len(l) > 3 and not l.startswith("#")}  # noqa: E731
    return keep(solution), {l for l in keep(hidden) if len(l) > 12}  # skip generic lines like try:


def _normalized(line):
    """A line as otter writes test code (ast.unparse: quotes, parentheses), when it parses alone."""
    try:
        return ast.unparse(ast.parse(line.strip()))
    except SyntaxError:
        return line.strip()


def _public_test_lines(nb):
    """Source lines of the public tests otter embeds in a student notebook's metadata (doctests)."""
    lines = set()
    for question in nb.metadata.get("otter", {}).get("tests", {}).values():
        for suite in question.get("suites", []):
            for case in suite.get("cases", []):
                for line in case.get("code", "").splitlines():
                    lines.add(_normalized(re.sub(r"^(>>>|\.\.\.) ?", "", line.strip())))
    return lines


@pytest.mark.slow
def test_build_runs_and_passes_solution_tests(built):
    assert built["returncode"] == 0, built["log"][-4000:]
    assert built["tests_passed"], "otter assign did not grade the solutions:\n" + built["log"][-4000:]
    assert built["student"].is_file()
    assert built["autograder_zip"] is not None and built["autograder_zip"].is_file()


@pytest.mark.slow
def test_untouched_student_notebook_scores_below_full_marks(built):
    assert built["ok"], built["log"][-4000:]
    results = build_homework.grade(built["student"], built["autograder_zip"])
    got, possible = build_homework.score_of(results)
    assert possible > 0
    assert got < possible
    # Every question discriminates: a stub earns less than the question is worth.
    full = [t["name"] for t in results["tests"]
            if t.get("max_score") is not None and (t.get("score") or 0) >= t["max_score"]]
    assert not full, f"stubbed answers get full marks on {full}: the tests do not discriminate"


@pytest.mark.slow
def test_student_notebook_has_no_solutions_hidden_tests_or_markers(built):
    assert built["ok"], built["log"][-4000:]
    master = ROOT / "notebooks" / "homework" / built["student"].name
    solution, hidden = _master_parts(master)
    assert solution, "the master has no solution code between BEGIN/END SOLUTION"
    student = nbformat.read(built["student"], as_version=4)
    student_lines = {l.strip() for src in (c.source for c in student.cells) for l in src.splitlines()}
    assert not [l for l in student_lines if MARKERS.search(l)], "otter markers left in the student notebook"
    leaked = sorted(solution & student_lines)
    assert not leaked, f"solution code in the student notebook: {leaked}"
    student_lines |= _public_test_lines(student)
    leaked_tests = sorted({_normalized(l) for l in hidden} & student_lines)
    assert not leaked_tests, f"hidden tests in the student notebook: {leaked_tests}"


@pytest.mark.slow
def test_student_notebook_has_no_colab_placeholder(built):
    assert built["ok"], built["log"][-4000:]
    assert build_homework.PLACEHOLDER not in built["student"].read_text()


def _badge_notebook():
    """A small notebook with the masters' placeholder badge cell."""
    return nbformat.v4.new_notebook(cells=[
        nbformat.v4.new_markdown_cell("<!-- colab-badge: a note for instructors -->\n"
                                      "[![Open In Colab](badge.svg)](COLAB_LINK_PLACEHOLDER)\n\n# Homework"),
        nbformat.v4.new_code_cell("x = 1  # COLAB_LINK_PLACEHOLDER in code stays")])


@pytest.mark.parametrize("spec, path", [("me/hw", "me/hw/blob/main/hw1.ipynb"),
                                        ("me/hw@fall24", "me/hw/blob/fall24/hw1.ipynb"),
                                        ("me/hw/students", "me/hw/blob/main/students/hw1.ipynb"),
                                        ("me/hw@fall24/a/b/", "me/hw/blob/fall24/a/b/hw1.ipynb")])
def test_colab_repo_links_the_badge_to_the_published_student_notebook(spec, path):
    nb = build_homework.set_colab_badge(_badge_notebook(), build_homework.colab_base(spec) + "hw1.ipynb")
    url = "https://colab.research.google.com/github/" + path
    assert nb.cells[0].source == f"[![Open In Colab](badge.svg)]({url})\n\n# Homework"
    assert nb.cells[1].source == _badge_notebook().cells[1].source


def test_without_colab_repo_the_badge_is_dropped():
    assert build_homework.set_colab_badge(_badge_notebook()).cells[0].source == "# Homework"


@pytest.mark.parametrize("spec", ["hw", "me/hw@", "https://github.com/me/hw"])
def test_colab_repo_must_be_owner_slash_repo(spec):
    with pytest.raises(argparse.ArgumentTypeError):
        build_homework.colab_base(spec)


@pytest.mark.slow
def test_student_notebook_keeps_signatures_and_docstrings(built):
    assert built["ok"], built["log"][-4000:]
    master = nbformat.read(ROOT / "notebooks" / "homework" / built["student"].name, as_version=4)
    student_code = "\n".join(_code(nbformat.read(built["student"], as_version=4)))
    answers = [src for src in _code(master) if re.search(r"#\s*BEGIN SOLUTION", src)]
    defs = [m.group(0) for src in answers for m in re.finditer(r"^def \w+\(.*\):$", src, re.MULTILINE)]
    assert defs, "no function to implement in the master's solution cells"
    for d in defs:
        assert d in student_code, f"{d} is missing from the student notebook"
    assert student_code.count("raise NotImplementedError") >= len(defs)


@pytest.mark.parametrize("master", MASTERS, ids=[m.stem for m in MASTERS])
def test_master_uses_the_shared_colab_setup_and_skips_it_when_grading(master):
    from d2lrnn import colab

    nb = nbformat.read(master, as_version=4)
    setup = [c for c in nb.cells if "colab-setup" in c.metadata.get("tags", [])]
    assert len(setup) == 1, "one code cell tagged colab-setup"
    assert setup[0].source.startswith(colab.setup_cell_source()), "out of date with d2lrnn.colab"
    assert "otter-grader" in setup[0].source, "students need otter-grader on Colab for grader.check"
    assert "otter_ignore" in setup[0].metadata["tags"], "grading must not run the Colab install"
