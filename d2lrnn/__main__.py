"""`python -m d2lrnn ...` and the `d2lrnn` script: thread settings and stop signals first, then the CLI.

MXNet reads its OpenMP settings once, when it loads, so they are chosen here, before anything imports
it: if the command wants other settings than the environment has, the process restarts itself once
(os.execve) with these variables set:

* OMP_NUM_THREADS: `--threads N`, or with `--threads auto` (the default) every CPU for the fused
  `gluon-*` models (faster on an idle 2-core machine than MXNet's own default of half the CPUs); the
  other models keep MXNet's default, which is fastest for their many small operators.

OMP_NUM_THREADS or MXNET_OMP_MAX_THREADS set by the user always wins. OMP_WAIT_POLICY is left to the
user: PASSIVE (idle threads sleep at once) halves the speed of two threads on an idle machine here, and
only helps on a machine busy with other work, where OMP_NUM_THREADS=1 is better still. The stop signals
(SIGINT, SIGTERM, SIGHUP) are handled from here on, so one that arrives while MXNet loads is not lost.
"""
import os
import re
import sys

from . import signals

FUSED_PREFIX = "gluon-"


def _option(argv, name, default):
    """The value of `--name V` or `--name=V` in argv (the last one wins), else default."""
    value = default
    for i, arg in enumerate(argv):
        if arg == name and i + 1 < len(argv):
            value = argv[i + 1]
        elif arg.startswith(name + "="):
            value = arg[len(name) + 1:]
    return value


def wanted_threads(argv, environ):
    """The environment `python -m d2lrnn ARGV` should run in, or None if this one will do."""
    if "OMP_NUM_THREADS" in environ or "MXNET_OMP_MAX_THREADS" in environ or not argv or argv[0] != "train":
        return None
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    threads = _option(argv, "--threads", "auto")
    if threads == "auto":
        wanted = cpus if _option(argv, "--model", "").startswith(FUSED_PREFIX) else None
    elif re.fullmatch("[0-9]{1,6}", threads) and 1 <= int(threads) <= 4 * cpus:
        wanted = int(threads)
    else:
        return None  # the command line reports the bad value
    if wanted is None or wanted == max(1, cpus // 2):  # MXNet's own default already
        return None
    return {**environ, "OMP_NUM_THREADS": str(wanted)}


def run():
    """Restart once with the wanted thread settings, handle stop signals, then run the command line."""
    env = wanted_threads(sys.argv[1:], os.environ)
    if env is not None:
        os.execve(sys.executable, [sys.executable, "-m", "d2lrnn", *sys.argv[1:]], env)
    signals.install()
    try:
        from .cli import main  # loads MXNet

        status = main()
    except signals.StopNow as stop:
        print(f"error: stopped at once by {signals.describe(stop.signum)}", file=sys.stderr)
        status = signals.exit_status(stop.signum)
    sys.exit(status)


if __name__ == "__main__":
    run()
