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
(SIGINT, SIGTERM, SIGHUP) are handled from here on, so one that arrives while MXNet loads is not lost:
`train` stops at the next minibatch and saves, the other commands stop at once and write nothing.
MXNet aborts the process on a malformed OMP_NUM_THREADS, MXNET_OMP_MAX_THREADS,
MXNET_CPU_WORKER_NTHREADS or MXNET_ENGINE_TYPE, so those are checked first.
"""
import os
import re
import sys

from . import signals

FUSED_PREFIX = "gluon-"
# MXNet's thread settings and the lowest value each takes
THREAD_VARIABLES = {"OMP_NUM_THREADS": 0, "MXNET_OMP_MAX_THREADS": 0, "MXNET_CPU_WORKER_NTHREADS": 1}
ENGINES = ("ThreadedEnginePerDevice", "ThreadedEngine", "NaiveEngine")


def _cpus():
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def environment_problem(environ):
    """A one-line complaint about an MXNet setting in the environment that would abort it, or None."""
    for name, low in THREAD_VARIABLES.items():
        value = environ.get(name, "").strip()
        if value and not (re.fullmatch(r"\+?[0-9]{1,6}", value) and low <= int(value) <= 4 * _cpus()):
            return (f"{name}={environ[name]!r} must be a whole number from {low} to {4 * _cpus()} "
                    "(4 per CPU), or unset: MXNet aborts on other values")
    engine = environ.get("MXNET_ENGINE_TYPE")
    if engine is not None and engine not in ENGINES:
        return f"MXNET_ENGINE_TYPE={engine!r} must be one of {', '.join(ENGINES)}, or unset"
    return None


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
    cpus = _cpus()
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
    problem = environment_problem(os.environ)
    if problem:
        print(f"error: {problem}", file=sys.stderr)
        sys.exit(2)
    env = wanted_threads(sys.argv[1:], os.environ)
    if env is not None:
        os.execve(sys.executable, [sys.executable, "-m", "d2lrnn", *sys.argv[1:]], env)
    signals.install(at_once=sys.argv[1:2] != ["train"])
    try:
        from .cli import main  # loads MXNet

        signals.loaded()
        status = main()
    except BrokenPipeError:  # the reader of our output left (`... | head`): nothing more to say
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        status = 128 + 13  # as if killed by SIGPIPE, the shell's convention
    sys.exit(status)


if __name__ == "__main__":
    run()
