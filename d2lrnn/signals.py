"""Stop requests: Ctrl-C (SIGINT), SIGTERM and SIGHUP all ask a training run to stop at the next minibatch.

`python -m d2lrnn` installs the handlers before MXNet loads, so a signal during the first seconds is not
lost: the run then stops before its first minibatch. While a save is under way a signal only says the
save is finishing; outside a save, a second signal stops at once, without saving (StopNow). Commands
with nothing to save (generate, evaluate, compress, decompress) end at the first signal, removing any
file they were writing. This module imports nothing heavy.
"""
import contextlib
import os
import signal
import sys
import threading

STOP_SIGNALS = {signal.SIGINT: "Ctrl-C (SIGINT)", signal.SIGTERM: "SIGTERM"}
if hasattr(signal, "SIGHUP"):  # not on Windows
    STOP_SIGNALS[signal.SIGHUP] = "SIGHUP (the terminal closed)"


class StopNow(BaseException):
    """A second stop signal: leave at once, saving nothing more."""

    def __init__(self, signum):
        super().__init__(signum)
        self.signum = signum


class _State:
    requested = None    # the first stop signal received, or None
    saving = False      # a save is under way: let it finish
    installed = False   # for the whole process (python -m d2lrnn)
    at_once = False     # the first signal ends the process (commands with nothing to save)
    loaded = False      # the heavy imports are done (see _stop_now)
    writing = set()     # temporary files to remove if the process must end at once
    exit_note = staticmethod(lambda: "nothing was written")  # what is left then, in words


def _handle(signum, frame):
    name = STOP_SIGNALS.get(signum, f"signal {signum}")
    if _State.saving:
        _State.requested = _State.requested or signum
        print(f"\n{name}: finishing the save first, then stopping", file=sys.stderr, flush=True)
        return
    if _State.requested is None:
        _State.requested = signum
        print(f"\n{name}: stopping after this minibatch and saving (send it again to stop at once, without "
              "saving)", file=sys.stderr, flush=True)
        return
    if _State.installed:  # the command line's own process: leave at once (see _exit_now)
        _exit_now(signum)
    raise StopNow(signum)  # in a notebook or a test: the caller cleans up


def _stop_now(signum, frame):
    _State.requested = _State.requested or signum
    if _State.loaded:  # while imports run, wait for them (loaded() stops then)
        _exit_now(signum)


def _exit_now(signum):
    """Leave at once: remove the files being written, say why, exit with the signal's status.

    An exception raised from a signal handler is not reliable here: MXNet's own code catches everything
    in places (nd.array turns any exception into a TypeError) and Python drops one raised in __del__."""
    for path in list(_State.writing):
        with contextlib.suppress(OSError):
            os.unlink(path)
    try:
        note = _State.exit_note()
    except Exception:  # the note is a courtesy; leaving must not fail
        note = "the last save is kept"
    print(f"\nerror: stopped at once by {describe(signum)}: {note}", file=sys.stderr, flush=True)
    os._exit(exit_status(signum))


def set_exit_note(note):
    """note() says, when a signal ends the process at once, what is left (e.g. the last save)."""
    _State.exit_note = note


def loaded():
    """MXNet and the command line are imported: a stop signal that came meanwhile stops now."""
    _State.loaded = True
    if _State.at_once and _State.requested is not None:
        _exit_now(_State.requested)


@contextlib.contextmanager
def writing_file(path):
    """A temporary file being written: removed if a stop signal ends the process at once."""
    _State.writing.add(str(path))
    try:
        yield
    finally:
        _State.writing.discard(str(path))


def install(at_once=False):
    """Handle the stop signals for the rest of the process (the command line calls this first).

    at_once: for commands with nothing to save (generate, evaluate, compress), the first signal stops."""
    if threading.current_thread() is threading.main_thread():
        for signum in STOP_SIGNALS:
            signal.signal(signum, _stop_now if at_once else _handle)
        _State.installed, _State.at_once = True, at_once


@contextlib.contextmanager
def handling():
    """Handle the stop signals while a run trains (a no-op when install() already did for the process)."""
    if _State.installed or threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {signum: signal.signal(signum, _handle) for signum in STOP_SIGNALS}
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
        _State.requested = None


@contextlib.contextmanager
def saving():
    """A save that a signal must not cut short."""
    was, _State.saving = _State.saving, True
    try:
        yield
    finally:
        _State.saving = was


def requested():
    """The first stop signal received (a number), or None."""
    return _State.requested


def describe(signum):
    """'SIGTERM', 'Ctrl-C (SIGINT)', ..."""
    return STOP_SIGNALS.get(signum, f"signal {signum}")


def exit_status(signum):
    """The shell's convention: 128 + the signal's number (130 for Ctrl-C, 143 for SIGTERM, 129 for SIGHUP)."""
    return 128 + int(signum)
