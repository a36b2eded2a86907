"""checkpoint.py: a save and load round trip for every kind of model with its optimiser state; the
manifest catches damaged files; config.json's schema (types, ranges, names, format 2's model names);
saves that fail or are cut short leave the previous checkpoint whole; atomic_write."""
import errno
import json
from dataclasses import asdict

import numpy as np
import pytest
from mxnet import nd

import d2lrnn
from d2lrnn import checkpoint
from d2lrnn.cells.batched import BatchedModel
from d2lrnn.checkpoint import CheckpointError, SaveError, atomic_write, load_checkpoint, save_checkpoint
from d2lrnn.config import TrainConfig
from d2lrnn.model import RNNModel, ScratchModel
from d2lrnn.registry import MODELS
from d2lrnn.utils import file_digest, quoted

from helpers import CPU, random_model, random_tokens, randomize

VOCAB = list(" abcdefgh")
V = len(VOCAB)


def _trained_adam(model, steps=2):
    """An Adam optimiser with `steps` updates behind it (random gradients): moments worth saving."""
    opt = d2lrnn.Adam(model.param_arrays(), lr=0.01)
    for step in range(steps):
        randomize([a.grad for a in model.param_arrays()], seed=10 + step)
        opt.step()
    return opt


def _history():
    h = d2lrnn.History()
    h.add(9.0, 0.5, 8.5)
    h.add(7.0, 0.1, 7.5, fraction=0.5)
    h.add(6.0, 0.4, None)
    return h


def _save(folder, name="rnn-bptt", seed=0, **settings):
    """Save a small random registry model with the settings the command line would record; returns it."""
    model = random_model(name, vocab_size=V, num_hiddens=8, seed=seed)
    config = asdict(TrainConfig(model=name, hidden=8, **settings))
    save_checkpoint(folder, model, VOCAB, config=config, history=_history())
    return model


def _weights(model):
    return [a.asnumpy() for a in model.param_arrays()]


def _assert_same_weights(model, expected):
    for a, b in zip(_weights(model), expected):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("name", list(MODELS))
def test_a_saved_model_loads_as_it_was_with_its_optimiser_state(tmp_path, name):
    layers, embed, dropout = (1, 0, 0.0) if MODELS[name].kind == "lecture" else (2, 3, 0.1)
    model = random_model(name, vocab_size=V, num_hiddens=8, num_layers=layers, embed_size=embed,
                         dropout=dropout)
    opt = _trained_adam(model)
    settings = TrainConfig(model=name, hidden=8, optimizer="adam", lr=0.01, layers=layers, embed=embed,
                           dropout=dropout)
    config = {**asdict(settings), "position": {"epochs_done": 2, "batch": None}}
    save_checkpoint(tmp_path / "ckpt", model, VOCAB, config=config, history=_history(), optimizer=opt)
    back = load_checkpoint(tmp_path / "ckpt", CPU)

    assert type(back.model) is type(model) and back.model.config == model.config
    _assert_same_weights(back.model, _weights(model))
    X = random_tokens(V, (2, 5))
    np.testing.assert_array_equal(back.model(X, back.model.begin_state(batch_size=2, ctx=CPU))[0].asnumpy(),
                                  model(X, model.begin_state(batch_size=2, ctx=CPU))[0].asnumpy())
    assert back.idx_to_char == VOCAB and back.char_to_idx == {c: i for i, c in enumerate(VOCAB)}
    assert back.history == _history() and back.config["format"] == checkpoint.FORMAT
    assert back.settings.model == name and back.settings.optimizer == "adam" and back.settings.lr == 0.01
    assert back.config["position"] == {"epochs_done": 2, "batch": None}

    saved = opt.state_arrays()
    assert sorted(back.optimizer_arrays) == sorted(saved)
    for key, value in saved.items():
        np.testing.assert_array_equal(back.optimizer_arrays[key].asnumpy(), value.asnumpy(), err_msg=key)
    resumed = d2lrnn.Adam(back.model.param_arrays(), lr=0.01)
    resumed.load_state_arrays(back.optimizer_arrays)
    assert resumed.t == opt.t == 2
    manifest = json.loads((tmp_path / "ckpt" / "manifest.json").read_text())
    assert sorted(manifest["sha256"]) == ["config.json", "history.csv", "optimizer.nd", "params.nd",
                                          "vocab.json"]


