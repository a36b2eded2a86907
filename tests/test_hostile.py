"""The hostile-user matrix: each reproduction from the "trust every file" issue ends in one clear error or
a correct result, and the run folder is left as it should be (hashes of checkpoint/ and best/ compared)."""
import csv
import errno
import hashlib
import json
import math
import os
import re
import shutil
import signal
import subprocess
import sys
import time

import mxnet as mx
import pytest

from d2lrnn import checkpoint, runfolder
from d2lrnn.checkpoint import load_checkpoint
from d2lrnn.cli import main

from clitools import (
    FAILED,
    HUNG_UP,
    INTERRUPTED,
    ROOT,
    TERMINATED,
    TINY,
    Run,
    fails,
    finite,
    leftovers,
    not_trained,
    q,
    snapshot,
)
from conftest import TINY_TEXT

BOOK = TINY_TEXT * 3  # 2,316 characters
HELD = ["--val-chars", "200"]


@pytest.fixture
def book(tmp_path):
    path = tmp_path / "book.txt"
    path.write_text(BOOK, encoding="utf-8")
    return path


def train(book, out, *extra):
    return ["train", "--text", str(book), "--out", str(out), *TINY, *extra]


def held_out(folder):
    """The held-out perplexity best/ records, and evaluate's score of it (they must agree)."""
    return json.loads((folder / "best" / "config.json").read_text())["held_out"]["perplexity"]


def val_rows(out):
    return [float(r["val_perplexity"])
            for r in csv.DictReader(open(out / "history.csv")) if r["val_perplexity"]]


# --- the best model is kept ---------------------------------------------------------------------------

def test_resume_never_replaces_best_with_worse_weights(tmp_path, book, capsys):
    out = tmp_path / "run"
    assert main(train(book, out, *HELD, "--epochs", "2")) == 0
    best, before = held_out(out), snapshot(out / "best")
    assert main(train(book, out, *HELD, "--epochs", "1", "--resume", str(out), "--lr", "250")) == 0
    err = capsys.readouterr().err
    assert val_rows(out)[-1] > best  # the harmful epoch scored worse ...
    assert snapshot(out / "best") == before and "was not beaten" in err  # ... and best/ is untouched


def test_best_holds_the_lowest_score_across_runs_and_held_out_changes(tmp_path, book, capsys):
    """Any sequence of runs: best/ records the lowest held-out perplexity seen on its held-out text, and
    evaluate agrees; a run on other held-out text re-scores best/ before comparing."""
    out = tmp_path / "run"
    assert main(train(book, out, *HELD, "--epochs", "2")) == 0
    for lr in ("40", "300", "5"):
        assert main(train(book, out, *HELD, "--epochs", "1", "--resume", str(out), "--lr", lr)) == 0
        assert held_out(out) == pytest.approx(min(val_rows(out)))
    capsys.readouterr()
    assert main(train(book, out, "--val-chars", "300", "--epochs", "1", "--resume", str(out))) == 0
    assert "was scored on other held-out text" in capsys.readouterr().err
    assert main(["evaluate", "--checkpoint", str(out), "--json"]) == 0
    report = json.loads(capsys.readouterr().out.splitlines()[-1])
    assert report["perplexity"] == pytest.approx(held_out(out), rel=1e-6)


def test_overwrite_starts_a_clean_folder(tmp_path, book, capsys):
    out = tmp_path / "run"
    assert main(train(book, out, *HELD, "--epochs", "1")) == 0
    assert main(train(book, out, "--epochs", "1", "--model", "gru", "--overwrite")) == 0  # no held-out text
    assert not (out / "best").exists() and not leftovers(out)
    assert [r["epoch"] for r in csv.DictReader(open(out / "history.csv"))] == ["1"]
    capsys.readouterr()
    assert main(["generate", "--checkpoint", str(out), "--prefix", "the", "--length", "3"]) == 0
    assert q(out / "checkpoint") in capsys.readouterr().err  # not the old model's best/


