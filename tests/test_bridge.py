"""The bridge to the book's `d2l` 1.0.3 (its MXNet module): what the bridge notebook says about it holds.

Checked here: every `d2l.` name the notebook mentions exists in the installed d2l 1.0.3; the
correspondences it states (same parameters, same clipping rule, same update, same scores); how
MXNet's NumPy switch (`npx.set_np`) affects each side; and that both models, trained a few steps on
the same text, reach a finite perplexity below the vocabulary size. The slow test runs the notebook.

Needs `pip install --no-deps d2l==1.0.3 pandas` (skipped otherwise) and the course corpus.
"""
import contextlib
import inspect
import json
import math
import re
import shutil
import subprocess
import sys
import time
import types
from pathlib import Path

import mxnet as mx  # noqa: E402
import numpy as np
import pytest
from mxnet import autograd, nd, npx  # noqa: E402
from mxnet.gluon import rnn as grnn  # noqa: E402

import d2lrnn  # before MXNet and d2l: on Python 3.12 it prepares numpy for MXNet

pytest.importorskip("d2l", reason="the book's package is not installed (pip install --no-deps d2l==1.0.3 "
                                  "pandas)")
try:
    from d2l import mxnet as d2l  # noqa: E402
except ImportError as err:  # e.g. pandas missing
    pytest.skip(f"d2l's MXNet module does not import here: {err}", allow_module_level=True)

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOK = next(iter(sorted(ROOT.glob("notebooks/**/*bridge_to_d2l.ipynb"))), None)
TM_SHA1 = "090b5e7e70c295757f55df93cb0a180b9691891a"  # what d2l.TimeMachine checks; the same file as ours
VOCAB = 28  # the book's character vocabulary: 26 letters, space, <unk>


@contextlib.contextmanager
def mxnet_numpy(active):
    """MXNet's NumPy interface on (the book's code) or off (d2lrnn's) for a block, then as before."""
    was_active = npx.is_np_array()
    (npx.set_np if active else npx.reset_np)()
    try:
        yield
    finally:
        (npx.set_np if was_active else npx.reset_np)()


@pytest.fixture
def book_data(corpus_dir, tmp_path):
    """A small d2l.TimeMachine reading timemachine.txt from a folder of ours instead of downloading."""
    shutil.copyfile(corpus_dir / "timemachine.txt", tmp_path / "timemachine.txt")

    class TimeMachine(d2l.TimeMachine):
        def _download(self):
            self.root = str(tmp_path)
            return super()._download()

    with mxnet_numpy(True):
        return TimeMachine(batch_size=64, num_steps=16, num_train=640, num_val=256)


def test_version():
    import d2l as package

    assert package.__version__ == "1.0.3"


# --- the names -----------------------------------------------------------------------------------

BOOK_NAMES = [
    "TimeMachine", "TimeMachine.build", "TimeMachine.get_dataloader", "DataModule.train_dataloader",
    "DataModule.val_dataloader", "Vocab", "Vocab.to_tokens", "RNNScratch", "RNNScratch.forward",
    "RNNLMScratch", "RNNLMScratch.init_params", "RNNLMScratch.one_hot", "RNNLMScratch.output_layer",
    "RNNLMScratch.forward", "RNNLMScratch.predict", "RNNLMScratch.training_step",
    "RNNLMScratch.validation_step", "RNN", "RNNLM", "RNNLM.output_layer", "Trainer", "Trainer.fit",
    "Trainer.fit_epoch", "Trainer.clip_gradients", "SGD", "SGD.step", "Module.configure_optimizers",
    "try_gpu", "cpu", "tensor", "exp",
]
OUR_NAMES = ["load_data_time_machine", "data_iter_random", "data_iter_consecutive", "to_onehot", "get_params",
             "init_rnn_state", "rnn", "RNNModel", "train_and_predict_rnn", "train_and_predict_rnn_gluon",
             "sgd", "grad_clipping", "predict_rnn", "predict_rnn_gluon", "try_gpu", "evaluate_perplexity"]