def test_sgd_saves_no_optimiser_file_and_kept_weights_can_be_saved_instead(tmp_path):
    model = random_model("gru", vocab_size=V, num_hiddens=8)
    kept = [a.copy() for a in model.param_arrays()]  # e.g. KeepBest's copy of the best weights
    randomize(model.param_arrays(), seed=5)
    sgd = d2lrnn.SGD(model.param_arrays(), 1.0)
    checkpoint.write_checkpoint(tmp_path / "best", model, VOCAB, optimizer=sgd, arrays=kept)
    assert not (tmp_path / "best" / "optimizer.nd").exists()
    back = load_checkpoint(tmp_path / "best", CPU)
    _assert_same_weights(back.model, [a.asnumpy() for a in kept])
    assert back.optimizer_arrays == {} and back.history.epoch == []


def test_only_registry_models_and_finite_weights_are_saved(tmp_path):
    own = ScratchModel(d2lrnn.rnn, d2lrnn.get_params, d2lrnn.init_rnn_state, vocab_size=V, num_hiddens=4,
                       ctx=CPU)  # a student's own functions: no registry name to rebuild them by
    with pytest.raises(ValueError, match="only models built by the registry"):
        save_checkpoint(tmp_path / "own", own, VOCAB)
    first = _save(tmp_path / "ckpt")
    model = random_model("rnn-bptt", vocab_size=V, num_hiddens=8, seed=1)
    model.param_arrays()[1][0, 0] = np.nan
    with pytest.raises(ValueError, match=r"non-finite weights \(arrays \[1\]"):
        save_checkpoint(tmp_path / "ckpt", model, VOCAB)
    _assert_same_weights(load_checkpoint(tmp_path / "ckpt", CPU).model, _weights(first))
    assert [p.name for p in tmp_path.iterdir()] == ["ckpt"]


# --- the manifest ---------------------------------------------------------------------------------

def _replace_in(path, old, new):
    path.write_text(path.read_text().replace(old, new))


def _flip_a_byte(path):
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))


@pytest.mark.parametrize("damage, file, says", [
    (lambda f: _flip_a_byte(f / "params.nd"), "params.nd", "its SHA-256 differs"),
    (lambda f: _replace_in(f / "config.json", '"hidden": 8', '"hidden": 9'), "config.json",
     "its SHA-256 differs"),
    (lambda f: (f / "history.csv").unlink(), "history.csv", "is missing"),
    (lambda f: (f / "manifest.json").write_text("{not json"), "manifest.json", "not valid JSON"),
    (lambda f: (f / "manifest.json").write_text('{"sha256": {"params.nd": "0", "../x": "0"}}'),
     "manifest.json", "it lists '../x'"),
    (lambda f: (f / "manifest.json").write_text('{"format": 3}'), "manifest.json", "no SHA-256 list"),
    (lambda f: (f / "manifest.json").unlink(), "ckpt", "has no manifest.json"),
], ids=["flipped-byte", "edited-config", "missing-file", "manifest-not-json", "manifest-escapes",
        "manifest-empty", "no-manifest"])
def test_the_manifest_catches_damage_and_names_the_file(tmp_path, damage, file, says):
    _save(tmp_path / "ckpt")
    damage(tmp_path / "ckpt")
    with pytest.raises(CheckpointError) as err:
        load_checkpoint(tmp_path / "ckpt", CPU)
    message = str(err.value)
    assert says in message and "\n" not in message
    assert quoted(tmp_path / "ckpt" / file if file != "ckpt" else tmp_path / "ckpt") in message


def _rewrite(folder, name, change):
    """Change a file of a checkpoint and record its new SHA-256 in the manifest: consistent, but wrong."""
    path = folder / name
    change(path)
    manifest = json.loads((folder / "manifest.json").read_text())
    manifest["sha256"][name] = file_digest(path, "sha256")
    (folder / "manifest.json").write_text(json.dumps(manifest))


def _edit_config(folder, **fields):
    """Set (or, with ..., delete) fields of config.json, keeping the manifest consistent."""
    def change(path):
        config = json.loads(path.read_text())
        for key, value in fields.items():
            if value is ...:
                del config[key]
            else:
                config[key] = value
        path.write_text(json.dumps(config))

    _rewrite(folder, "config.json", change)


# --- config.json's schema --------------------------------------------------------------------------

