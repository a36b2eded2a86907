"""The lecture's notebook code, written the lecture's way, runs with `import d2lrnn as d2l`; and the
lecture's loop trains what it is given.

Notebook globals, a zero-argument get_params closure, positional calls everywhere, and the GRU/LSTM
pattern of passing one's own cell, parameters and state to the shared training loop. The notebook's
own rnn, init_rnn_state and get_params are in helpers.py (benchmarks/bench_speed.py trains them too).
"""
import math
import re

import pytest
from mxnet import autograd
from mxnet.gluon import rnn as grnn

import d2lrnn
from d2lrnn.cells.batched import BatchedModel
from d2lrnn.training import lecture_model

from helpers import CPU, init_rnn_state, notebook_get_params, rnn

BY_HAND_LINE = ("training d2lrnn's batched rnn cell with the backward pass written by hand "
                "(backward='by-hand')")


def test_rnn_scratch_notebook(corpus_dir, capsys):
    from mxnet import nd

    import d2lrnn as d2l

    (corpus_indices, char_to_idx, idx_to_char, vocab_size) = d2l.load_data_time_machine()
    corpus_indices = corpus_indices[:800]  # keep the test quick; the code is the lecture's

    X = nd.arange(10).reshape((2, 5))
    inputs = d2l.to_onehot(X, vocab_size)
    assert len(inputs) == 5 and inputs[0].shape == (2, 43)

    num_hiddens = 64
    ctx = d2l.try_gpu()
    get_params = notebook_get_params(vocab_size, num_hiddens, ctx)
    state = init_rnn_state(X.shape[0], num_hiddens, ctx)
    inputs = d2l.to_onehot(X.as_in_context(ctx), vocab_size)
    params = get_params()
    outputs, state_new = rnn(inputs, state, params)
    assert len(outputs) == 5 and outputs[0].shape == (2, 43) and state_new[0].shape == (2, 64)

    text = d2l.predict_rnn('traveller', 10, rnn, params, init_rnn_state, num_hiddens, vocab_size,
                           ctx, idx_to_char, char_to_idx)
    assert text.startswith('traveller') and len(text) == len('traveller') + 10

    num_epochs, num_steps, batch_size, lr, clipping_theta = 4, 16, 8, 1e2, 1e-2
    pred_period, pred_len, prefixes = 2, 20, ['traveller', 'time traveller']
    for is_random_iter in (True, False):
        d2l.train_and_predict_rnn(rnn, get_params, init_rnn_state, num_hiddens, vocab_size, ctx,
                                  corpus_indices, idx_to_char, char_to_idx, is_random_iter, num_epochs,
                                  num_steps, lr, clipping_theta, batch_size, pred_period, pred_len,
                                  prefixes)
    printed = capsys.readouterr().out
    assert printed.count("epoch 4, perplexity") == 2 and printed.count(" - time traveller") == 4
    assert "by hand" not in printed


def test_rnn_gluon_notebook(corpus_dir, capsys):
    from mxnet import nd
    from mxnet.gluon import rnn

    import d2lrnn as d2l

    (corpus_indices, char_to_idx, idx_to_char, vocab_size) = d2l.load_data_time_machine()
    corpus_indices = corpus_indices[:1200]
    num_hiddens = 32
    rnn_layer = rnn.RNN(num_hiddens)
    rnn_layer.initialize()
    batch_size, num_steps = 2, 35
    state = rnn_layer.begin_state(batch_size=batch_size)
    X = nd.random.uniform(shape=(num_steps, batch_size, vocab_size))
    Y, state_new = rnn_layer(X, state)
    assert Y.shape == (35, 2, 32) and len(state_new) == 1

    ctx = d2l.try_gpu()
    model = d2l.RNNModel(rnn_layer, vocab_size)
    model.initialize(force_reinit=True, ctx=ctx)
    text = d2l.predict_rnn_gluon('traveller', 10, model, vocab_size, ctx, idx_to_char, char_to_idx)
    assert text.startswith('traveller') and len(text) == len('traveller') + 10
    assert set(text) <= set(idx_to_char)
    assert text == d2l.generate(model, 'traveller', 10, ctx=ctx, idx_to_char=idx_to_char,
                                char_to_idx=char_to_idx)

    num_epochs, batch_size, lr, clipping_theta = 2, 8, 1e2, 1e-2
    pred_period, pred_len, prefixes = 1, 20, ['traveller', 'time traveller']
    d2l.train_and_predict_rnn_gluon(model, num_hiddens, vocab_size, ctx, corpus_indices, idx_to_char,
                                    char_to_idx, num_epochs, num_steps, lr, clipping_theta,
                                    batch_size, pred_period, pred_len, prefixes)
    assert capsys.readouterr().out.count("perplexity") == 2