def test_any_trained_artifact_makes_a_folder_trained(tmp_path, book, capsys):
    out = tmp_path / "run"
    assert main(train(book, out, *HELD, "--epochs", "1")) == 0
    shutil.rmtree(out / "checkpoint")
    before = snapshot(out)
    capsys.readouterr()
    line, err = fails(capsys, train(book, out, "--epochs", "1"))
    assert "already holds a trained model (best, history.csv" in line and "--overwrite" in line
    assert snapshot(out) == before


def test_a_diverged_overwrite_says_the_earlier_model_is_still_there(tmp_path, book, capsys):
    out = tmp_path / "run"
    assert main(train(book, out, "--epochs", "1")) == 0
    before = snapshot(out)
    capsys.readouterr()
    line, _ = fails(capsys, train(book, out, "--epochs", "3", "--overwrite", "--lr", "1e30", "--clip", "inf"),
                    code=FAILED)
    kept = f"nothing of this run was saved; {q(out)} still holds the earlier model"
    assert "diverged" in line and kept in line
    assert snapshot(out) == before


# --- saves that cannot be blocked -----------------------------------------------------------------------

@pytest.mark.parametrize("what", ["checkpoint-file", "checkpoint-symlink", "best-file"])
def test_something_else_at_a_checkpoint_name_is_refused_before_training(tmp_path, book, capsys, what):
    out = tmp_path / "run"
    assert main(train(book, out, *HELD, "--epochs", "1")) == 0
    name = what.split("-")[0]
    shutil.rmtree(out / name)
    if what.endswith("symlink"):
        (tmp_path / "elsewhere").mkdir()
        (out / name).symlink_to(tmp_path / "elsewhere")
    else:
        (out / name).write_text("not a checkpoint")
    before = snapshot(out)
    capsys.readouterr()
    line, err = fails(capsys, train(book, out, *HELD, "--epochs", "1", "--resume", str(out)))
    assert q(out / name) in line and "move it away" in line
    not_trained(err, tmp_path / "nothing")
    assert snapshot(out) == before


def test_stray_files_at_temporary_names_are_cleared(tmp_path, book, capsys):
    out = tmp_path / "run"
    assert main(train(book, out, *HELD, "--epochs", "1")) == 0
    (out / ".checkpoint-old").write_text("a stray file")
    (out / ".best-new-123").write_text("x")
    (out / ".checkpoint-new-9").symlink_to(tmp_path)
    assert main(train(book, out, *HELD, "--epochs", "1", "--resume", str(out))) == 0
    assert main(train(book, out, *HELD, "--epochs", "1", "--resume", str(out))) == 0
    assert not leftovers(out) and tmp_path.exists()  # the link went, not what it pointed to
    assert load_checkpoint(out / "checkpoint", mx.cpu()).history.epochs_done() == 3


@pytest.mark.slow
def test_a_second_writer_is_refused_while_the_first_trains(tmp_path, book, capsys):
    out = tmp_path / "run"
    first = Run(train(book, out, "--epochs", "100000"), tmp_path)
    try:
        assert first.wait_for(r"^training \S+ \("), "".join(first.err)
        line, err = fails(capsys, train(book, out, "--epochs", "1", "--overwrite"))
        assert f"is in use by another `d2lrnn train` (process {first.proc.pid})" in line
        not_trained(err, tmp_path / "nothing")
    finally:
        first.proc.send_signal(signal.SIGTERM)
        code, err = first.end()
    assert code == TERMINATED, err
    assert finite(load_checkpoint(out, mx.cpu())) and not leftovers(out)


@pytest.mark.parametrize("where", ["params", "history", "plot", "mxnet"])
def test_a_full_disk_is_one_line_and_keeps_the_previous_save(tmp_path, book, capsys, monkeypatch, where):
    out = tmp_path / "run"
    assert main(train(book, out, *HELD, "--epochs", "1")) == 0
    before = snapshot(out)
    capsys.readouterr()

    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    if where == "params":
        monkeypatch.setattr(checkpoint.Path, "write_text", full)
    elif where == "history":
        monkeypatch.setattr(checkpoint.History, "to_csv", full)
    elif where == "plot":
        monkeypatch.setattr("d2lrnn.job.save_perplexity_plot", full)
    else:
        def incomplete(*args, **kwargs):
            raise mx.base.MXNetError("Traceback:\n  File x\nMXNetError: FileStream.Write incomplete")
        monkeypatch.setattr(checkpoint.nd, "save", incomplete)
    line, err = fails(capsys, train(book, out, *HELD, "--epochs", "1", "--resume", str(out)), code=FAILED)
    assert line.startswith("error: cannot write") and ("No space left" in line or "Write incomplete" in line)
    assert "this run's" not in line and "is kept" in line
    assert snapshot(out) == before and not leftovers(out)  # the old save, its plot and history, whole