@pytest.mark.parametrize("field, value, says", [
    ("hidden", "8", "has the wrong type"), ("hidden", 8.5, "has the wrong type"),
    ("layers", True, "has the wrong type"), ("lr", "fast", "has the wrong type"),
    ("prefix", ["the", 3], "has the wrong type"), ("dropout", None, "has the wrong type"),
    ("hidden", ..., "is missing"),
    ("hidden", 0, "must be a whole number from 1"), ("steps", 10 ** 9, "must be a whole number from 1"),
    ("seed", -1, "must be a whole number from 0"), ("lr", -1.0, "must be a positive number"),
    ("clip", 0.0, "must be a positive float32"), ("dropout", 1.5, "must be at least 0 and below 1"),
    ("val_fraction", 1.0, "must be at least 0 and below 1"),
    ("model", "transformer", "must be one of rnn, gru, lstm"),
    ("optimizer", "rmsprop", "must be one of sgd, adam"),
    ("sampling", "shuffled", "must be one of sequential, random"),
    ("position", {"epochs_done": -1, "batch": None}, "is not one d2lrnn writes"),
    ("position", {"epochs_done": 1}, "is not one d2lrnn writes"),
    ("held_out", {"sha256": 3, "perplexity": 2.0}, "is not one d2lrnn writes"),
])
def test_a_config_outside_the_schema_is_refused_naming_file_and_field(tmp_path, field, value, says):
    _save(tmp_path / "ckpt")
    _edit_config(tmp_path / "ckpt", **{field: value})
    with pytest.raises(CheckpointError) as err:
        load_checkpoint(tmp_path / "ckpt", CPU)
    message = str(err.value)
    assert quoted(tmp_path / "ckpt" / "config.json") in message, message
    assert f"field {field!r}" in message and says in message, message


@pytest.mark.parametrize("fmt", [1, 4, "3", None])
def test_an_unknown_format_is_refused(tmp_path, fmt):
    _save(tmp_path / "ckpt")
    _edit_config(tmp_path / "ckpt", format=fmt)
    with pytest.raises(CheckpointError, match=rf"config.json\": format {fmt!r} is not one this d2lrnn reads"):
        load_checkpoint(tmp_path / "ckpt", CPU)


def test_a_config_that_does_not_fit_its_weights_is_refused(tmp_path):
    _save(tmp_path / "ckpt")
    _edit_config(tmp_path / "ckpt", hidden=9)
    with pytest.raises(CheckpointError, match=r"params.nd\" does not fit a rnn-bptt with 9 hidden units"):
        load_checkpoint(tmp_path / "ckpt", CPU)


def test_damaged_vocabulary_and_non_finite_weights_are_refused(tmp_path):
    _save(tmp_path / "a")
    _rewrite(tmp_path / "a", "vocab.json", lambda path: path.write_text('["a", "a"]'))
    with pytest.raises(CheckpointError, match=r"vocab.json\" is damaged \(not a list of distinct tokens\)"):
        load_checkpoint(tmp_path / "a", CPU)
    model = _save(tmp_path / "b")
    arrays = {f"param{i:02d}": a.copy() for i, a in enumerate(model.param_arrays())}
    arrays["param03"][0, 0] = np.inf
    _rewrite(tmp_path / "b", "params.nd", lambda path: nd.save(str(path), arrays))
    with pytest.raises(CheckpointError, match=r"params.nd\" holds NaN or infinite weights \(arrays \[3\]\)"):
        load_checkpoint(tmp_path / "b", CPU)


@pytest.mark.parametrize("saved, loads_as, kind", [("rnn-bptt", "rnn-bptt", BatchedModel),
                                                   ("gru-bptt", "gru-bptt", BatchedModel),
                                                   ("gluon-lstm", "gluon-lstm", RNNModel)])
def test_format_2s_model_names_meant_the_batched_cells(tmp_path, saved, loads_as, kind):
    """Format 2 called the batched cells rnn, gru and lstm: such a file loads as rnn-bptt etc."""
    model = _save(tmp_path / "ckpt", name=saved)
    old_name = saved.replace("-bptt", "")
    _edit_config(tmp_path / "ckpt", format=2, model=old_name)
    back = load_checkpoint(tmp_path / "ckpt", CPU)
    assert type(back.model) is kind and back.config["model"] == back.settings.model == loads_as
    _assert_same_weights(back.model, _weights(model))


