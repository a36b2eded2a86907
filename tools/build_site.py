"""Build the course website: execute the lesson notebooks (cached) and render them with Sphinx.

    python tools/build_site.py            # full mode (the lecture's settings) -> _site/
    python tools/build_site.py --fast     # D2LRNN_FAST=1, seconds per notebook -> _site-fast/
    python tools/build_site.py --fast --check   # then load every page in headless Chromium
    python tools/build_site.py --fresh    # forget the cache and execute every notebook again

Needs `pip install -e ".[docs]"` and the corpora (downloaded on first use, or D2LRNN_DATA_DIR).

Each mode keeps its own state in docs/_build/<mode>/ (override with --state): the executed notebooks
(myst-nb's jupyter-cache), Sphinx's doctrees and incremental HTML, and the lessons' working folder;
the output folder receives a clean copy of the HTML. A notebook is executed
again only when its code cells change; a rebuild with nothing changed takes seconds. Fast and full
outputs never mix: the mode is set explicitly (D2LRNN_FAST=1 or 0, whatever the shell had) and the
two modes share no state. Because the cache keys on the notebooks' code only, the state also records
a fingerprint of what else decides the outputs (the d2lrnn package and its pretrained model, the
versions of MXNet, numpy, matplotlib and the kernel, the kernels' settings); when that changes, the
state is wiped and every notebook runs again (--reuse-stale-cache keeps it, for layout-only work).

A cell that raises fails the build, and so does any Sphinx warning (a broken link, bad markup). At
the end a table gives each notebook's execution time, and whether it ran now or came from the cache.
"""
import argparse
import hashlib
import importlib.metadata
import io
import json
import os
import shutil
import sys
import time
from datetime import datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
PACKAGE = ROOT / "d2lrnn"
FINGERPRINT_PACKAGES = ["mxnet", "numpy", "matplotlib", "matplotlib-inline", "ipykernel", "myst-nb",
                        "jupyter-cache"]
KERNEL_CONFIG = DOCS / "_ext" / "ipython_kernel_config.py"


def default_out(fast):
    return ROOT / ("_site-fast" if fast else "_site")


def default_state(fast):
    return DOCS / "_build" / ("fast" if fast else "full")


def fingerprint(fast):
    """What decides the notebooks' outputs besides their code (which jupyter-cache hashes itself)."""
    digest = hashlib.sha256()
    files = sorted(p for p in PACKAGE.rglob("*") if p.is_file() and "__pycache__" not in p.parts)
    for path in files + [KERNEL_CONFIG]:
        digest.update(path.relative_to(ROOT).as_posix().encode() + b"\0" + path.read_bytes() + b"\0")
    versions = {}
    for name in FINGERPRINT_PACKAGES:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            versions[name] = None
    return {"mode": "fast" if fast else "full", "python": "%d.%d" % sys.version_info[:2],
            "packages": versions, "files": digest.hexdigest()}


def prepare_state(state, fast, fresh, reuse_stale):
    """Make sure the cached executions in `state` may be used; wipe them otherwise."""
    record = state / "fingerprint.json"
    now = fingerprint(fast)
    if state.exists() and fresh:
        print(f"--fresh: removing {state}")
        shutil.rmtree(state)
    elif state.exists() and record.is_file():
        before = json.loads(record.read_text())
        if before != now:
            changed = sorted(k for k in now if before.get(k) != now[k])
            if reuse_stale:
                print(f"warning: {', '.join(changed)} changed since the cached executions; "
                      "keeping them (--reuse-stale-cache)")
                return
            print(f"{', '.join(changed)} changed since the cached executions: every notebook runs again")
            shutil.rmtree(state)
    elif state.exists() and any(state.iterdir()) and not reuse_stale:
        print(f"{state} has no fingerprint: every notebook runs again")
        shutil.rmtree(state)
    state.mkdir(parents=True, exist_ok=True)
    record.write_text(json.dumps(now, indent=1) + "\n")


def clear_output(out):
    """Empty the output folder so the published tree holds no stale page, refusing non-site folders."""
    if not out.exists():
        return
    if any(out.iterdir()) and not (out / ".buildinfo").is_file():
        raise SystemExit(f"error: {out} is not empty and is not a Sphinx build; choose another --out")
    shutil.rmtree(out)


class StatusFilter(io.TextIOBase):
    """Sphinx's status stream, cut down to what a person waits for: the notebooks and the result."""

    KEEP = ("Executing notebook", "Executed notebook", "Using cached notebook", "Running Sphinx")

    def __init__(self, stream):
        self.stream, self.buffer = stream, ""

    def write(self, text):
        self.buffer += text
        *lines, self.buffer = self.buffer.split("\n")
        for line in lines:
            if any(key in line for key in self.KEEP):
                line = line.replace(str(DOCS / "lessons") + os.sep, "").replace(" [mystnb]", "")
                self.stream.write(line + "\n")
                self.stream.flush()
        return len(text)


