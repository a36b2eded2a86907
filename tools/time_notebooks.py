"""Run every course notebook top to bottom in full mode and print how long each took, as a markdown table.

Full mode is what a student gets without D2LRNN_FAST: the settings each notebook's first cells state.
The notebooks run one after another (never two at once, so the times are comparable), each in a fresh
kernel started from this interpreter, in a scratch folder so the repository stays clean. The table
has one row per notebook (seconds, pass or fail) and a total; the load average of the machine at the
start and at the end is printed under it, since a busy machine slows every notebook down.

    python tools/time_notebooks.py                       # all of notebooks/[0-9][0-9]_*.ipynb
    python tools/time_notebooks.py notebooks/04_*.ipynb  # only these
    python tools/time_notebooks.py --fast                # the CI smoke run (D2LRNN_FAST=1) instead
    python tools/time_notebooks.py --limit 300           # fail notebooks slower than 300 s (the target)
    python tools/time_notebooks.py --out executed/       # also keep the executed notebooks (outputs, figures)

Exit status 1 if a notebook failed (or, with --limit, took longer). Needs nbclient and ipykernel
(`pip install -e ".[notebooks]"`); the corpora come from D2LRNN_DATA_DIR or the usual places.
"""
import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = ROOT / "notebooks"
KERNEL_NAME = "d2lrnn-timing"
TARGET_SECONDS = 300  # every notebook within 5 minutes in full mode on a 2-core machine
CELL_TIMEOUT = 3600   # seconds a single cell may take before nbclient gives up


def notebook_paths():
    """The course notebooks in lesson order (homework masters are not part of the timing)."""
    return sorted(NOTEBOOKS.glob("[0-9][0-9]_*.ipynb"))


def write_kernelspec(folder):
    """A kernelspec that starts this interpreter; returns the folder to put on JUPYTER_PATH."""
    kernel = Path(folder) / "kernels" / KERNEL_NAME
    kernel.mkdir(parents=True)
    spec = {"argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
            "display_name": "d2lrnn timing", "language": "python"}
    (kernel / "kernel.json").write_text(json.dumps(spec))
    return str(folder)


def load_average():
    """The 1-minute load average, or None where the system does not report it."""
    try:
        return os.getloadavg()[0]
    except (AttributeError, OSError):
        return None


def run_one(path, workdir, out=None):
    """Execute one notebook (and save it with its outputs into the folder `out`); (seconds, error or None)."""
    import nbformat
    from nbclient import NotebookClient
    from nbclient.exceptions import CellExecutionError

    nb = nbformat.read(str(path), as_version=4)
    client = NotebookClient(nb, kernel_name=KERNEL_NAME, timeout=CELL_TIMEOUT,
                            resources={"metadata": {"path": str(workdir)}})
    start, error = time.perf_counter(), None
    try:
        client.execute()
    except CellExecutionError as err:
        error = str(err).strip().splitlines()[-1][:200]
    except Exception as err:  # a dead kernel, a timeout: report it and go on with the next notebook
        error = f"{type(err).__name__}: {err}"[:200]
    seconds = time.perf_counter() - start
    if out is not None:
        nbformat.write(nb, str(Path(out) / path.name))
    return seconds, error


def table(rows, limit):
    """The markdown table: notebook, seconds, pass/fail; then the total."""
    lines = ["| notebook | seconds | result |", "|---|---:|---|"]
    for name, seconds, error in rows:
        if error:
            result = f"fail: {error}"
        elif limit and seconds > limit:
            result = f"pass, over {limit:g} s"
        else:
            result = "pass"
        lines.append(f"| {name} | {seconds:.0f} | {result} |")
    lines.append(f"| **total** | **{sum(s for _, s, _ in rows):.0f}** | "
                 f"{sum(1 for *_, e in rows if not e)} of {len(rows)} passed |")
    return "\n".join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("paths", nargs="*", type=Path, help="notebooks to run (default: all of them)")
    parser.add_argument("--fast", action="store_true", help="run with D2LRNN_FAST=1 (the CI smoke run)")
    parser.add_argument("--out", type=Path, default=None, help="keep the executed notebooks here")
    parser.add_argument("--limit", type=float, default=None,
                        help=f"fail notebooks slower than this many seconds (target: {TARGET_SECONDS})")
    args = parser.parse_args(argv)
    paths = [p.resolve() for p in args.paths] or notebook_paths()
    if args.out is not None:
        args.out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="d2lrnn-timing-") as tmp:
        os.environ["JUPYTER_PATH"] = write_kernelspec(Path(tmp) / "jupyter")
        os.environ["D2LRNN_FAST"] = "1" if args.fast else "0"
        os.environ.setdefault("MPLBACKEND", "Agg")
        os.environ.setdefault("PYTHONWARNINGS", "ignore::DeprecationWarning")
        load_before, rows = load_average(), []
        for path in paths:
            workdir = Path(tmp) / path.stem  # runs/ folders and figures land here, not in the repository
            workdir.mkdir()
            print(f"running {path.name} ...", file=sys.stderr, flush=True)
            seconds, error = run_one(path, workdir, args.out)
            print(f"  {seconds:.0f} s" + (f", FAILED: {error}" if error else ""), file=sys.stderr, flush=True)
            rows.append((path.stem, seconds, error))
        load_after = load_average()
    print(table(rows, args.limit))
    mode = "fast mode (D2LRNN_FAST=1)" if args.fast else "full mode"
    loads = ", ".join(f"{when} {value:.2f}" for when, value in (("start", load_before), ("end", load_after))
                      if value is not None)
    print(f"\n{mode}, {os.cpu_count()} CPUs" + (f"; 1-minute load average at the {loads}" if loads else ""))
    failed = any(e for *_, e in rows) or (args.limit and any(s > args.limit for _, s, _ in rows))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
