"""Build the homework: run `otter assign` on every master notebook in notebooks/homework/.

    python tools/build_homework.py                 # every master -> dist/homework/<name>/
    python tools/build_homework.py hw1_rnn_mechanics --out /tmp/hw
    python tools/build_homework.py --grade dist/homework/hw1_rnn_mechanics/student/hw1_rnn_mechanics.ipynb
    python tools/build_homework.py --colab-repo me/rnn-homework@fall24/hw   # Colab badges, see below

For each master `notebooks/homework/<name>.ipynb` otter writes

    dist/homework/<name>/student/<name>.ipynb        the notebook to hand out (solutions stubbed,
                                                     public tests embedded for grader.check)
    dist/homework/<name>/autograder/<name>-autograder_<timestamp>.zip
                                                     the autograder: upload it to Gradescope, or
                                                     grade locally with `otter run` (--grade here)
    dist/homework/<name>/autograder/<name>.ipynb     the solution notebook

and then grades the solution notebook with all tests, public and hidden: the build fails unless it
gets full marks. Needs the `[instructor]` extra (otter-grader, ipykernel). The notebooks' kernels
import d2lrnn from this checkout and read the corpus from $D2LRNN_DATA_DIR if it is set.

The masters' Colab badge links to COLAB_LINK_PLACEHOLDER: the student notebooks only exist once
built, and a link to the master would show the solutions. With `--colab-repo OWNER/REPO[@BRANCH][/SUBDIR]`
(branch `main` by default) the badge of each student notebook opens
https://colab.research.google.com/github/OWNER/REPO/blob/BRANCH/SUBDIR/<name>.ipynb, so publish the
student notebooks there; without it the badge is removed.
"""
import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import nbformat

ROOT = Path(__file__).resolve().parent.parent
MASTERS = ROOT / "notebooks" / "homework"
OUT = ROOT / "dist" / "homework"
PASSED = "All autograder tests passed."  # what `otter assign -v` logs once the solutions pass
PLACEHOLDER = "COLAB_LINK_PLACEHOLDER"  # the link in the masters' Colab badge


def colab_base(spec):
    """'OWNER/REPO[@BRANCH][/SUBDIR]' -> the Colab URL that a notebook's file name completes."""
    m = re.fullmatch(r"([\w.-]+)/([\w.-]+)(?:@([^/]+))?(?:/(.+))?", spec)
    if not m:
        raise argparse.ArgumentTypeError(f"expected OWNER/REPO[@BRANCH][/SUBDIR], got {spec!r}")
    owner, repo, branch, subdir = m.groups()
    subdir = (subdir or "").strip("/")
    return f"https://colab.research.google.com/github/{owner}/{repo}/blob/{branch or 'main'}/" + (
        f"{subdir}/" if subdir else "")


def set_colab_badge(nb, url=None):
    """Point `nb`'s placeholder Colab badge at `url`, or drop the badge if `url` is None; returns `nb`."""
    for cell in nb.cells:
        if cell.cell_type == "markdown" and PLACEHOLDER in cell.source:
            lines = [line for line in cell.source.split("\n") if not line.startswith("<!-- colab-badge")]
            if url:
                lines = [line.replace(PLACEHOLDER, url) for line in lines]
            else:
                lines = [line for line in lines if PLACEHOLDER not in line]
            cell.source = "\n".join(lines).lstrip("\n")
    return nb


def find_masters(folder=MASTERS, names=None):
    """The master notebooks in `folder` (all of them, or those whose stem is in `names`)."""
    masters = sorted(p for p in Path(folder).glob("*.ipynb") if not p.name.startswith("."))
    if names:
        unknown = set(names) - {p.stem for p in masters}
        if unknown:
            raise SystemExit(f"no master notebook named {', '.join(sorted(unknown))} in {folder}")
        masters = [p for p in masters if p.stem in names]
    return masters