@pytest.mark.slow
@pytest.mark.skipif(os.geteuid() != 0 or not shutil.which("mount"), reason="mounting a tmpfs needs root")
def test_a_real_full_disk_at_many_fill_levels(tmp_path, book, capsys):
    """A 300 KB disk and models of growing size: each run either saves whole or ends in one `error:` line
    naming the file it could not write, exit 1, with no half-written leftovers."""
    disk = tmp_path / "disk"
    disk.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=300k", "tmpfs", str(disk)]).returncode:
        pytest.skip("this machine does not let us mount a tmpfs")
    outcomes = []
    try:
        for hidden in (60, 150, 200, 230, 250, 270, 300, 400):
            out = disk / f"run{hidden}"
            status = main(train(book, out, "--epochs", "1", "--hidden", str(hidden)))
            err = capsys.readouterr().err
            assert "Traceback" not in err and status in (0, FAILED), err
            if status == 0:
                assert finite(load_checkpoint(out, mx.cpu()))
            else:
                line = [x for x in err.splitlines() if x.startswith("error:")]
                assert len(line) == 1 and re.search(r"No space left on device|the disk is full", line[0])
                assert f"cannot write {q(out)[:-1]}/" in line[0] and "nothing was saved" in line[0]
                assert "-new-" not in line[0]  # the file it was writing for, not its temporary name
                assert not (out / "checkpoint").exists()
            assert not leftovers(out)
            outcomes.append(status)
            shutil.rmtree(out)
    finally:
        subprocess.run(["umount", str(disk)])
    assert 0 in outcomes and FAILED in outcomes


# --- checkpoints that pass the manifest but are wrong ------------------------------------------------

def _edit_config(folder, **changes):
    config = json.loads((folder / "config.json").read_text())
    config.update(changes)
    (folder / "config.json").write_text(json.dumps(config))
    manifest = json.loads((folder / "manifest.json").read_text())
    manifest["sha256"] = {n: hashlib.sha256((folder / n).read_bytes()).hexdigest()
                          for n in manifest["sha256"]}
    (folder / "manifest.json").write_text(json.dumps(manifest))


@pytest.fixture(scope="module")
def _trained(tmp_path_factory):
    base = tmp_path_factory.mktemp("trained")
    (base / "book.txt").write_text(BOOK, encoding="utf-8")
    assert main(train(base / "book.txt", base / "run", *HELD, "--epochs", "1")) == 0
    return base / "run"


@pytest.mark.parametrize("field,value", [
    ("steps", 0), ("steps", -5), ("steps", "8"), ("corpus", "bogus"), ("preprocess", "bogus"),
    ("hidden", 16.0), ("hidden", True), ("position", "x"), ("position", [1]),
    ("position", {"epochs_done": 1, "batch": 1e9}),
    ("model", "transformer"), ("lr", "fast"), ("val_fraction", 2), ("prefix", [3]), ("format", 99),
    ("held_out", {"sha256": 1}),
])
def test_a_hand_edited_config_names_the_file_and_field(_trained, tmp_path, book, capsys, field, value):
    run = tmp_path / "run"
    shutil.copytree(_trained, run)
    shutil.rmtree(run / "best")
    _edit_config(run / "checkpoint", **{field: value})
    where = str(run / "checkpoint" / "config.json")
    for argv in (["generate", "--checkpoint", str(run), "--prefix", "the"],
                 ["evaluate", "--checkpoint", str(run)],
                 train(book, tmp_path / "more", *HELD, "--epochs", "1", "--resume", str(run))):
        line, _ = fails(capsys, argv)
        assert where in line and (repr(field) in line or f"format {value!r}" in line), line