def run_sphinx(html, state, jobs, verbose):
    """Build the HTML site into `html`; returns (exit status, {docname: execution data})."""
    from sphinx.application import Sphinx
    from sphinx.util import console
    from sphinx.util.docutils import docutils_namespace, patch_docutils

    if not sys.stdout.isatty():
        console.nocolor()
    status = sys.stdout if verbose else StatusFilter(sys.stdout)
    with patch_docutils(DOCS), docutils_namespace():
        app = Sphinx(DOCS, DOCS, html, state / "doctrees", "html", status=status, warning=sys.stderr,
                     warningiserror=True, parallel=jobs)
        app.build()
        metadata = getattr(app.env, "nb_metadata", {})
        executions = {doc: data["exec_data"] for doc, data in metadata.items() if data.get("exec_data")}
        return app.statuscode, executions


def report(executions, started):
    """One line per notebook: how long its execution took, and whether it ran in this build."""
    if not executions:
        return
    print("\nnotebook execution (seconds):")
    total = 0.0
    for doc in sorted(executions):
        data = executions[doc]
        runtime = data.get("runtime")
        total += runtime or 0.0
        when = ("executed now" if data.get("mtime", 0) >= started else
                "from cache, executed " + datetime.fromtimestamp(data["mtime"]).strftime("%Y-%m-%d %H:%M"))
        shown = f"{runtime:8.1f}" if runtime is not None else "       ?"
        print(f"  {Path(doc).name:40s} {shown}  {when}")
    print(f"  {'total':40s} {total:8.1f}")


def build(fast=False, out=None, state=None, fresh=False, reuse_stale=False, jobs=1, verbose=False):
    """Build the site; returns the exit status (0 when it built without error or warning)."""
    out = Path(out or default_out(fast)).resolve()
    state = Path(state or default_state(fast)).resolve()
    # The mode is decided here, never inherited: a shell's D2LRNN_FAST=1 must not leak into a full build.
    os.environ["D2LRNN_FAST"] = "1" if fast else "0"
    os.environ["D2LRNN_SITE_STATE"] = str(state)
    os.environ.setdefault("PYDEVD_DISABLE_FILE_VALIDATION", "1")  # quiets a debugger notice per kernel
    prepare_state(state, fast, fresh, reuse_stale)
    clear_output(out)
    print(f"building the {'fast' if fast else 'full'}-mode site into {out} (state: {state})")
    started = time.time()
    try:
        # Sphinx works incrementally in the state folder (myst-nb also writes the notebooks' images
        # next to its output folder, in jupyter_execute/); `out` gets a clean copy of the result.
        code, executions = run_sphinx(state / "html", state, jobs, verbose)
    except Exception as exc:  # a failing notebook (myst-nb's ExecutionError) or any Sphinx error
        cause = exc.__cause__ or exc
        print(f"error: the build stopped: {type(exc).__name__}: {exc}"
              + (f" ({type(cause).__name__})" if cause is not exc else ""), file=sys.stderr)
        return 1
    report(executions, started)
    if code == 0:
        shutil.copytree(state / "html", out)
    print(f"\nbuild {'succeeded' if code == 0 else 'FAILED'} in {time.time() - started:.1f} s: "
          f"{out / 'index.html'}")
    return code


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--fast", action="store_true", help="D2LRNN_FAST=1: short training runs, its own "
                                                            "cache")
    parser.add_argument("--out", type=Path, help="output folder (default _site/, or _site-fast/ with --fast)")
    parser.add_argument("--state", type=Path, help="cache and doctrees (default docs/_build/<mode>/)")
    parser.add_argument("--fresh", action="store_true", help="drop the cache: execute every notebook again")
    parser.add_argument("--reuse-stale-cache", action="store_true",
                        help="keep cached outputs even if the library or the environment changed")
    parser.add_argument("--jobs", type=int, default=1, help="Sphinx processes (notebooks run in lesson "
                        "order with 1, which notebook 5 relies on to load notebook 4's model)")
    parser.add_argument("--check", action="store_true", help="then check the site in headless Chromium")
    parser.add_argument("-v", "--verbose", action="store_true", help="show all of Sphinx's output")
    args = parser.parse_args(argv)
    code = build(args.fast, args.out, args.state, args.fresh, args.reuse_stale_cache, args.jobs, args.verbose)
    if code == 0 and args.check:
        sys.path.insert(0, str(ROOT / "tools"))
        import check_site

        code = check_site.main([str(args.out or default_out(args.fast))])
    return code


if __name__ == "__main__":
    sys.exit(main())
