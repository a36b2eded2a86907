"""The command line end to end on tiny text: outputs, checkpoint, generate, resume and every error."""
import csv
import json
import os
import re
import subprocess
import sys

import pytest

from d2lrnn.cli import main
from conftest import TINY_TEXT

FAST = ["--epochs", "2", "--hidden", "16", "--steps", "8", "--batch-size", "4", "--lr", "10", "--clip", "0.1"]


@pytest.fixture
def text_file(tmp_path):
    path = tmp_path / "book.txt"
    path.write_text(TINY_TEXT, encoding="utf-8")
    return path


@pytest.fixture
def trained(tmp_path, text_file):
    out = tmp_path / "run"
    assert main(["train", "--text", str(text_file), "--out", str(out), "--val-chars", "150",
                 "--num-chars", "600", *FAST]) == 0
    return out


def test_train_reports_perplexity_and_bits(tmp_path, text_file, capsys):
    assert main(["train", "--text", str(text_file), "--out", str(tmp_path / "r"), "--val-chars", "150",
                 "--num-chars", "600", *FAST]) == 0
    assert re.search(r"final perplexity \d+\.\d{3} \(\d\.\d\d bits/char\), held-out \d+\.\d{3}",
                     capsys.readouterr().err)


def test_train_writes_curves_samples_and_checkpoint(trained):
    assert {p.name for p in trained.iterdir()} >= {"history.csv", "perplexity.png", "samples.txt", "checkpoint"}
    rows = list(csv.DictReader(open(trained / "history.csv")))
    assert [r["epoch"] for r in rows] == ["1", "2"] and all(float(r["val_perplexity"]) > 1 for r in rows)
    assert (trained / "perplexity.png").read_bytes()[:4] == b"\x89PNG"
    assert (trained / "samples.txt").read_text().startswith("traveller")
    ckpt = trained / "checkpoint"
    assert {p.name for p in ckpt.iterdir()} == {"params.nd", "vocab.json", "config.json", "history.csv"}
    assert json.loads((ckpt / "config.json").read_text())["hidden"] == 16
    assert not any(p.name.startswith(".") for p in trained.iterdir())  # no temporary leftovers


def test_generate_prints_a_continuation(trained, capsys):
    assert main(["generate", "--checkpoint", str(trained), "--prefix", "the time", "--length", "12"]) == 0
    out = capsys.readouterr().out.rstrip("\n")
    assert out.startswith("the time") and len(out) == len("the time") + 12


def test_a_trained_model_is_not_overwritten_by_accident(trained, text_file, capsys):
    before = (trained / "checkpoint" / "params.nd").read_bytes()
    again = ["train", "--text", str(text_file), "--out", str(trained), "--num-chars", "600", *FAST]
    assert "--overwrite" in _error(capsys, again)
    assert (trained / "checkpoint" / "params.nd").read_bytes() == before
    assert main(again + ["--overwrite"]) == 0
    assert main(again + ["--resume", str(trained)]) == 0  # continuing in place is fine


def test_ctrl_c_saves_what_was_trained(tmp_path, text_file, monkeypatch, capsys):
    from d2lrnn import train as train_mod

    real_epoch, calls = train_mod.train_epoch, []

    def interrupted_epoch(*args):
        calls.append(1)
        if len(calls) == 3:
            raise KeyboardInterrupt
        return real_epoch(*args)

    monkeypatch.setattr(train_mod, "train_epoch", interrupted_epoch)
    out = tmp_path / "cut"
    assert main(["train", "--text", str(text_file), "--out", str(out), "--num-chars", "600",
                 "--epochs", "10", "--hidden", "16", "--steps", "8", "--batch-size", "4"]) == 0
    assert "saving the 2 epochs" in capsys.readouterr().err
    assert [r["epoch"] for r in csv.DictReader(open(out / "history.csv"))] == ["1", "2"]
    assert (out / "checkpoint" / "params.nd").is_file()