def test_a_resume_position_beyond_the_epoch_is_refused(_trained, tmp_path, book, capsys):
    run = tmp_path / "run"
    shutil.copytree(_trained, run)
    _edit_config(run / "checkpoint", position={"epochs_done": 1, "batch": 10 ** 9})
    before = snapshot(run)
    capsys.readouterr()
    line, err = fails(capsys, train(book, run, *HELD, "--epochs", "1", "--resume", str(run)))
    assert "stopped after minibatch 1,000,000,000 of an epoch" in line
    not_trained(err, tmp_path / "nothing")
    assert snapshot(run) == before


# --- numbers that are absurd but finite -------------------------------------------------------------

@pytest.mark.parametrize("extra,needle", [
    (["--threads", "²"], "--threads"), (["--threads", "3000000000"], "--threads"),
    (["--threads", "100000"], "--threads"), (["--threads", "999"], "--threads"),
    (["--lr", "1e-45"], "--lr"), (["--seed", "4294967296"], "--seed"), (["--seed", "-1"], "--seed"),
    (["--hidden", "10000000"], "--hidden"), (["--embed", "100000000", "--model", "rnn-bptt"], "--embed"),
    (["--hidden", "900000", "--model", "gluon-lstm"], "MXNet's limit"),
    (["--batch-size", "900000", "--steps", "2"], "--batch-size"), (["--epochs", str(2 ** 40)], "--epochs"),
    (["--minutes", "1e300"], "--minutes"), (["--pred-len", "10000000"], "--pred-len"),
    (["--layers", "2"], "the lecture's cell"),
])
def test_absurd_numbers_are_refused_before_anything_is_allocated(tmp_path, book, capsys, extra, needle):
    start = time.time()
    line, err = fails(capsys, train(book, tmp_path / "run", "--epochs", "1", *extra))
    assert needle in line and time.time() - start < 10
    not_trained(err, tmp_path / "run")
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("command,extra,needle", [
    ("evaluate", ["--steps", "-5"], "--steps"), ("evaluate", ["--batch-size", "0"], "--batch-size"),
    ("evaluate", ["--batch-size", "-3"], "--batch-size"),
    ("generate", ["--length", str(10 ** 9)], "--length"), ("generate", ["--seed", str(2 ** 32)], "--seed"),
    ("evaluate", ["--text", "x.txt", "--corpus", "timemachine"], "not allowed with argument"),
])
def test_bad_numbers_for_generate_and_evaluate(_trained, capsys, command, extra, needle):
    prefix = ["--prefix", "the"] if command == "generate" else []
    line, _ = fails(capsys, [command, "--checkpoint", str(_trained), *prefix, *extra])
    assert needle in line


# --- messages and small silent results ---------------------------------------------------------------

def test_a_path_with_a_newline_stays_on_one_line(tmp_path, book, capsys):
    line, err = fails(capsys, train(book, "/proc/x\nerror: fake", "--epochs", "1"))
    assert '"/proc/x\\nerror: fake"' in line and len(err.splitlines()) == 1  # escaped, inside quotes


def test_text_from_a_pipe_trains(tmp_path, capsys):
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    writer = subprocess.Popen(["sh", "-c", f"cat > '{fifo}'"], stdin=subprocess.PIPE)
    writer.stdin.write(BOOK.encode())
    writer.stdin.close()
    try:
        assert main(["train", "--text", str(fifo), "--out", str(tmp_path / "run"), "--epochs", "1",
                     *TINY]) == 0
    finally:
        writer.wait(timeout=10)


def test_a_byte_order_mark_is_not_a_token(tmp_path, capsys):
    path = tmp_path / "bom.txt"
    path.write_bytes("\ufeff".encode() + BOOK.encode())
    out = tmp_path / "run"
    assert main(["train", "--text", str(path), "--out", str(out), "--epochs", "1", *TINY]) == 0
    assert "\ufeff" not in json.loads((out / "checkpoint" / "vocab.json").read_text())
    assert not (out / "samples.txt").read_text(encoding="utf-8").startswith("\ufeff")


