"""The bad-input and fault matrix: every mistake ends in one clear `error:` line, before training where it
can be found there, and never costs a trained model.

Each command-line case checks the exit status (2 for a mistake, as cli.main documents and test_cli pins;
1 when training diverges; 130 for Ctrl-C), the single `error:` line and what it names, that no traceback
was printed, and what the output folder holds afterwards. Cases already in test_cli.py are not repeated.
"""
import csv
import hashlib
import json
import math
import os
import re
import shutil
import signal
import time

import mxnet as mx
import numpy as np
import pytest

import d2lrnn
from d2lrnn.checkpoint import CheckpointError, load_checkpoint
from d2lrnn.cli import main

from clitools import TINY, Run, fails, finite, leftovers, not_trained, q, snapshot
from conftest import TINY_TEXT

DIVERGED = 1
BOOK = TINY_TEXT * 3  # 2,316 characters


@pytest.fixture
def book(tmp_path):
    path = tmp_path / "book.txt"
    path.write_text(BOOK, encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def _trained(tmp_path_factory):
    """One run folder trained once for the module (1 epoch, 200 characters held out, so it has best/)."""
    base = tmp_path_factory.mktemp("trained")
    (base / "book.txt").write_text(BOOK, encoding="utf-8")
    out = base / "run"
    assert main(["train", "--text", str(base / "book.txt"), "--out", str(out), "--epochs", "1",
                 "--val-chars", "200", *TINY]) == 0
    return out


@pytest.fixture
def good(_trained, tmp_path):
    """A fresh copy of the trained run folder for this test."""
    out = tmp_path / "good"
    shutil.copytree(_trained, out)
    return out


def resume_args(book, good, *extra):
    return ["train", "--text", str(book), "--resume", str(good), "--out", str(good), "--epochs", "1",
            "--val-chars", "200", *TINY, *extra]


# --- the output folder: refused before training ------------------------------------------------------

@pytest.mark.parametrize("where", ["/proc/x", "file", "file/sub"])
def test_unusable_out_is_refused_before_training(tmp_path, book, capsys, where):
    (tmp_path / "file").write_text("not a folder")
    out = where if where.startswith("/") else str(tmp_path / where)
    line, err = fails(capsys, ["train", "--text", str(book), "--out", out, "--epochs", "1", *TINY])
    assert f"--out {q(out)}" in line and "choose a folder" in line
    assert not re.search(r"^training \S+ \(", err, re.M)
    assert (tmp_path / "file").read_text() == "not a folder"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["book.txt", "file"]


@pytest.mark.skipif(os.geteuid() == 0, reason="root can write anywhere")
def test_unwritable_out_is_refused_before_training(tmp_path, book, capsys):
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    try:
        line, err = fails(capsys, ["train", "--text", str(book), "--out", str(locked / "run"),
                                   "--epochs", "1", *TINY])
        assert "--out" in line and "choose a folder" in line
        assert not re.search(r"^training \S+ \(", err, re.M) and list(locked.iterdir()) == []
    finally:
        locked.chmod(0o700)


def test_resume_into_another_trained_folder_is_refused(good, tmp_path, book, capsys):
    other = tmp_path / "other"
    shutil.copytree(good, other)
    before = snapshot(other)
    line, err = fails(capsys, ["train", "--text", str(book), "--resume", str(good), "--out", str(other),
                               "--epochs", "1", "--val-chars", "200", *TINY])
    assert "--overwrite" in line and q(other) in line
    assert not re.search(r"^training \S+ \(", err, re.M) and snapshot(other) == before


# --- lengths and hyperparameters: refused before training ---------------------------------------------

@pytest.mark.parametrize("extra,needle", [
    (["--val-chars", "10", "--steps", "35"], "--val-chars"),  # shorter than one window of 35 steps
    (["--val-chars", "5"], "--val-chars"),
    (["--val-chars", str(len(BOOK))], "--val-chars"),          # all of the text
    (["--val-chars", "100000"], "--val-chars"),
    (["--val-fraction", "1.5"], "--val-fraction"),
    (["--val-fraction", "0.001"], "--val-fraction"),
    (["--num-chars", "20"], "--num-chars"),                    # less than one minibatch
    (["--num-chars", "0"], "--num-chars"),
    (["--lr", "-1"], "--lr"),
    (["--lr", "nan"], "--lr"),
    (["--lr", "inf"], "--lr"),
    (["--lr", "1e300"], "--lr"),                               # finite, but not as MXNet's float32
    (["--clip", "0"], "--clip"),
    (["--clip", "nan"], "--clip"),
    (["--clip", "1e300"], "--clip"),
    (["--hidden", "0"], "--hidden"),
    (["--steps", "0"], "--steps"),
    (["--epochs", "0"], "--epochs"),
    (["--epochs", "-2"], "--epochs"),
    (["--minutes", "0"], "--minutes"),
    (["--minutes", "-1"], "--minutes"),
    (["--minutes", "nan"], "--minutes"),
    (["--minutes", "inf"], "--minutes"),
    (["--save-every", "0"], "--save-every"),
    (["--dropout", "1.5"], "--dropout"),
    (["--dropout", "nan"], "--dropout"),
    (["--layers", "0"], "--layers"),
    (["--embed", "-3"], "--embed"),
    (["--pred-len", "-1"], "--pred-len"),
    (["--threads", "0"], "--threads"),
    (["--epochs", "two"], "--epochs"),                         # argparse's own check, in one line
    (["--prefix", "жук"], "жук"),                              # not in the vocabulary
    (["--prefix", ""], "--prefix"),
])
def test_bad_settings_are_refused_before_training(tmp_path, book, capsys, extra, needle):
    out = tmp_path / "run"
    line, err = fails(capsys, ["train", "--text", str(book), "--out", str(out), "--epochs", "1",
                               *TINY, *extra])
    assert needle in line
    not_trained(err, out)
    assert not out.exists()  # a refused run leaves no folder behind


# --- the text -------------------------------------------------------------------------------------------

@pytest.mark.parametrize("kind,needle", [
    ("zero-bytes", "empty"), ("binary", "not UTF-8"), ("latin1", "not UTF-8"), ("short", "too short"),
    ("letters-remove-all", "empty after preprocessing (letters)"),
])
def test_bad_text_files(tmp_path, capsys, kind, needle):
    path, extra = tmp_path / "t.txt", []
    if kind == "zero-bytes":
        path.write_bytes(b"")
    elif kind == "binary":
        path.write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 20)
    elif kind == "latin1":
        path.write_bytes(("Été à Noël, déjà vu. " * 100).encode("latin-1"))
    elif kind == "short":
        path.write_text("tiny")
    else:  # homework 8's letters-only preprocessing leaves nothing of a Cyrillic text
        path.write_text("Жили-были дед да баба. " * 100, encoding="utf-8")
        extra = ["--preprocess", "letters"]
    out = tmp_path / "run"
    line, err = fails(capsys, ["train", "--text", str(path), "--out", str(out), "--epochs", "1",
                               *TINY, *extra])
    assert needle in line
    if kind in ("zero-bytes", "binary", "latin1"):
        assert q(path) in line
    if kind in ("binary", "latin1"):
        assert "iconv" in line  # says what to do
    not_trained(err, out)
    assert not out.exists()


