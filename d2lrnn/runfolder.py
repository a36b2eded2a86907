"""The main job's output folder: one writer at a time, everything a save writes published together.

A run folder holds `checkpoint/` (the last weights, to resume), `best/` (the weights with the lowest
held-out perplexity), `history.csv`, `perplexity.png` and `samples.txt`. `train` holds an OS lock on
`.lock` while it runs, so a second writer is refused at once (readers need no lock). A save first
writes every new file and folder under a temporary name (a full disk or a missing permission fails
there, and nothing is replaced), then renames them into place.
"""
import os
import stat
from pathlib import Path

from .checkpoint import (
    MANIFEST_FILE,
    SaveError,
    clean_leftovers,
    fsync,
    remove,
    swap_in,
    write_checkpoint,
    writing,
)
from .utils import UserError, quoted

try:
    import fcntl
except ImportError:  # Windows: MXNet 1.9.1 has no wheels there; runs go unlocked
    fcntl = None

FOLDERS = ("checkpoint", "best")
FILES = ("history.csv", "perplexity.png", "samples.txt")
LOCK_FILE = ".lock"


class RunFolder:
    """A run's output folder (see the module's docstring)."""

    def __init__(self, path):
        self.path = Path(path)
        self._lock, self._created = None, []

    def trained(self):
        """The names of what a trained run left here (any of them makes the folder a trained one)."""
        found = [n for n in FOLDERS + FILES if (self.path / n).exists() or (self.path / n).is_symlink()]
        return found + [f".{name}-old" for name in FOLDERS if (self.path / f".{name}-old").is_dir()]

    def lock(self):
        """Take the folder for this process; a second writer gets an error naming the one that holds it."""
        lock_path = self.path / LOCK_FILE
        if (self.path / MANIFEST_FILE).exists():
            raise UserError(f"--out {quoted(self.path)} is a checkpoint folder (it holds {MANIFEST_FILE}): "
                            "give --out the run folder around it, or another folder")
        self._created = [p for p in [self.path, *self.path.parents] if not p.exists()]
        try:
            self.path.mkdir(parents=True, exist_ok=True)
            fd = os.open(lock_path, os.O_RDWR | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0), 0o644)
        except OSError as err:
            if lock_path.is_symlink() or lock_path.is_dir():
                raise UserError(f"{quoted(lock_path)} is not a lock file d2lrnn made: remove it or choose "
                                "another --out") from None
            raise UserError(f"--out {quoted(self.path)}: cannot write there ({err.strerror or err}); choose "
                            "a folder you can write to") from None
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            os.close(fd)
            raise UserError(f"{quoted(lock_path)} is not a regular file: remove it or choose another --out")
        if fcntl is not None:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                holder = os.read(fd, 64).decode("ascii", "replace").strip() or "another process"
                os.close(fd)
                raise UserError(f"{quoted(self.path)} is in use by another `d2lrnn train` (process {holder}"
                                "); wait for it to finish, stop it, or choose another --out") from None
            if not lock_path.exists() or os.stat(lock_path).st_ino != os.fstat(fd).st_ino:
                os.close(fd)  # the holder removed that file as it finished: lock the new one
                return self.lock()
        os.ftruncate(fd, 0)
        os.write(fd, str(os.getpid()).encode())
        self._lock = fd
        return self

    def unlock(self):
        """Let another writer in (the lock also ends with the process); the lock file goes too."""
        if self._lock is not None:
            (self.path / LOCK_FILE).unlink(missing_ok=True)
            os.close(self._lock)
            self._lock = None

    def abandon(self):
        """Unlock a folder nothing was saved in; remove it and the folders lock() made if they are empty."""
        self.unlock()
        try:
            for folder in self._created:
                folder.rmdir()
        except OSError:
            pass

    def check_writable(self):
        """Make sure a save can go ahead: real folders at checkpoint/ and best/, leftovers of crashes gone."""
        for name in FOLDERS:
            path = self.path / name
            if path.is_symlink() or (path.exists() and not path.is_dir()):
                what = "a symbolic link" if path.is_symlink() else "a file"
                raise UserError(f"{quoted(path)} is {what}, not a checkpoint folder d2lrnn wrote: move it "
                                "away or choose another --out")
            clean_leftovers(path)
        for name in FILES:
            path = self.path / name
            if path.exists() and not path.is_file():
                raise UserError(f"{quoted(path)} is not a file (a folder or a device?): d2lrnn writes its "
                                f"{name} there; move it away or choose another --out")
        for stale in [*self.path.glob(".*.tmp-*"), *self.path.glob(".write-test-*")]:
            remove(stale)
        probe = self.path / f".write-test-{os.getpid()}"
        try:
            probe.write_bytes(b"d2lrnn")
            probe.unlink()
        except OSError as err:
            raise UserError(f"--out {quoted(self.path)}: cannot write there ({err.strerror or err}); choose "
                            "a folder you can write to") from None

    def publish(self, *, checkpoint=None, best=None, files=None, fresh=False):
        """Write everything given, then put it all in place; on a failed write nothing here changes.

        checkpoint and best are write_checkpoint's keyword arguments (model, idx_to_char, config, ...);
        files maps a file name to a function that writes it to a path. fresh removes what an earlier
        run left (best/, the curves, the samples) in the same step, so nothing of it outlives the swap.
        """
        staged, pid = [], os.getpid()
        try:
            for name, spec in (("checkpoint", checkpoint), ("best", best)):
                if spec is not None:
                    new = write_checkpoint(self.path / f".{name}-new-{pid}", shown=self.path / name, **spec)
                    staged.append((new, self.path / name))
            for name, write in (files or {}).items():
                tmp = self.path / f".{name}.tmp-{pid}"
                with writing(self.path / name):
                    write(tmp)
                    fsync(tmp)
                staged.append((tmp, self.path / name))
        except BaseException:
            for tmp, _ in staged:
                remove(tmp)
            for leftover in self.path.glob(f".*-new-{pid}"):
                remove(leftover)
            for leftover in self.path.glob(f".*.tmp-{pid}"):
                remove(leftover)
            raise
        with writing(self.path):
            if fresh:  # best/ first: an earlier model must never sit beside a new checkpoint
                for name in ("best",) + FILES:
                    if all(final.name != name for _, final in staged):
                        remove(self.path / name)
            for tmp, final in staged:
                if tmp.is_dir():
                    swap_in(tmp, final)
                else:
                    os.replace(tmp, final)
            fsync(self.path)


__all__ = ["RunFolder", "SaveError"]