def test_a_tiny_time_budget_gives_a_real_number(tmp_path, book, capsys):
    out = tmp_path / "run"
    assert main(train(book, out, *HELD, "--minutes", "0.00001")) == 0
    err = capsys.readouterr().err
    assert "nan" not in err
    rows = list(csv.DictReader(open(out / "history.csv")))
    assert len(rows) == 1 and 0 < float(rows[0]["epoch"]) < 1 and math.isfinite(float(rows[0]["perplexity"]))


@pytest.mark.parametrize("kind", ["symlink", "device", "exists"])
def test_compress_never_replaces_what_is_not_its_own(_trained, tmp_path, capsys, kind):
    pytest.importorskip("constriction")
    source = tmp_path / "in.txt"
    source.write_text("the time traveller " * 20)
    target = tmp_path / "out.z"
    if kind == "symlink":
        (tmp_path / "precious").write_text("keep")
        target.symlink_to(tmp_path / "precious")
    elif kind == "exists":
        target.write_text("keep")
    else:
        target = "/dev/null"
    line, _ = fails(capsys, ["compress", "--checkpoint", str(_trained), str(source), str(target)])
    assert q(target) in line
    if kind == "exists":
        assert "--force" in line and target.read_text() == "keep"
        assert main(["compress", "--checkpoint", str(_trained), str(source), str(target), "--force"]) == 0
    if kind == "symlink":
        assert (tmp_path / "precious").read_text() == "keep"


def test_compress_an_empty_file(_trained, tmp_path, capsys):
    pytest.importorskip("constriction")
    (tmp_path / "empty.txt").write_bytes(b"")
    assert main(["compress", "--checkpoint", str(_trained), str(tmp_path / "empty.txt"),
                 str(tmp_path / "e.z")]) == 0
    assert "the header only" in capsys.readouterr().err
    assert main(["decompress", "--checkpoint", str(_trained), str(tmp_path / "e.z"),
                 str(tmp_path / "back")]) == 0
    assert (tmp_path / "back").read_bytes() == b""


def test_compress_lanes_are_bounded(_trained, tmp_path, capsys):
    (tmp_path / "in.txt").write_text("abc")
    line, _ = fails(capsys, ["compress", "--checkpoint", str(_trained), "--lanes", "1000000000",
                             str(tmp_path / "in.txt"), str(tmp_path / "o")])
    assert "--lanes" in line and not (tmp_path / "o").exists()


# --- signals -------------------------------------------------------------------------------------------

@pytest.mark.slow
@pytest.mark.parametrize("signum,code,name", [(signal.SIGINT, INTERRUPTED, "Ctrl-C (SIGINT)"),
                                              (signal.SIGTERM, TERMINATED, "SIGTERM"),
                                              (signal.SIGHUP, HUNG_UP, "SIGHUP (the terminal closed)")])
def test_stop_signals_save_and_say_where(tmp_path, book, signum, code, name):
    out = tmp_path / "run"
    run = Run(train(book, out, *HELD, "--epochs", "100000", "--pred-period", "1", "--pred-len", "5"),
              tmp_path)
    assert run.wait_for(r"^epoch 2,", run.out), "".join(run.err)
    run.proc.send_signal(signum)
    status, err = run.end()
    assert status == code, err
    assert "Traceback" not in err and "error:" not in err
    assert re.search(rf"stopped by {re.escape(name)} (in epoch \d+ after minibatch \d+|after epoch \d+): "
                     rf"saved {re.escape(str(out))}/checkpoint; "
                     rf"continue with --resume {re.escape(q(out))}", err), err
    ckpt = load_checkpoint(out, mx.cpu())
    assert finite(ckpt) and ckpt.history.epochs_done() >= 2 and not leftovers(out)


@pytest.mark.slow
def test_a_signal_while_mxnet_loads_is_not_lost(tmp_path, book):
    out = tmp_path / "run"
    run = Run(train(book, out, "--epochs", "100000"), tmp_path)
    time.sleep(0.3)  # python has started; MXNet takes seconds to load
    run.proc.send_signal(signal.SIGINT)
    status, err = run.end()
    assert status == INTERRUPTED and "Traceback" not in err, err
    assert "before training started: nothing was written" in err and not out.exists()