def test_gru_notebook_pattern_uses_the_shared_loop(corpus_dir):
    """The GRU/LSTM notebooks pass a cell, their zero-argument get_params and their own init state."""
    from mxnet import nd

    import d2lrnn as d2l

    (corpus_indices, char_to_idx, idx_to_char, vocab_size) = d2l.load_data_time_machine()
    corpus_indices = corpus_indices[:800]
    num_inputs, num_hiddens, num_outputs = vocab_size, 16, vocab_size
    ctx = d2l.try_gpu()

    def get_params():
        def _one(shape):
            return nd.random.normal(scale=0.01, shape=shape, ctx=ctx)

        def _three():
            return (_one((num_inputs, num_hiddens)), _one((num_hiddens, num_hiddens)),
                    nd.zeros(num_hiddens, ctx=ctx))

        W_xz, W_hz, b_z = _three()
        W_xr, W_hr, b_r = _three()
        W_xh, W_hh, b_h = _three()
        W_hq = _one((num_hiddens, num_outputs))
        b_q = nd.zeros(num_outputs, ctx=ctx)
        params = [W_xz, W_hz, b_z, W_xr, W_hr, b_r, W_xh, W_hh, b_h, W_hq, b_q]
        for param in params:
            param.attach_grad()
        return params

    def init_gru_state(batch_size, num_hiddens, ctx):
        return (nd.zeros(shape=(batch_size, num_hiddens), ctx=ctx), )

    history = d2l.train_and_predict_rnn(d2l.gru, get_params, init_gru_state, num_hiddens, vocab_size, ctx,
                                        corpus_indices, idx_to_char, char_to_idx, False, 3, 16, 1e2, 1e-2,
                                        8, 3, 10, ['traveller'])
    assert len(history.perplexity) == 3 and all(math.isfinite(p) for p in history.perplexity)


# --- the lecture's loop trains what it is given -----------------------------------------------------

def _lecture_loop(tiny, cell=d2lrnn.rnn, log=None, **switch):
    corpus, char_to_idx, idx_to_char, vocab = tiny
    d2lrnn.set_seed(0)
    return d2lrnn.train_and_predict_rnn(cell, d2lrnn.get_params, d2lrnn.init_rnn_state, 16, vocab, CPU,
                                        corpus[:400], idx_to_char, char_to_idx, False, 3, 6, 10.0, 0.1, 3,
                                        10, 5, [], log=log or (lambda *a: None), **switch)


def test_the_lecture_loop_trains_the_given_cell_with_autograd(tiny, monkeypatch):
    """d2lrnn's own rnn is trained as given: the lecture's step function under autograd, and nothing
    is said about a backward pass by hand."""
    model = lecture_model(d2lrnn.rnn, d2lrnn.get_params, d2lrnn.init_rnn_state, vocab_size=5, num_hiddens=4,
                          ctx=CPU)
    assert type(model) is d2lrnn.ScratchModel and model.rnn is d2lrnn.rnn
    calls, record = [], autograd.record
    monkeypatch.setattr(autograd, "record", lambda *a, **k: calls.append(1) or record(*a, **k))
    monkeypatch.setattr(BatchedModel, "loss_and_grads", lambda *a: pytest.fail("the batched cell trained"))
    printed = []
    history = _lecture_loop(tiny, log=printed.append)
    assert len(history.perplexity) == 3 and calls and printed == []