def resolve(module, dotted):
    obj = module
    for part in dotted.split("."):
        obj = getattr(obj, part)
    return obj


@pytest.mark.parametrize("name", BOOK_NAMES)
def test_book_name_exists(name):
    assert callable(resolve(d2l, name)), f"d2l 1.0.3 has no callable d2l.{name}"


@pytest.mark.parametrize("name", OUR_NAMES)
def test_our_name_exists(name):
    assert callable(getattr(d2lrnn, name))


def notebook_text():
    if NOTEBOOK is None:
        pytest.skip("no bridge_to_d2l notebook under notebooks/")
    return "\n".join(c["source"] if isinstance(c["source"], str) else "".join(c["source"])
                     for c in json.loads(NOTEBOOK.read_text())["cells"])


def test_every_d2l_name_in_the_notebook_exists():
    mentioned = set(re.findall(r"(?<![\w.])d2l\.([A-Za-z_]\w*(?:\.[A-Za-z_]\w*)*)", notebook_text()))
    assert {"TimeMachine", "RNNScratch", "RNNLMScratch", "RNN", "RNNLM", "Trainer", "SGD"} <= mentioned
    missing = []
    for name in sorted(mentioned):
        try:
            resolve(d2l, name)
        except AttributeError:
            missing.append(name)
    assert not missing, f"the notebook names d2l.{missing} , which d2l 1.0.3 lacks"


def test_the_table_names_our_functions():
    text = notebook_text()
    used = set(re.findall(r"d2lrnn\.(\w+)", text))
    assert all(hasattr(d2lrnn, name) for name in used), sorted(n for n in used if not hasattr(d2lrnn, n))
    table = text.split("## Which of ours is which of theirs", 1)[1].split("\n##", 1)[0]
    for name in set(OUR_NAMES) - {"evaluate_perplexity"}:
        assert f"`{name}" in table, f"the mapping table does not mention {name}"


# --- the correspondences -------------------------------------------------------------------------

def sig(f):
    return {name: p.default for name, p in inspect.signature(f).parameters.items()}


def test_defaults_and_structure():
    assert sig(d2l.TimeMachine)["num_train"] == 10000 and sig(d2l.TimeMachine)["num_val"] == 5000
    assert sig(d2l.RNNScratch)["sigma"] == 0.01
    assert "gradient_clip_val" in sig(d2l.Trainer)
    assert issubclass(d2l.RNNLM, d2l.RNNLMScratch) and d2l.RNNLM.predict is d2l.RNNLMScratch.predict
    assert d2l.TimeMachine._preprocess(None, "The Time-Machine, 1898!\nIt") == "the time machine it"
    assert sig(grnn.RNN)["activation"] == "relu"  # d2l.RNN and the lecture's RNNModel layer: ReLU by default
    with mxnet_numpy(True):
        assert isinstance(d2l.RNN(4).rnn, grnn.RNN)


def test_book_vocabulary_and_split(book_data):
    assert len(book_data.vocab) == VOCAB and book_data.vocab.idx_to_token[:2] == [" ", "<unk>"]
    X, Y = book_data.X.asnumpy(), book_data.Y.asnumpy()
    assert (X[1, :-1] == X[0, 1:]).all() and (Y[0] == X[1]).all(), "windows start at every position"
    assert len(book_data.train_dataloader()) == 10 and len(book_data.val_dataloader()) == 4