@pytest.mark.parametrize("text", ["Жили-были дед да баба, и была у них курочка Ряба. " * 20,
                                  "床前明月光，疑是地上霜。举头望明月，低头思故乡。" * 30,
                                  "just letters and spaces here " * 40])
def test_any_script_trains_with_prefixes_from_the_text(tmp_path, capsys, text):
    path = tmp_path / "t.txt"
    path.write_text(text, encoding="utf-8")
    out = tmp_path / "run"
    assert main(["train", "--text", str(path), "--out", str(out), "--epochs", "1", *TINY]) == 0
    assert "Traceback" not in capsys.readouterr().err
    first_word = text.split()[0].lower()[:20]  # --text is read the lecture's way; at most 20 characters
    samples = (out / "samples.txt").read_text(encoding="utf-8")
    assert samples.startswith(first_word) and len(samples) > len(first_word) + 100
    ckpt = load_checkpoint(out, mx.cpu())
    assert finite(ckpt) and set(first_word) <= set(ckpt.idx_to_char)


def test_a_damaged_corpus_is_refused_before_training(tmp_path, capsys, monkeypatch):
    data = tmp_path / "data"
    data.mkdir()
    (data / "timemachine.txt").write_text("not the book " * 100)
    monkeypatch.setenv("D2LRNN_DATA_DIR", str(data))
    out = tmp_path / "run"
    line, err = fails(capsys, ["train", "--out", str(out), "--epochs", "1", *TINY])
    assert "sha1" in line and q(data / "timemachine.txt") in line and "Delete it" in line
    not_trained(err, out)
    assert (data / "timemachine.txt").read_text() == "not the book " * 100  # the user's file is left alone


