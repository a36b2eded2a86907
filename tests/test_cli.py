"""The command line end to end on tiny text: what `train` writes, generate, evaluate, resume, threads."""
import csv
import json
import os
import re
import signal
import subprocess
import sys

import pytest

from d2lrnn import registry, training
from d2lrnn.__main__ import wanted_threads
from d2lrnn.cli import build_parser, main

from clitools import TINY, fails, q
from conftest import TINY_TEXT

FAST = ["--epochs", "2", *TINY]


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
    err = capsys.readouterr().err
    assert re.search(r"epoch 2: training perplexity \d+\.\d{3} \(\d\.\d\d bits/char\), "
                     r"averaged over the epoch", err)
    assert re.search(r"final weights: perplexity \d+\.\d{3} \(\d\.\d\d bits/char\) on the training text, "
                     r"\d+\.\d{3} \(\d\.\d\d bits/char\) on the held-out text", err)
    assert re.search(r"best held-out perplexity \d+\.\d{3} .* at epoch [12], saved in .*/best/", err)


def test_train_writes_curves_samples_and_checkpoint(trained):
    expected = {"history.csv", "perplexity.png", "samples.txt", "checkpoint", "best"}
    assert {p.name for p in trained.iterdir()} == expected  # no lock file or temporary leftovers
    rows = list(csv.DictReader(open(trained / "history.csv")))
    assert [r["epoch"] for r in rows] == ["1", "2"] and all(float(r["val_perplexity"]) > 1 for r in rows)
    assert (trained / "perplexity.png").read_bytes()[:4] == b"\x89PNG"
    assert (trained / "samples.txt").read_text().startswith("the ")  # the text's first word
    ckpt = trained / "checkpoint"
    assert {p.name for p in ckpt.iterdir()} == {"params.nd", "vocab.json", "config.json", "history.csv",
                                                "manifest.json"}
    config = json.loads((ckpt / "config.json").read_text())
    assert config["hidden"] == 16 and config["model"] == "rnn" and config["format"] == 3


def test_the_default_model_is_the_lecture_cell_with_autograd(trained):
    """`--model rnn` (the default) trains exactly the lecture's step function, as its name says."""
    from d2lrnn.checkpoint import load_checkpoint
    from d2lrnn.model import ScratchModel

    model = load_checkpoint(trained, __import__("mxnet").cpu()).model
    assert isinstance(model, ScratchModel) and model.rnn is registry.scratch_functions("rnn")[0]


def test_generate_prints_a_continuation(trained, capsys):
    assert main(["generate", "--checkpoint", str(trained), "--prefix", "the time", "--length", "12"]) == 0
    out = capsys.readouterr().out.rstrip("\n")
    assert out.startswith("the time") and len(out) == len("the time") + 12


def test_evaluate_reports_what_training_measured(trained, capsys):
    """One definition of held-out perplexity: `evaluate` prints the number training recorded for best/."""
    best = json.loads((trained / "best" / "config.json").read_text())["held_out"]["perplexity"]
    assert main(["evaluate", "--checkpoint", str(trained), "--json"]) == 0
    report = json.loads(capsys.readouterr().out.splitlines()[-1])
    assert report["split"] == "val" and report["perplexity"] == pytest.approx(best, rel=1e-6)
    assert main(["evaluate", "--checkpoint", str(trained), "--json", "--steps", "3",
                 "--batch-size", "32"]) == 0
    assert json.loads(capsys.readouterr().out.splitlines()[-1])["perplexity"] == pytest.approx(best, rel=1e-5)


def test_a_trained_model_is_not_overwritten_by_accident(trained, text_file, capsys):
    before = (trained / "checkpoint" / "params.nd").read_bytes()
    again = ["train", "--text", str(text_file), "--out", str(trained), "--num-chars", "600", *FAST]
    assert "--overwrite" in fails(capsys, again)[0]
    assert (trained / "checkpoint" / "params.nd").read_bytes() == before
    assert main(again + ["--overwrite"]) == 0
    assert main(again + ["--resume", str(trained)]) == 0  # continuing in place is fine


def test_ctrl_c_stops_at_the_next_minibatch_saves_and_resumes_there(tmp_path, text_file, monkeypatch, capsys):
    """The first SIGINT only asks the loop to stop: the run saves where it stopped, exits 130, and
    --resume continues in the same epoch at the next minibatch."""
    real_epoch, calls, sent = training.train_epoch, [], []

    def interrupted_epoch(*args, **kwargs):
        calls.append(kwargs.get("start_batch"))
        if len(calls) == 3 and not sent:  # Ctrl-C arrives during epoch 3, before its first minibatch ends
            sent.append(True)
            os.kill(os.getpid(), signal.SIGINT)
        return real_epoch(*args, **kwargs)

    monkeypatch.setattr(training, "train_epoch", interrupted_epoch)
    out = tmp_path / "cut"
    args = ["train", "--text", str(text_file), "--out", str(out),
            "--num-chars", "600", "--epochs", "5", *TINY]
    assert main(args) == 130
    err = capsys.readouterr().err
    assert f"stopped by Ctrl-C (SIGINT) in epoch 3 after minibatch 1: saved {out}/checkpoint; " \
           f"continue with --resume {q(out)}" in err
    rows = [r["epoch"] for r in csv.DictReader(open(out / "history.csv"))]
    assert rows[:2] == ["1", "2"] and 2 < float(rows[2]) < 2.2 and len(rows) == 3  # how far epoch 3 got
    config = json.loads((out / "checkpoint" / "config.json").read_text())
    assert config["position"] == {"epochs_done": 2, "batch": 1}
    calls.clear()
    assert main(args + ["--resume", str(out)]) == 0
    assert calls[0] == 1 and calls[1:] == [0] * (len(calls) - 1)  # epoch 3 goes on after its first minibatch
    resumed = [r["epoch"] for r in csv.DictReader(open(out / "history.csv"))]
    assert resumed == rows + [str(e) for e in range(3, 8)]
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # the handler is put back