def test_by_hand_says_so_and_gives_the_same_perplexities(tiny):
    printed = []
    by_hand = _lecture_loop(tiny, log=printed.append, backward="by-hand")
    assert printed == [BY_HAND_LINE]
    assert by_hand.perplexity == pytest.approx(_lecture_loop(tiny).perplexity, rel=1e-4)
    model = lecture_model(d2lrnn.lstm, d2lrnn.get_lstm_params, d2lrnn.init_lstm_state, vocab_size=5,
                          num_hiddens=4, ctx=CPU, backward="by-hand", log=lambda *a: None)
    assert type(model) is BatchedModel and model.cell == "lstm"


def test_by_hand_refuses_a_students_own_cell(tiny):
    def own_rnn(inputs, state, params):  # the same function, wrapped: the package cannot know that
        return d2lrnn.rnn(inputs, state, params)

    for cell, init in ((own_rnn, d2lrnn.init_rnn_state), (rnn, init_rnn_state), (d2lrnn.rnn, init_rnn_state)):
        with pytest.raises(ValueError, match="needs d2lrnn's own rnn, gru or lstm.*backward='autograd'"):
            lecture_model(cell, d2lrnn.get_params, init, vocab_size=5, num_hiddens=4, ctx=CPU,
                          backward="by-hand")
    with pytest.raises(ValueError, match="backward must be 'autograd' or 'by-hand', not 'fast'"):
        _lecture_loop(tiny, backward="fast")
    history = _lecture_loop(tiny, cell=own_rnn)  # with autograd, the student's cell trains
    assert history.perplexity == pytest.approx(_lecture_loop(tiny).perplexity, rel=1e-5)


# --- the lecture's positional helpers, as thin wrappers over the one loop ---------------------------

def test_lecture_loop_prints_the_lecture_report(tiny, capsys):
    corpus, char_to_idx, idx_to_char, vocab = tiny
    d2lrnn.train_and_predict_rnn(d2lrnn.rnn, d2lrnn.get_params, d2lrnn.init_rnn_state, 16, vocab, CPU,
                                 corpus[:300], idx_to_char, char_to_idx, False, 4, 5, 1.0, 0.1, 2, 2, 7,
                                 ["the", "time"])
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 6
    assert re.fullmatch(r"epoch 2, perplexity \d+\.\d{6}, time \d+\.\d\d sec", lines[0])
    assert lines[1].startswith(" - the") and len(lines[1]) == len(" - the") + 7
    assert lines[3].startswith("epoch 4")


def test_lecture_gluon_loop_learns(tiny):
    corpus, char_to_idx, idx_to_char, vocab = tiny
    model = d2lrnn.RNNModel(grnn.RNN(32), vocab)
    h = d2lrnn.train_and_predict_rnn_gluon(model, 32, vocab, CPU, corpus, idx_to_char, char_to_idx, 10,
                                           8, 10.0, 0.1, 4, 100, 10, ["the"], log=lambda *a: None)
    assert h.perplexity[-1] < 0.75 * h.perplexity[0]


def test_a_bad_prefix_fails_before_any_training(tiny):
    corpus, char_to_idx, idx_to_char, vocab = tiny
    epochs = []
    with pytest.raises(ValueError, match="'X'"):
        d2lrnn.train_and_predict_rnn(d2lrnn.rnn, d2lrnn.get_params, d2lrnn.init_rnn_state, 8, vocab, CPU,
                                     corpus, idx_to_char, char_to_idx, False, 3, 5, 1.0, 0.1, 2, 1, 5,
                                     ["the", "X"], log=epochs.append)
    assert epochs == []
    model = d2lrnn.RNNModel(grnn.RNN(8), vocab)
    with pytest.raises(ValueError, match="'X'"):
        d2lrnn.train_and_predict_rnn_gluon(model, 8, vocab, CPU, corpus, idx_to_char, char_to_idx, 3, 5,
                                           1.0, 0.1, 2, 1, 5, ["X"], log=epochs.append)
    assert epochs == []