def test_same_scores_with_the_same_weights(book_data):
    tokens = book_data.X[:3, :12].asnumpy()  # (batch, steps)
    with mxnet_numpy(True):
        model = d2l.RNNLMScratch(d2l.RNNScratch(VOCAB, 16, sigma=0.5), VOCAB)
        book = model(d2l.tensor(tokens)).asnumpy()  # (batch, steps, vocab)
    params = [nd.array(p.asnumpy())
              for p in (model.rnn.W_xh, model.rnn.W_hh, model.rnn.b_h, model.W_hq, model.b_q)]
    assert [p.shape for p in params] == [p.shape for p in d2lrnn.get_params(VOCAB, 16, mx.cpu())]
    inputs = d2lrnn.to_onehot(nd.array(tokens), VOCAB)
    outputs, _ = d2lrnn.rnn(inputs, d2lrnn.init_rnn_state(3, 16, mx.cpu()), params)
    ours = nd.stack(*outputs, axis=1).asnumpy()
    assert np.abs(ours).max() > 1  # far from zero, so agreement means something
    np.testing.assert_allclose(book, ours, rtol=1e-4, atol=1e-5)


def test_same_clipping_rule_and_update():
    rng = np.random.default_rng(0)
    values = [rng.normal(size=s) for s in [(3, 4), (4,)]]
    grads = [rng.normal(size=s) * 5 for s in [(3, 4), (4,)]]
    theta, lr = 0.5, 0.1
    with mxnet_numpy(True):
        book = [d2l.tensor(v) for v in values]
        for p, g in zip(book, grads):
            p.attach_grad()
            with autograd.record():
                loss = (p * d2l.tensor(g)).sum()
            loss.backward()
        d2l.Trainer(max_epochs=1).clip_gradients(theta, types.SimpleNamespace(parameters=lambda: book))
        d2l.SGD(book, lr).step(None)
        book = [p.asnumpy() for p in book]
    ours = [nd.array(v) for v in values]
    for p, g in zip(ours, grads):
        p.attach_grad()
        p.grad[:] = nd.array(g)
    d2lrnn.grad_clipping(ours, theta, mx.cpu())
    d2lrnn.sgd(ours, lr, 1)
    total = math.sqrt(sum((g ** 2).sum() for g in grads))
    assert total > theta  # clipping acts
    for b, o, v, g in zip(book, ours, values, grads):
        np.testing.assert_allclose(b, o.asnumpy(), rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(b, v - lr * g * theta / total, rtol=1e-5, atol=1e-6)


SWITCH_PROBE = r"""
import json, d2lrnn, mxnet as mx
from mxnet import npx
from mxnet.gluon import rnn as grnn
from d2l import mxnet as d2l
out = {"after_import": npx.is_np_array()}
c = d2lrnn.corpus_from_text("the time traveller was expounding a recondite matter to us " * 20, None)
def scratch():
    d2lrnn.set_seed(0)
    return d2lrnn.train_and_predict_rnn(d2lrnn.rnn, d2lrnn.get_params, d2lrnn.init_rnn_state, 8, c[3],
        mx.cpu(), c[0], c[2], c[1], False, 2, 5, 1.0, 1.0, 2, 5, 5, [], log=lambda *a: None).perplexity
def gluon():
    m = d2lrnn.RNNModel(grnn.RNN(8), c[3]); m.initialize()
    m(mx.nd.zeros((2, 3)), m.begin_state(batch_size=2, ctx=mx.cpu()))
def book_loader():
    d = d2l.DataModule(); d.batch_size = 2
    next(iter(d.get_tensorloader([mx.np.zeros((4, 3)), mx.np.zeros((4, 3))], train=False)))
def works(f):
    try:
        f(); return True
    except Exception:
        return False
off = scratch()
out.update(off={"gluon": works(gluon), "book_loader": works(book_loader)})
npx.set_np()
out.update(on={"gluon": works(gluon), "book_loader": works(book_loader), "scratch_same": scratch() == off})
print(json.dumps(out))
"""


@pytest.mark.slow  # a subprocess
def test_numpy_switch_interplay():
    """What the notebook tells the student: importing d2l leaves the switch off; the book's loader needs it
    on, d2lrnn's Gluon model needs it off, and d2lrnn's scratch functions give the same numbers either way."""
    out = json.loads(subprocess.run([sys.executable, "-c", SWITCH_PROBE], capture_output=True, text=True,
                                    check=True).stdout.strip().splitlines()[-1])
    assert out == {"after_import": False, "off": {"gluon": True, "book_loader": False},
                   "on": {"gluon": False, "book_loader": True, "scratch_same": True}}


# --- training side by side -----------------------------------------------------------------------

def test_both_train_to_finite_perplexity_below_vocab(book_data, corpus_dir):
    d2lrnn.set_seed(0)
    with mxnet_numpy(True):
        model = d2l.RNNLMScratch(d2l.RNNScratch(VOCAB, 16), VOCAB, lr=1)
        model.board.display = False
        d2l.Trainer(max_epochs=2, gradient_clip_val=1).fit(model, book_data)
    book_val = float(model.board.data["val_ppl"][-1].y)
    assert math.isfinite(book_val) and book_val < VOCAB, book_val

    with open(corpus_dir / "timemachine.txt") as f:
        corpus, vocab = book_data.build(f.read(), book_data.vocab)
    assert vocab is book_data.vocab and len(corpus) > 170000
    train = np.array(corpus[:2000])
    history = d2lrnn.train_and_predict_rnn(
        d2lrnn.rnn, d2lrnn.get_params, d2lrnn.init_rnn_state, 16, VOCAB, mx.cpu(), train, vocab.idx_to_token,
        vocab.token_to_idx, False, 2, 35, 100.0, 0.01, 8, 10, 10, [], log=lambda *a: None)
    ours = history.perplexity[-1]
    assert math.isfinite(ours) and ours < VOCAB, ours


# --- the notebook --------------------------------------------------------------------------------

@pytest.fixture
def kernel(tmp_path, monkeypatch):
    """A kernelspec that starts this interpreter; fast mode; figures drawn off screen."""
    pytest.importorskip("nbclient")
    pytest.importorskip("ipykernel")
    spec = tmp_path / "jupyter" / "kernels" / "d2lrnn-bridge"
    spec.mkdir(parents=True)
    (spec / "kernel.json").write_text(json.dumps({
        "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": "d2lrnn bridge test", "language": "python"}))
    monkeypatch.setenv("JUPYTER_PATH", str(tmp_path / "jupyter"))
    monkeypatch.setenv("D2LRNN_FAST", "1")
    monkeypatch.setenv("MPLBACKEND", "Agg")
    monkeypatch.setenv("PYTHONWARNINGS", "ignore::DeprecationWarning")
    return "d2lrnn-bridge"


@pytest.mark.slow
def test_notebook_runs(kernel, tmp_path, corpus_dir):
    import nbformat
    from nbclient import NotebookClient

    if NOTEBOOK is None:
        pytest.skip("no bridge_to_d2l notebook under notebooks/")
    nb = nbformat.read(str(NOTEBOOK), as_version=4)
    assert all(not c.get("outputs") for c in nb.cells
               if c.cell_type == "code"), "store the notebook without outputs"
    nb.cells.append(nbformat.v4.new_code_cell(
        "print('RESULT', book_start, our_start, trainer.held_out[-1], our_held_out[-1], board_val)"))
    start = time.time()
    NotebookClient(nb, kernel_name=kernel, timeout=600,
                   resources={"metadata": {"path": str(tmp_path)}}).execute()
    print(f"{NOTEBOOK.name} (fast mode): {time.time() - start:.1f} s")
    printed = "".join(o.get("text", "") for o in nb.cells[-1].outputs)
    assert any("image/png" in o.get("data", {}) for c in nb.cells for o in c.get("outputs", []))  # a figure
    book_start, our_start, book_end, our_end, board_val = map(float, printed.split("RESULT")[1].split())
    for value in (book_end, our_end, board_val):
        assert math.isfinite(value) and value < VOCAB
    assert book_end < book_start and our_end < our_start  # both learned something