# --- divergence -----------------------------------------------------------------------------------------

def test_resume_with_an_infinite_lr_is_refused_and_keeps_the_checkpoint(good, book, capsys):
    before = snapshot(good)
    line, err = fails(capsys, resume_args(book, good, "--lr", "inf"))
    assert "--lr" in line and "inf" in line
    not_trained(err, good / "nothing")
    assert snapshot(good) == before


@pytest.mark.parametrize("bad", [["--lr", "1e30", "--clip", "inf"], ["--lr", "1e6", "--clip", "inf"],
                                 ["--lr", "1e38", "--clip", "inf", "--save-every", "0.00001"],
                                 ["--lr", "1e38", "--clip", "inf"]])
def test_divergence_stops_and_keeps_the_good_checkpoint(good, book, capsys, bad):
    before = snapshot(good / "checkpoint")
    line, err = fails(capsys, resume_args(book, good, *bad, "--epochs", "3"), code=DIVERGED)
    value = re.search(r"the (loss became (\S+)|weights became)", line)
    assert re.search(r"diverged at epoch \d+", line) and value, line
    assert "Lower the learning rate or the clipping threshold" in line and "--lr" in line
    if value.group(2):  # the number is what it was: nan as nan, inf as inf, a finite overflow as a number
        loss = float(value.group(2))
        word = "not a number" if math.isnan(loss) else "infinite" if math.isinf(loss) else "overflows"
        assert word in line
    if "--save-every" not in bad:  # no save while diverging: the earlier checkpoint is untouched
        assert snapshot(good / "checkpoint") == before
    ckpt = load_checkpoint(good, mx.cpu())
    assert finite(ckpt)
    assert main(["generate", "--checkpoint", str(good), "--prefix", "the", "--length", "20"]) == 0
    assert len(capsys.readouterr().out.rstrip("\n")) == 23
    assert not leftovers(good)


@pytest.mark.parametrize("value,word", [(math.nan, "nan (not a number)"), (math.inf, "inf (infinite)"),
                                        (1e5, "100000 (so large")])
def test_non_finite_loss_is_reported_as_what_it_is(value, word):
    meter = d2lrnn.training.LossMeter(lag=0)
    with pytest.raises(d2lrnn.training.Diverged, match=re.escape(word)):
        meter.add(mx.nd.array([value]), 10)
    assert math.isnan(d2lrnn.training.perplexity(math.nan))


def test_weights_that_blow_up_before_the_loss_shows_it_are_never_saved(good):
    """The loss is read a few minibatches late: a save in between must refuse the weights, as a divergence."""
    from d2lrnn.config import TrainConfig
    from d2lrnn.job import Job, save
    from d2lrnn.runfolder import RunFolder

    ckpt = load_checkpoint(good, mx.cpu())
    before = snapshot(good)
    ckpt.model.param_arrays()[0][:] = np.inf
    job = Job(cfg=TrainConfig(out=str(good)), ctx=mx.cpu(), folder=RunFolder(good), split=None, prefixes=(),
              model=ckpt.model, optimizer=None, history=ckpt.history)
    with pytest.raises(d2lrnn.training.Diverged, match="at epoch 2, minibatch 5: the weights became NaN or "
                                                       "infinite"):
        save(job, position={"epochs_done": 1, "batch": 5})
    assert snapshot(good) == before