def test_resume_continues_the_history(trained, text_file, tmp_path):
    out = tmp_path / "more"
    assert main(["train", "--text", str(text_file), "--resume", str(trained), "--out", str(out),
                 "--val-chars", "150", "--num-chars", "600", *FAST]) == 0
    assert [r["epoch"] for r in csv.DictReader(open(out / "history.csv"))] == ["1", "2", "3", "4"]


def test_resume_with_another_vocabulary_or_model_is_refused(trained, tmp_path, capsys):
    other = tmp_path / "other.txt"
    other.write_text("completely different words, quite unlike the book " * 30)
    assert "vocabulary" in fails(capsys, ["train", "--text", str(other), "--resume", str(trained), *FAST])[0]
    assert "model='rnn'" in fails(capsys, ["train", "--resume", str(trained), "--model", "gru", *FAST])[0]
    assert "optimizer='sgd'" in fails(capsys, ["train", "--resume", str(trained), "--optimizer", "adam",
                                               *FAST])[0]


def test_gpu_requested_but_absent(capsys):
    import mxnet as mx

    if mx.context.num_gpus():
        pytest.skip("this machine has a GPU")
    assert "no usable GPU" in fails(capsys, ["train", "--ctx", "gpu", "--epochs", "1"])[0]


def test_model_choices_come_from_the_registry():
    train_parser = build_parser()._subparsers._group_actions[0].choices["train"]
    choices = next(a.choices for a in train_parser._actions if a.dest == "model")
    assert list(choices) == list(registry.MODELS)
    assert {"rnn", "rnn-bptt", "gru", "lstm-bptt", "gluon-lstm"} <= set(choices)


@pytest.mark.parametrize("model", ["gru", "lstm-bptt", "gluon-lstm"])
def test_other_models_train_resume_and_generate(tmp_path, text_file, model, capsys):
    out = tmp_path / model
    args = ["train", "--text", str(text_file), "--model", model, "--out", str(out), "--val-chars", "100",
            "--num-chars", "600", *FAST]
    assert main(args) == 0
    assert main(args + ["--resume", str(out), "--optimizer", "sgd"]) == 0
    assert [r["epoch"] for r in csv.DictReader(open(out / "history.csv"))] == ["1", "2", "3", "4"]
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
    assert "temperature must be > 0" in fails(capsys, args[:-4] + ["--temperature", "0"])[0]


@pytest.mark.parametrize("argv, environ, expected", [
    (["train", "--model", "gluon-lstm"], {}, "all"),          # fused: every CPU
    (["train", "--model=gluon-gru"], {}, "all"),
    (["train", "--model", "lstm"], {}, None),                  # scratch: MXNet's own default
    (["train", "--model", "gluon-gru", "--threads", "1"], {}, "1"),
    (["train", "--model", "gluon-lstm"], {"OMP_NUM_THREADS": "3"}, None),  # the user's setting wins
    (["generate", "--checkpoint", "x", "--prefix", "a"], {}, None),
    (["train", "--threads", "many"], {}, None),                # main reports the bad value
    (["train", "--threads", "²"], {}, None),                   # a digit to str.isdigit, not to int()
    (["train", "--threads", "3000000000"], {}, None),          # absurd: never handed to OpenMP
    (["train", "--threads", "17"], {}, None),                  # over 4 per CPU
])
def test_thread_settings_chosen_before_mxnet_loads(argv, environ, expected, monkeypatch):
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 1, 2, 3}, raising=False)
    env = wanted_threads(argv, environ)
    if expected is None:
        assert env is None
    else:
        assert env["OMP_NUM_THREADS"] == ("4" if expected == "all" else expected)
        assert "OMP_WAIT_POLICY" not in env  # left to the user (PASSIVE halves two threads' speed here)


@pytest.mark.slow
def test_the_program_restarts_with_the_threads_it_wants(tmp_path, text_file):
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_NUM_THREADS", "MXNET_OMP_MAX_THREADS",
                                                            "OMP_WAIT_POLICY")}
    proc = subprocess.run([sys.executable, "-m", "d2lrnn", "train", "--model", "gluon-rnn", "--threads", "3",
                           "--text", str(text_file), "--out", str(tmp_path / "t"), *FAST],
                          capture_output=True, text=True, env=env)
    assert proc.returncode == 0, proc.stderr
    assert "with 3 OpenMP threads" in proc.stderr and "OMP_WAIT_POLICY" not in proc.stderr


@pytest.mark.slow  # a subprocess
def test_module_entry_point_exits_nonzero_without_traceback(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "d2lrnn", "train", "--text", str(tmp_path / "missing.txt")],
                          capture_output=True, text=True, env=os.environ.copy())
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert proc.stderr.strip() == f"error: text file not found: {q(tmp_path / 'missing.txt')}"