def test_a_second_signal_during_a_save_lets_the_save_finish(tmp_path, book, capsys, monkeypatch):
    out = tmp_path / "run"
    real, sent = runfolder.RunFolder.publish, []

    def publish(self, **kwargs):
        if not sent:  # the first periodic save: two signals arrive while it writes
            sent.append(True)
            os.kill(os.getpid(), signal.SIGTERM)
            os.kill(os.getpid(), signal.SIGTERM)
        return real(self, **kwargs)

    monkeypatch.setattr(runfolder.RunFolder, "publish", publish)
    assert main(train(book, out, *HELD, "--epochs", "100000", "--save-every", "0.00001")) == TERMINATED
    err = capsys.readouterr().err
    assert err.count("SIGTERM: finishing the save first, then stopping") == 2 and "Traceback" not in err
    assert re.search(r"stopped by SIGTERM in epoch 1 after minibatch \d+", err), err
    assert finite(load_checkpoint(out, mx.cpu())) and not leftovers(out)


@pytest.mark.slow  # a subprocess
def test_module_runs_without_mxnet_until_needed():
    """`import d2lrnn` and the colab module load nothing heavy (so the CLI can handle signals early)."""
    code = ("import sys, d2lrnn, d2lrnn.colab, d2lrnn.signals; "
            "print('mxnet' in sys.modules, 'numpy' in sys.modules)")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.stdout.split() == ["False", "False"], proc.stderr


# --- a second hostile pass: paths, the environment, things in the way, untrusted rows -------------------

def test_dot_and_root_name_checkpoints_without_a_traceback(_trained, capsys, monkeypatch):
    monkeypatch.chdir(_trained / "checkpoint")
    assert main(["generate", "--checkpoint", ".", "--prefix", "the", "--length", "5"]) == 0
    monkeypatch.chdir(_trained)
    assert main(["evaluate", "--checkpoint", "."]) == 0
    line, _ = fails(capsys, ["evaluate", "--checkpoint", "/"])
    assert line.startswith('error: no checkpoint in "/"'), line


def test_out_that_is_a_checkpoint_folder_is_refused(_trained, tmp_path, book, capsys):
    run = tmp_path / "run"
    shutil.copytree(_trained, run)
    before = snapshot(run)
    line, err = fails(capsys, train(book, run / "checkpoint", *HELD, "--epochs", "1", "--resume",
                                    str(run / "checkpoint")))
    assert "is a checkpoint folder" in line
    assert snapshot(run) == before


@pytest.mark.parametrize("name", runfolder.FILES)
def test_a_folder_in_place_of_an_output_file_is_refused_first(_trained, tmp_path, book, capsys, name):
    run = tmp_path / "run"
    shutil.copytree(_trained, run)
    (run / name).unlink()
    (run / name).mkdir()
    before = snapshot(run)
    line, err = fails(capsys, train(book, run, *HELD, "--epochs", "1", "--resume", str(run)))
    assert f"{q(run / name)} is not a file" in line
    assert "epoch" not in err and snapshot(run) == before


def test_a_symlink_at_the_lock_never_writes_through(tmp_path, book, capsys):
    out, precious = tmp_path / "run", tmp_path / "precious.txt"
    precious.write_text("keep me")
    out.mkdir()
    (out / ".lock").symlink_to(precious)
    line, _ = fails(capsys, train(book, out, "--epochs", "1"))
    assert q(out / ".lock") in line and precious.read_text() == "keep me"


def test_matplotlib_that_cannot_draw_is_found_before_training(tmp_path, book, capsys, monkeypatch):
    import matplotlib.figure

    def broken(*args, **kwargs):
        raise ValueError("Key backend: 'bogus' is not a valid value for backend")

    monkeypatch.setattr(matplotlib.figure.Figure, "savefig", broken)
    line, err = fails(capsys, train(book, tmp_path / "run", "--epochs", "1"))
    assert "matplotlib cannot draw the perplexity curve" in line and "MPLBACKEND" in line
    not_trained(err, tmp_path / "run")


@pytest.mark.parametrize("extra,needle", [
    (["--prefix", "a" * 5000], "4,096 characters"), (["--prefix", "a"] * 17, "at most 16 prefixes"),
])
def test_prefixes_are_bounded_so_the_config_stays_readable(tmp_path, book, capsys, extra, needle):
    line, err = fails(capsys, train(book, tmp_path / "run", "--epochs", "1", *extra))
    assert "--prefix" in line and needle in line
    not_trained(err, tmp_path / "run")