# --- folders left behind by a crash ---------------------------------------------------------------------

def test_stale_save_leftovers_do_not_block_the_next_save(good, book, capsys):
    (good / ".checkpoint-old").mkdir()
    (good / ".checkpoint-old" / "junk").write_text("x")
    for name in (".checkpoint-new-1234", ".best-new-99"):
        (good / name).mkdir()
        (good / name / "params.nd").write_bytes(b"half")
    for name in (".history.csv.tmp-77", ".samples.txt.tmp-77", ".write-test-77"):
        (good / name).write_text("half")
    assert main(resume_args(book, good)) == 0
    assert not leftovers(good)
    assert load_checkpoint(good, mx.cpu()).history.epochs_done() == 2


def test_a_kill_between_renames_is_recovered_and_not_deleted(good, book, capsys):
    shutil.rmtree(good / "best")
    os.rename(good / "checkpoint", good / ".checkpoint-old")  # what a kill between the two renames leaves
    before = snapshot(good)
    ckpt = load_checkpoint(good, mx.cpu())
    assert ckpt.history.epochs_done() == 1 and finite(ckpt)
    line, err = fails(capsys, ["train", "--text", str(book), "--out", str(good), "--epochs", "1", *TINY])
    assert "--overwrite" in line and "--resume" in line
    assert not re.search(r"^training \S+ \(", err, re.M) and snapshot(good) == before
    assert main(resume_args(book, good)) == 0  # resuming from it puts it back, then saves over it
    assert not leftovers(good) and load_checkpoint(good, mx.cpu()).history.epochs_done() == 2


def test_overwrite_replaces_a_displaced_checkpoint_cleanly(good, book, capsys):
    os.rename(good / "checkpoint", good / ".checkpoint-old")
    (good / ".checkpoint-new-4321").mkdir()
    assert main(["train", "--text", str(book), "--out", str(good), "--epochs", "1", "--overwrite",
                 *TINY]) == 0
    assert not leftovers(good) and load_checkpoint(good / "checkpoint", mx.cpu()).history.epochs_done() == 1


# --- damaged checkpoints --------------------------------------------------------------------------------

def _rewrite_manifest(folder):
    """Make the manifest match the (hand-edited) files, so the damage reaches the readers behind it.

    (Not for random bytes inside params.nd: MXNet's own reader may then try to allocate a huge array;
    the manifest is what stops such a file, see the "ff" case.)
    """
    manifest = json.loads((folder / "manifest.json").read_text())
    manifest["sha256"] = {n: hashlib.sha256((folder / n).read_bytes()).hexdigest()
                          for n in manifest["sha256"]}
    (folder / "manifest.json").write_text(json.dumps(manifest))


