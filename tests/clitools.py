"""What the CLI tests share: tiny settings, the one-error-line check, folder snapshots, a live process."""
import os
import re
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np

from d2lrnn.cli import main

ROOT = Path(__file__).resolve().parent.parent
MISTAKE, FAILED, INTERRUPTED, TERMINATED, HUNG_UP = 2, 1, 130, 143, 129  # the command line's exit statuses
TINY = ["--hidden", "16", "--steps", "8", "--batch-size", "4", "--lr", "10", "--clip", "0.1"]


def fails(capsys, argv, code=MISTAKE):
    """Run the CLI in-process; check the exit code, one `error:` line, no traceback; return (line, stderr)."""
    assert main(argv) == code
    err = capsys.readouterr().err
    assert "Traceback" not in err, err
    lines = [line for line in err.splitlines() if line.startswith("error:")]
    assert len(lines) == 1, err
    return lines[0], err


def not_trained(err, out):
    """The run stopped before its first minibatch: no training line, no epoch, nothing written in out."""
    assert not re.search(r"^training \S+ \(", err, re.M) and "epoch 1" not in err, err
    assert not (out / "history.csv").exists() and not (out / "checkpoint").exists()


def snapshot(folder):
    """Every file's bytes under a folder, by relative path."""
    return {p.relative_to(folder).as_posix(): p.read_bytes()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def leftovers(folder):
    """Hidden names a crash or a refused run could leave in a run folder."""
    return sorted(p.name for p in folder.iterdir() if p.name.startswith("."))


def finite(ckpt):
    """True when every weight of a loaded checkpoint is finite."""
    return all(np.isfinite(a.asnumpy()).all() for a in ckpt.model.param_arrays())


def q(path):
    """A path as the command line prints it in messages (quoted, as JSON writes strings)."""
    return '"' + str(path) + '"'


class Run:
    """A `python -m d2lrnn` subprocess whose output is read as it comes (so no pipe ever fills)."""

    def __init__(self, args, cwd, **env):
        env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1", **env}
        self.proc = subprocess.Popen([sys.executable, "-m", "d2lrnn", *args], cwd=cwd, env=env,
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self.out, self.err = [], []
        self.readers = [threading.Thread(target=self._read, args=(pipe, lines), daemon=True)
                        for pipe, lines in ((self.proc.stdout, self.out), (self.proc.stderr, self.err))]
        for reader in self.readers:
            reader.start()

    @staticmethod
    def _read(pipe, lines):
        for line in pipe:
            lines.append(line)

    def wait_for(self, pattern, lines=None, timeout=60):
        """Wait until a line matching pattern was printed on stderr (or `lines`); False if it ended first."""
        lines = self.err if lines is None else lines
        deadline = time.time() + timeout
        while time.time() < deadline:
            if any(re.search(pattern, line) for line in list(lines)):
                return True
            if self.proc.poll() is not None:
                return False
            time.sleep(0.01)
        return False

    def end(self, timeout=60):
        """Wait for the process (killing it if it outlives timeout); returns (exit status, stderr)."""
        try:
            self.proc.wait(timeout=timeout)
        finally:
            self.proc.kill()
            self.proc.wait()
            for reader in self.readers:
                reader.join(timeout=10)
        return self.proc.returncode, "".join(self.err)