@pytest.mark.parametrize("option,value,needle", [
    ("--out", "", "an empty path"), ("--text", "", "an empty path"), ("--resume", "", "an empty path"),
    ("--out", "run\udcff", "not valid UTF-8"), ("--out", "o" * 300, "over 200 bytes"),
    ("--text", "t" * 300, "over 200 bytes"),
])
def test_paths_that_cannot_work_are_refused_first(tmp_path, book, capsys, monkeypatch, option, value, needle):
    monkeypatch.chdir(tmp_path)
    argv = train(book, tmp_path / "run", "--epochs", "1") + [option, value]  # the last one given wins
    line, _ = fails(capsys, argv)
    assert f"argument {option}" in line and needle in line
    assert sorted(p.name for p in tmp_path.iterdir()) == ["book.txt"]


def test_checkpoint_paths_that_cannot_work_are_refused(capsys):
    for argv in (["generate", "--checkpoint", "c" * 300, "--prefix", "a"], ["evaluate", "--checkpoint", ""],
                 ["compress", "--checkpoint", "x", "in.txt", "o" * 250 + ".cz"]):
        line, _ = fails(capsys, argv)
        assert "an empty path" in line or "over 200 bytes" in line, line


@pytest.mark.parametrize("row,needle", [
    ("inf,16.6,0.3,12.4", "out of range"), ("1e300,16.6,0.3,12.4", "out of range"),
    ("1,nan,0.3,12.4", "out of range"), ("1,16.6,0.3,-1", "out of range"),
])
def test_an_edited_history_with_impossible_rows_is_damaged(_trained, tmp_path, capsys, row, needle):
    run = tmp_path / "run"
    shutil.copytree(_trained, run)
    shutil.rmtree(run / "best")
    (run / "checkpoint" / "history.csv").write_text(f"epoch,perplexity,seconds,val_perplexity\n{row}\n")
    _edit_config(run / "checkpoint")  # re-hashed, as another tool might
    line, _ = fails(capsys, ["generate", "--checkpoint", str(run), "--prefix", "the"])
    assert "history.csv" in line and "damaged" in line and needle in line


def test_unnamed_arrays_in_the_params_file_are_refused(_trained, tmp_path, capsys):
    run = tmp_path / "run"
    shutil.copytree(_trained, run)
    shutil.rmtree(run / "best")
    params = run / "checkpoint" / "params.nd"
    mx.nd.save(str(params), list(mx.nd.load(str(params)).values()))
    _edit_config(run / "checkpoint")
    line, _ = fails(capsys, ["evaluate", "--checkpoint", str(run)])
    assert "params.nd" in line and "unnamed arrays" in line


def test_environment_settings_that_abort_mxnet_are_named():
    from d2lrnn.__main__ import environment_problem

    for env in ({"OMP_NUM_THREADS": "abc"}, {"OMP_NUM_THREADS": "4,2"}, {"OMP_NUM_THREADS": "100000"},
                {"MXNET_OMP_MAX_THREADS": "1.5"}, {"MXNET_CPU_WORKER_NTHREADS": "0"},
                {"MXNET_ENGINE_TYPE": "Bogus"}, {"MXNET_ENGINE_TYPE": ""}):
        problem = environment_problem(env)
        assert problem and problem.startswith(next(iter(env))), (env, problem)
    for env in ({}, {"OMP_NUM_THREADS": "2"}, {"OMP_NUM_THREADS": ""}, {"OMP_NUM_THREADS": " 1 "},
                {"MXNET_ENGINE_TYPE": "NaiveEngine"}, {"MXNET_CPU_WORKER_NTHREADS": "1"}):
        assert environment_problem(env) is None, env