def _env():
    """The environment for otter and its kernels: this checkout's d2lrnn comes first on the path."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT)] + [p for p in [env.get("PYTHONPATH")] if p])
    env.setdefault("PYTHONHASHSEED", "0")
    return env


def build(master, out_root=OUT, run_tests=True, colab_url=None):
    """Run `otter assign` on one master into out_root/<stem> (badge link: colab_url + name, or none)."""
    master = Path(master).resolve()
    out = Path(out_root).resolve() / master.stem
    if out.exists():
        shutil.rmtree(out)
    cmd = [sys.executable, "-m", "otter", "assign", "-v", str(master), str(out)]
    if not run_tests:
        cmd.append("--no-run-tests")
    start = time.time()
    proc = subprocess.run(cmd, env=_env(), cwd=master.parent, capture_output=True, text=True)
    log = proc.stdout + proc.stderr
    zips = sorted((out / "autograder").glob("*-autograder_*.zip")) if out.exists() else []
    student = out / "student" / master.name
    if student.is_file():
        url = colab_url and colab_url + student.name
        nbformat.write(set_colab_badge(nbformat.read(student, as_version=4), url), student)
    return {
        "name": master.stem,
        "ok": proc.returncode == 0 and (not run_tests or PASSED in log),
        "tests_passed": PASSED in log,
        "returncode": proc.returncode,
        "seconds": time.time() - start,
        "out": out,
        "student": student,
        "autograder_zip": zips[-1] if zips else None,
        "log": log,
    }


def grade(submission, autograder_zip):
    """Grade one notebook locally with `otter run` (no Docker); return otter's results.json as a dict.

    The dict has one entry per question under "tests" (name, score, max_score) plus a
    "Public Tests" summary entry; `score_of(results)` adds them up.
    """
    with tempfile.TemporaryDirectory() as tmp:
        cmd = [sys.executable, "-m", "otter", "run", "--no-logo", "-a", str(Path(autograder_zip).resolve()),
               "-o", tmp, str(Path(submission).resolve())]
        proc = subprocess.run(cmd, env=_env(), cwd=tmp, capture_output=True, text=True)
        results_path = Path(tmp) / "results.json"
        if proc.returncode != 0 or not results_path.is_file():
            raise RuntimeError(f"otter run failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
        return json.loads(results_path.read_text())


def score_of(results):
    """(points scored, points possible) from otter's results.json dict."""
    graded = [t for t in results["tests"] if t.get("max_score") is not None]
    return sum(t.get("score") or 0 for t in graded), sum(t["max_score"] for t in graded)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("names", nargs="*", help="master notebook names (stems); default: all")
    parser.add_argument("--masters", type=Path, default=MASTERS, help=f"folder of masters ({MASTERS})")
    parser.add_argument("--out", type=Path, default=OUT, help=f"output folder ({OUT})")
    parser.add_argument("--no-run-tests", action="store_true",
                        help="skip grading the solution notebooks (faster, checks nothing)")
    parser.add_argument("--grade", type=Path, metavar="NOTEBOOK",
                        help="instead of building, grade NOTEBOOK against its built autograder")
    parser.add_argument("--colab-repo", type=colab_base, metavar="OWNER/REPO[@BRANCH][/SUBDIR]",
                        help="link each student notebook's Colab badge to <name>.ipynb there")
    args = parser.parse_args(argv)

    if args.grade:
        name = args.grade.stem
        zips = sorted((args.out / name / "autograder").glob("*-autograder_*.zip"))
        if not zips:
            raise SystemExit(f"no autograder for {name} in {args.out}: build it first")
        results = grade(args.grade, zips[-1])
        for t in results["tests"]:
            if t.get("max_score") is not None:
                print(f"{t['name']:<24} {t.get('score') or 0:g} / {t['max_score']:g}")
        got, possible = score_of(results)
        print(f"{'total':<24} {got:g} / {possible:g}")
        return 0

    masters = find_masters(args.masters, args.names)
    if not masters:
        raise SystemExit(f"no master notebooks in {args.masters}")
    failed = []
    for master in masters:
        res = build(master, args.out, run_tests=not args.no_run_tests, colab_url=args.colab_repo)
        status = "ok" if res["ok"] else "FAILED"
        tested = ", solution tests passed" if res["tests_passed"] else ""
        print(f"{res['name']}: {status} in {res['seconds']:.1f} s{tested} -> {res['out']}")
        if not res["ok"]:
            print(res["log"], file=sys.stderr)
            failed.append(res["name"])
    if not args.colab_repo:
        print("No Colab badges: publish the student notebooks on GitHub and rebuild with "
              "--colab-repo OWNER/REPO[@BRANCH][/SUBDIR] to add them.")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