def _damage(ckpt, how):
    """Damage one file of a checkpoint folder; returns the name the error must give."""
    params = ckpt / "params.nd"
    data = bytearray(params.read_bytes())
    vocab = json.loads((ckpt / "vocab.json").read_text(encoding="utf-8"))
    if how in ("truncated", "truncated+manifest"):
        params.write_bytes(bytes(data[: len(data) // 2]))
    elif how == "emptied":
        params.write_bytes(b"")
    elif how in ("header", "header+manifest"):
        data[:8] = bytes(b ^ 0xFF for b in data[:8])
        params.write_bytes(bytes(data))
    elif how == "ff":
        data[-600:-200] = b"\xff" * 400
        params.write_bytes(bytes(data))
    elif how == "nan+manifest":
        mx.nd.save(str(params), {k: v * np.nan for k, v in mx.nd.load(str(params)).items()})
    elif how == "params-missing":
        params.unlink()
    elif how == "config":
        (ckpt / "config.json").write_text('{"hidden": 16,\n "bad\x01": 1}')
    elif how == "config-list+manifest":
        (ckpt / "config.json").write_text("[]")
    elif how == "vocab":
        (ckpt / "vocab.json").write_text("[1, 2")
    elif how == "vocab-dict+manifest":
        (ckpt / "vocab.json").write_text("{}")
    elif how == "vocab-numbers+manifest":
        (ckpt / "vocab.json").write_text(json.dumps(list(range(len(vocab)))))
    elif how == "vocab-repeated+manifest":
        (ckpt / "vocab.json").write_text(json.dumps(["a"] * len(vocab)))
    elif how == "history+manifest":
        (ckpt / "history.csv").write_bytes(b"epoch,perplexity\nx,\xff\n")
    elif how == "manifest-missing":
        (ckpt / "manifest.json").unlink()
    elif how == "manifest-damaged":
        (ckpt / "manifest.json").write_text("{nonsense")
    elif how == "manifest-outside":
        manifest = json.loads((ckpt / "manifest.json").read_text())
        manifest["sha256"]["../../book.txt"] = "0" * 64
        (ckpt / "manifest.json").write_text(json.dumps(manifest))
    if how.endswith("+manifest"):
        _rewrite_manifest(ckpt)
    file = how.split("+")[0].split("-")[0]
    return {"truncated": "params.nd", "emptied": "params.nd", "header": "params.nd", "ff": "params.nd",
            "nan": "params.nd", "params": "params.nd", "config": "config.json", "vocab": "vocab.json",
            "history": "history.csv", "manifest": "manifest.json"}[file]


DAMAGE = ["truncated", "emptied", "header", "ff", "params-missing", "config", "vocab", "manifest-missing",
          "manifest-damaged", "manifest-outside", "truncated+manifest", "header+manifest",
          "nan+manifest", "config-list+manifest", "vocab-dict+manifest", "vocab-numbers+manifest",
          "vocab-repeated+manifest", "history+manifest"]


@pytest.mark.parametrize("how", DAMAGE)
def test_damaged_checkpoint_names_the_file(good, book, capsys, how):
    shutil.rmtree(good / "best")  # generate would prefer best/: leave only the damaged checkpoint
    name = _damage(good / "checkpoint", how)
    damaged = snapshot(good)
    line, _ = fails(capsys, ["generate", "--checkpoint", str(good), "--prefix", "the"])
    assert str(good / "checkpoint") in line and name in line
    assert capsys.readouterr().out == ""
    more = good.parent / "more"
    line, err = fails(capsys, ["train", "--text", str(book), "--resume", str(good), "--out", str(more),
                               "--epochs", "1", *TINY])
    assert f"--resume {q(good)}" in line and name in line
    not_trained(err, more)
    assert not more.exists()
    with pytest.raises(CheckpointError, match=re.escape(name)):
        load_checkpoint(good, mx.cpu())
    assert snapshot(good) == damaged  # reading it changed nothing


def test_checkpoint_files_have_normal_permissions(tmp_path, book):
    old = os.umask(0o022)
    try:
        out = tmp_path / "run"
        assert main(["train", "--text", str(book), "--out", str(out), "--epochs", "1", "--val-chars", "200",
                     *TINY]) == 0
    finally:
        os.umask(old)
    for folder in (out, out / "checkpoint", out / "best"):
        assert folder.stat().st_mode & 0o755 == 0o755, folder
        for p in folder.iterdir():
            assert p.stat().st_mode & 0o044 == 0o044, p


# --- resuming ---------------------------------------------------------------------------------------

def test_resume_from_a_missing_folder(tmp_path, book, capsys):
    out = tmp_path / "run"
    line, err = fails(capsys, ["train", "--text", str(book), "--resume", str(tmp_path / "nowhere"),
                               "--out", str(out), *TINY])
    assert f"--resume {q(tmp_path / 'nowhere')}" in line and "no checkpoint" in line
    not_trained(err, out)
    assert not out.exists() and not (tmp_path / "nowhere").exists()


@pytest.mark.parametrize("extra,needle", [(["--hidden", "32"], "hidden=16"),
                                          (["--token", "word"], "token='char'"),
                                          (["--model", "rnn-bptt"], "model='rnn'"),
                                          (["--layers", "2"], "lecture's "
                                                              "cell")])  # refused before the checkpoint
def test_resume_with_another_model_is_refused(good, book, capsys, extra, needle):
    before = snapshot(good)
    line, err = fails(capsys, resume_args(book, good, *extra))
    assert needle in line and (f"--resume {q(good)}" in line or "--layers" in line)
    assert not re.search(r"^training \S+ \(", err, re.M) and snapshot(good) == before


def test_resume_with_a_longer_training_text_is_refused(good, book, capsys):
    before = snapshot(good)
    book.write_text(BOOK + "Zebras quickly jumped over XYZ.\n" * 10, encoding="utf-8")
    line, err = fails(capsys, resume_args(book, good))
    assert "vocabulary" in line and "--num-chars" in line
    assert not re.search(r"^training \S+ \(", err, re.M) and snapshot(good) == before


def test_history_columns_stay_aligned_when_held_out_settings_change(good, book, capsys):
    args = resume_args(book, good)
    no_val = [a for i, a in enumerate(args) if a != "--val-chars" and args[i - 1] != "--val-chars"]
    assert main(no_val) == 0  # this run holds nothing out
    assert main(args[:-len(TINY)] + ["--val-chars", "300", *TINY]) == 0  # and this one a different amount
    for path in (good / "history.csv", good / "checkpoint" / "history.csv"):
        rows = list(csv.reader(open(path)))
        assert len({len(r) for r in rows}) == 1, rows
        header, body = rows[0], rows[1:]
        assert header == ["epoch", "perplexity", "seconds", "val_perplexity"]
        assert [r[0] for r in body] == ["1", "2", "3"]
        assert float(body[0][3]) > 1 and body[1][3] == "" and float(body[2][3]) > 1
    assert load_checkpoint(good, mx.cpu()).history.val_perplexity[1] is None


# --- generate -------------------------------------------------------------------------------------

@pytest.mark.parametrize("extra,needle", [
    (["--seed", "-1"], "--seed"), (["--length", "many"], "--length"), (["--length", "-3"], "--length"),
    (["--temperature", "nan"], "--temperature"), (["--temperature", "inf"], "--temperature"),
    (["--temperature", "-1"], "--temperature"), (["--top-k", "0"], "--top-k"),
    (["--prefix", "ЖЖ"], "--prefix: prefix 'жж'"), (["--prefix", ""], "--prefix"),
])
def test_generate_bad_arguments(good, capsys, extra, needle):
    line, _ = fails(capsys, ["generate", "--checkpoint", str(good), "--prefix", "the", *extra])
    assert needle in line
    assert capsys.readouterr().out == ""


def test_generate_length_zero_prints_the_prefix(good, capsys):
    assert main(["generate", "--checkpoint", str(good), "--prefix", "the", "--length", "0"]) == 0
    assert capsys.readouterr().out == "the\n"


# --- the library's silent cases ---------------------------------------------------------------------

@pytest.fixture(scope="module")
def lecture():
    corpus, char_to_idx, idx_to_char, vocab = d2lrnn.corpus_from_text(BOOK, None)
    return corpus, char_to_idx, idx_to_char, vocab, d2lrnn.get_params(vocab, 8, mx.cpu())


@pytest.mark.parametrize("case,name", [
    ("corpus_from_text", "num_chars"), ("load_data_time_machine", "num_chars"), ("predict_rnn", "num_chars"),
    ("sample_rnn", "num_chars"), ("consecutive-batch", "batch_size"), ("random-batch", "batch_size"),
    ("consecutive-steps", "num_steps"), ("random-steps", "num_steps"), ("sample-temperature", "temperature"),
    ("sample-top-k", "top_k"), ("split_text", "val_chars"),
])
def test_library_refuses_silent_mistakes(lecture, case, name):
    corpus, char_to_idx, idx_to_char, vocab, params = lecture
    calls = {
        "corpus_from_text": lambda: d2lrnn.corpus_from_text("some text here", -5),
        "load_data_time_machine": lambda: d2lrnn.load_data_time_machine(num_chars=-1),
        "predict_rnn": lambda: d2lrnn.predict_rnn("the", -3, d2lrnn.rnn, params, d2lrnn.init_rnn_state, 8,
                                                  vocab, mx.cpu(), idx_to_char, char_to_idx),
        "sample_rnn": lambda: d2lrnn.sample_rnn("the", 2.5, d2lrnn.rnn, params, d2lrnn.init_rnn_state, 8,
                                                vocab, mx.cpu(), idx_to_char, char_to_idx),
        "consecutive-batch": lambda: next(d2lrnn.data_iter_consecutive(corpus, 0, 5)),
        "random-batch": lambda: next(d2lrnn.data_iter_random(corpus, 0, 5)),
        "consecutive-steps": lambda: next(d2lrnn.data_iter_consecutive(corpus, 2, -1)),
        "random-steps": lambda: next(d2lrnn.data_iter_random(corpus, 2, 0)),
        "sample-temperature": lambda: d2lrnn.sample_rnn("the", 5, d2lrnn.rnn, params, d2lrnn.init_rnn_state,
                                                        8, vocab, mx.cpu(), idx_to_char, char_to_idx,
                                                        temperature=math.nan),
        "sample-top-k": lambda: d2lrnn.sample_rnn("the", 5, d2lrnn.rnn, params, d2lrnn.init_rnn_state, 8,
                                                  vocab, mx.cpu(), idx_to_char, char_to_idx, top_k=0),
        "split_text": lambda: d2lrnn.data.split_text(BOOK, val_chars=-1),
    }
    with pytest.raises(ValueError, match=name):
        calls[case]()


# --- signals and kills (subprocesses) ---------------------------------------------------------------

@pytest.mark.slow
def test_sigkill_during_saves_never_leaves_an_unusable_checkpoint(tmp_path, book, capsys):
    """Kill a run that saves all the time at varied moments: what is left loads with finite weights (or
    there is nothing yet), and a --resume after it saves cleanly."""
    out = tmp_path / "run"
    common = ["--text", str(book), "--out", str(out), "--val-chars", "200", *TINY]
    loaded = 0
    for delay in [None, 0.02, 0.05, 0.09, 0.14, 0.22, 0.35, 0.6]:
        resuming = (out / "checkpoint").exists() or (out / ".checkpoint-old").exists()
        run = Run(["train", *common, "--epochs", "100000", "--save-every", "0.0005"]  # a save every 30 ms
                  + (["--resume", str(out)] if resuming else []), tmp_path)
        if delay is None:  # the first kill: while the program is still starting up, before any save
            time.sleep(0.5)
        else:              # once training (and so saving) has begun, somewhere among the saves
            assert run.wait_for(r"^training \S+ \("), "".join(run.err)
            time.sleep(0.1 + delay)
        assert run.proc.poll() is None, "".join(run.err)
        run.proc.send_signal(signal.SIGKILL)
        code, err = run.end()
        assert code == -signal.SIGKILL, err
        try:
            ckpt = load_checkpoint(out, mx.cpu())
        except CheckpointError as error:
            assert "no checkpoint" in str(error), error  # never a damaged one
            assert delay is None
            has = False
        else:
            assert finite(ckpt)
            loaded, has = loaded + 1, True
        mode = ["--resume", str(out)] if has else ["--overwrite"]
        assert main(["train", *common, "--epochs", "1"] + mode) == 0, capsys.readouterr().err
        assert not leftovers(out)
        assert finite(load_checkpoint(out, mx.cpu()))
    assert loaded == 7