@pytest.mark.slow  # subprocesses
def test_the_command_line_refuses_such_settings_before_mxnet_aborts(tmp_path, book):
    for env in ({"OMP_NUM_THREADS": "abc"}, {"MXNET_ENGINE_TYPE": "Bogus"}):
        run = Run(["--help"], tmp_path, **env)
        status, err = run.end()
        assert status == 2 and err.startswith(f"error: {next(iter(env))}=") and "terminate" not in err, err
    run = Run(train(book, tmp_path / "run", "--epochs", "1"), tmp_path, MPLBACKEND="bogus")
    status, err = run.end()
    assert status == 2 and "matplotlib cannot draw" in err and "Traceback" not in err, err
    assert not (tmp_path / "run").exists()


@pytest.mark.slow  # subprocesses
def test_commands_that_save_nothing_stop_at_the_first_signal(_trained, tmp_path):
    pipe = tmp_path / "in.fifo"
    os.mkfifo(pipe)  # no writer: compress waits for its input until the signal comes
    compress = ["compress", "--checkpoint", str(_trained), str(pipe), "big.cz"]
    generate = ["generate", "--checkpoint", str(_trained), "--prefix", "the", "--length", "1000000"]
    for argv, output in ((compress, tmp_path / "big.cz"), (generate, None)):
        run = Run(argv, tmp_path)
        time.sleep(3)
        run.proc.send_signal(signal.SIGTERM)
        status, err = run.end()
        assert status == TERMINATED and "stopped at once by SIGTERM" in err and "Traceback" not in err, err
        assert output is None or not output.exists()
        assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]
        assert run.proc.returncode == TERMINATED


@pytest.mark.slow  # a subprocess
def test_a_reader_that_leaves_early_is_no_traceback(_trained, tmp_path):
    argv = ["generate", "--checkpoint", str(_trained), "--prefix", "the", "--length", "2000"]
    proc = subprocess.Popen([sys.executable, "-m", "d2lrnn", *argv], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, env={**os.environ, "PYTHONPATH": str(ROOT)})
    proc.stdout.close()  # the reader is gone before the text comes, as with `| head -c 0`
    err = proc.stderr.read().decode()
    assert proc.wait() == 141 and "Traceback" not in err, err


def test_evaluate_names_a_training_text_that_is_not_there(tmp_path, capsys, monkeypatch):
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "book.txt").write_text(BOOK, encoding="utf-8")
    monkeypatch.chdir(tmp_path / "a")
    assert main(["train", "--text", "book.txt", "--out", "run", *TINY, *HELD, "--epochs", "1"]) == 0
    monkeypatch.chdir(tmp_path)  # the relative name no longer finds the text
    capsys.readouterr()
    line, _ = fails(capsys, ["evaluate", "--checkpoint", "a/run", "--split", "all"])
    assert line == ('error: text file not found: "book.txt" (the text the checkpoint was trained on, as it '
                    'was named then): give it with --text')
    assert main(["evaluate", "--checkpoint", "a/run", "--text", "a/book.txt", "--split", "all"]) == 0


def test_a_data_dir_that_is_not_a_folder_is_named(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("D2LRNN_DATA_DIR", str(tmp_path / "book.txt"))
    (tmp_path / "book.txt").write_text(BOOK)
    line, _ = fails(capsys, ["train", "--out", str(tmp_path / "run"), *TINY, "--epochs", "1"])
    assert "D2LRNN_DATA_DIR=" in line and "is not a folder" in line


@pytest.mark.slow  # a subprocess
def test_a_second_signal_outside_a_save_ends_training_at_once(tmp_path):
    book = tmp_path / "book.txt"
    book.write_text(BOOK * 20, encoding="utf-8")
    out = tmp_path / "run"
    slow = ["--hidden", "1024", "--steps", "100", "--batch-size", "32"]  # minibatches of tenths of a second
    run = Run(["train", "--text", str(book), "--out", str(out), *slow, "--epochs", "1000"], tmp_path)
    assert run.wait_for(r"^training rnn"), "".join(run.err)
    time.sleep(1)
    run.proc.send_signal(signal.SIGINT)
    assert run.wait_for("stopping after this minibatch"), "".join(run.err)
    run.proc.send_signal(signal.SIGINT)
    status, err = run.end()
    assert status == INTERRUPTED and "Traceback" not in err, err
    assert "error: stopped at once by Ctrl-C (SIGINT): nothing was saved" in err, err
    assert not (out / "checkpoint").exists()