def test_format_3s_rnn_is_the_lectures_cell_and_format_2_still_checks_names(tmp_path):
    _save(tmp_path / "a", name="rnn")
    assert type(load_checkpoint(tmp_path / "a", CPU).model) is ScratchModel
    _save(tmp_path / "b")
    _edit_config(tmp_path / "b", format=2, model="transformer")
    with pytest.raises(CheckpointError, match=r"config.json\": the field 'model' must be one of"):
        load_checkpoint(tmp_path / "b", CPU)


def test_the_shipped_format_2_checkpoint_loads():
    back = load_checkpoint(d2lrnn.pretrained("shakespeare-lstm"), CPU)
    assert back.config["format"] == 2 and back.settings.model == "gluon-lstm" and type(back.model) is RNNModel


# --- saves that fail --------------------------------------------------------------------------------

def _leftovers(folder):
    return sorted(p.name for p in folder.iterdir() if p.name.startswith("."))


def test_a_save_that_fails_while_writing_leaves_the_old_checkpoint(tmp_path, monkeypatch):
    first = _save(tmp_path / "ckpt")
    real_save = checkpoint.nd.save

    def disk_full(path, data):
        real_save(path, data)  # half written ...
        raise OSError(errno.ENOSPC, "No space left on device")  # ... then the disk is full

    monkeypatch.setattr(checkpoint.nd, "save", disk_full)
    with pytest.raises(SaveError, match=r"cannot write \".*params.nd\": No space left on device"):
        _save(tmp_path / "ckpt", seed=1)
    monkeypatch.undo()
    _assert_same_weights(load_checkpoint(tmp_path / "ckpt", CPU).model, _weights(first))
    assert _leftovers(tmp_path) == []


def test_ctrl_c_in_the_middle_of_a_save_leaves_the_old_checkpoint(tmp_path, monkeypatch):
    first = _save(tmp_path / "ckpt")

    def interrupted(self, path):
        raise KeyboardInterrupt

    monkeypatch.setattr(d2lrnn.History, "to_csv", interrupted)
    with pytest.raises(KeyboardInterrupt):
        _save(tmp_path / "ckpt", seed=1)
    monkeypatch.undo()
    _assert_same_weights(load_checkpoint(tmp_path / "ckpt", CPU).model, _weights(first))
    assert _leftovers(tmp_path) == []


def test_a_crash_between_the_two_renames_is_found_and_repaired(tmp_path, monkeypatch):
    """The old folder has been moved aside and the new one not yet moved in: loading finds the old one;
    the next save puts things right."""
    first = _save(tmp_path / "ckpt")
    real_replace, calls = checkpoint.os.replace, []

    def crash_on_the_second(src, dst):
        calls.append(dst)
        if len(calls) == 2:
            raise SystemExit("killed")
        real_replace(src, dst)

    monkeypatch.setattr(checkpoint.os, "replace", crash_on_the_second)
    with pytest.raises(SystemExit):
        _save(tmp_path / "ckpt", seed=1)
    monkeypatch.undo()
    assert not (tmp_path / "ckpt").exists() and (tmp_path / ".ckpt-old").is_dir()
    _assert_same_weights(load_checkpoint(tmp_path / "ckpt", CPU).model, _weights(first))
    third = _save(tmp_path / "ckpt", seed=2)
    _assert_same_weights(load_checkpoint(tmp_path / "ckpt", CPU).model, _weights(third))
    assert _leftovers(tmp_path) == []


def test_atomic_write_replaces_a_file_whole_or_not_at_all(tmp_path):
    path = tmp_path / "history.csv"
    atomic_write(path, lambda tmp: tmp.write_text("first"))
    atomic_write(path, lambda tmp: tmp.write_text("second"))
    assert path.read_text() == "second" and [p.name for p in tmp_path.iterdir()] == ["history.csv"]

    def fails_half_way(tmp):
        tmp.write_text("thi")
        raise OSError(errno.EACCES, "Permission denied")

    with pytest.raises(SaveError, match=r"cannot write \".*history.csv\": Permission denied"):
        atomic_write(path, fails_half_way)
    assert path.read_text() == "second" and [p.name for p in tmp_path.iterdir()] == ["history.csv"]

    def a_bug(tmp):
        tmp.write_text("thi")
        raise ZeroDivisionError

    with pytest.raises(ZeroDivisionError):  # not an I/O error: not dressed up as one, but cleaned up too
        atomic_write(path, a_bug)
    assert path.read_text() == "second" and [p.name for p in tmp_path.iterdir()] == ["history.csv"]