def test_resume_continues_the_history(trained, text_file, tmp_path):
    out = tmp_path / "more"
    assert main(["train", "--text", str(text_file), "--resume", str(trained), "--out", str(out),
                 "--val-chars", "150", "--num-chars", "600", *FAST]) == 0
    assert [r["epoch"] for r in csv.DictReader(open(out / "history.csv"))] == ["1", "2", "3", "4"]


def _error(capsys, argv):
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error:") and "Traceback" not in err[0]
    return err[0]


def test_resume_with_another_vocabulary_or_model_is_refused(trained, tmp_path, capsys):
    other = tmp_path / "other.txt"
    other.write_text("completely different words, quite unlike the book " * 30)
    assert "vocabulary" in _error(capsys, ["train", "--text", str(other), "--resume", str(trained), *FAST])
    assert "model='rnn'" in _error(capsys, ["train", "--resume", str(trained), "--model", "gru", *FAST])


def test_bad_arguments_end_with_one_clear_line(tmp_path, text_file, capsys):
    empty = tmp_path / "empty.txt"
    empty.write_text("\n\n")
    assert "not found" in _error(capsys, ["train", "--text", str(tmp_path / "nope.txt")])
    assert "empty" in _error(capsys, ["train", "--text", str(empty)])
    assert "too short" in _error(capsys, ["train", "--text", str(text_file), "--num-chars", "100",
                                          "--steps", "64"])
    assert "--lr must be positive" in _error(capsys, ["train", "--lr", "0"])
    assert "--batch-size must be at least 1" in _error(capsys, ["train", "--batch-size", "0"])
    assert "invalid choice: 'tpu'" in _error(capsys, ["train", "--ctx", "tpu"])
    assert "no checkpoint" in _error(capsys, ["generate", "--checkpoint", str(tmp_path), "--prefix", "a"])
    assert not (tmp_path / "runs").exists()


def test_gpu_requested_but_absent(capsys):
    import mxnet as mx

    if mx.context.num_gpus():
        pytest.skip("this machine has a GPU")
    assert "no usable GPU" in _error(capsys, ["train", "--ctx", "gpu", "--epochs", "1"])


def test_module_entry_point_exits_nonzero_without_traceback(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "d2lrnn", "train", "--text", str(tmp_path / "missing.txt")],
                          capture_output=True, text=True, env=os.environ.copy())
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert proc.stderr.strip() == f"error: text file not found: {tmp_path / 'missing.txt'}"


@pytest.mark.parametrize("model", ["gru", "lstm"])
def test_gated_models_train_and_generate(tmp_path, text_file, model, capsys):
    out = tmp_path / model
    assert main(["train", "--text", str(text_file), "--model", model, "--out", str(out), *FAST]) == 0
    capsys.readouterr()
    assert main(["generate", "--checkpoint", str(out), "--prefix", "the", "--length", "5"]) == 0
    assert len(capsys.readouterr().out.rstrip("\n")) == 8


def test_generate_sampling_is_seeded(trained, capsys):
    args = ["generate", "--checkpoint", str(trained / "checkpoint"), "--prefix", "the", "--length", "40",
            "--temperature", "2.0", "--top-k", "5"]
    texts = []
    for seed in ("1", "1", "2"):
        assert main(args + ["--seed", seed]) == 0
        texts.append(capsys.readouterr().out)
    assert texts[0] == texts[1] != texts[2]
    assert "temperature must be > 0" in _error(capsys, args[:-4] + ["--temperature", "0"])


def test_a_failed_save_keeps_the_old_checkpoint(trained, monkeypatch):
    from d2lrnn import checkpoint

    before = (trained / "checkpoint" / "params.nd").read_bytes()
    params, vocab, _, config = checkpoint.load_checkpoint(trained, __import__("mxnet").cpu())

    def broken(*args):
        raise OSError("disk full")

    monkeypatch.setattr(checkpoint.nd, "save", broken)
    with pytest.raises(OSError, match="disk full"):
        checkpoint.save_checkpoint(trained / "checkpoint", params, vocab, config)
    assert (trained / "checkpoint" / "params.nd").read_bytes() == before
    assert sorted(p.name for p in trained.iterdir() if p.name.startswith(".")) == []
