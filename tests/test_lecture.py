"""The lecture's notebook code, written the lecture's way, runs with `import d2lrnn as d2l`.

Notebook globals, a zero-argument get_params closure, positional calls everywhere, and the
GRU/LSTM pattern of passing one's own cell, parameters and state to the shared training loop.
"""
import math
import re

import mxnet as mx
import pytest
from mxnet.gluon import rnn as grnn

import d2lrnn

CPU = mx.cpu()


def test_rnn_scratch_notebook(corpus_dir, capsys):
    import d2lrnn as d2l
    from mxnet import nd

    (corpus_indices, char_to_idx, idx_to_char, vocab_size) = d2l.load_data_time_machine()
    corpus_indices = corpus_indices[:1200]  # keep the test quick; the code is the lecture's

    X = nd.arange(10).reshape((2, 5))
    inputs = d2l.to_onehot(X, vocab_size)
    assert len(inputs) == 5 and inputs[0].shape == (2, 43)

    num_inputs, num_hiddens, num_outputs = vocab_size, 64, vocab_size
    ctx = d2l.try_gpu()

    def get_params():
        def _one(shape):
            return nd.random.normal(scale=0.01, shape=shape, ctx=ctx)

        W_xh = _one((num_inputs, num_hiddens))
        W_hh = _one((num_hiddens, num_hiddens))
        b_h = nd.zeros(num_hiddens, ctx=ctx)
        W_hq = _one((num_hiddens, num_outputs))
        b_q = nd.zeros(num_outputs, ctx=ctx)
        params = [W_xh, W_hh, b_h, W_hq, b_q]
        for param in params:
            param.attach_grad()
        return params

    def init_rnn_state(batch_size, num_hiddens, ctx):
        return (nd.zeros(shape=(batch_size, num_hiddens), ctx=ctx), )

    def rnn(inputs, state, params):
        W_xh, W_hh, b_h, W_hq, b_q = params
        H, = state
        outputs = []
        for X in inputs:
            H = nd.tanh(nd.dot(X, W_xh) + nd.dot(H, W_hh) + b_h)
            Y = nd.dot(H, W_hq) + b_q
            outputs.append(Y)
        return outputs, (H,)

    state = init_rnn_state(X.shape[0], num_hiddens, ctx)
    inputs = d2l.to_onehot(X.as_in_context(ctx), vocab_size)
    params = get_params()
    outputs, state_new = rnn(inputs, state, params)
    assert len(outputs) == 5 and outputs[0].shape == (2, 43) and state_new[0].shape == (2, 64)

    text = d2l.predict_rnn('traveller', 10, rnn, params, init_rnn_state, num_hiddens, vocab_size,
                           ctx, idx_to_char, char_to_idx)
    assert len(text) == len('traveller') + 10

    num_epochs, num_steps, batch_size, lr, clipping_theta = 4, 16, 8, 1e2, 1e-2
    pred_period, pred_len, prefixes = 2, 20, ['traveller', 'time traveller']
    for is_random_iter in (True, False):
        d2l.train_and_predict_rnn(rnn, get_params, init_rnn_state, num_hiddens, vocab_size, ctx,
                                  corpus_indices, idx_to_char, char_to_idx, is_random_iter, num_epochs,
                                  num_steps, lr, clipping_theta, batch_size, pred_period, pred_len,
                                  prefixes)
    printed = capsys.readouterr().out
    assert printed.count("epoch 4, perplexity") == 2 and printed.count(" - time traveller") == 4


def test_rnn_gluon_notebook(corpus_dir, capsys):
    import d2lrnn as d2l
    from mxnet import nd
    from mxnet.gluon import rnn

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
    assert d2l.predict_rnn_gluon('traveller', 10, model, vocab_size, ctx, idx_to_char, char_to_idx)

    num_epochs, batch_size, lr, clipping_theta = 2, 8, 1e2, 1e-2
    pred_period, pred_len, prefixes = 1, 20, ['traveller', 'time traveller']
    d2l.train_and_predict_rnn_gluon(model, num_hiddens, vocab_size, ctx, corpus_indices, idx_to_char,
                                    char_to_idx, num_epochs, num_steps, lr, clipping_theta,
                                    batch_size, pred_period, pred_len, prefixes)
    assert capsys.readouterr().out.count("perplexity") == 2


def test_gru_notebook_pattern_uses_the_shared_loop(corpus_dir):
    """The GRU/LSTM notebooks pass their own cell, a zero-arg get_params and init state."""
    import d2lrnn as d2l
    from mxnet import nd

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

    def gru(inputs, state, params):
        W_xz, W_hz, b_z, W_xr, W_hr, b_r, W_xh, W_hh, b_h, W_hq, b_q = params
        H, = state
        outputs = []
        for X in inputs:
            Z = nd.sigmoid(nd.dot(X, W_xz) + nd.dot(H, W_hz) + b_z)
            R = nd.sigmoid(nd.dot(X, W_xr) + nd.dot(H, W_hr) + b_r)
            H_tilda = nd.tanh(nd.dot(X, W_xh) + R * nd.dot(H, W_hh) + b_h)  # the lecture's GRU
            H = Z * H + (1 - Z) * H_tilda
            Y = nd.dot(H, W_hq) + b_q
            outputs.append(Y)
        return outputs, (H,)

    history = d2l.train_and_predict_rnn(gru, get_params, init_gru_state, num_hiddens, vocab_size, ctx,
                                        corpus_indices, idx_to_char, char_to_idx, False, 3, 16, 1e2, 1e-2,
                                        8, 3, 10, ['traveller'])
    assert len(history.perplexity) == 3 and all(math.isfinite(p) for p in history.perplexity)


# --- the lecture's positional helpers, as thin wrappers over the one loop ---------------------------

def test_lecture_loop_prints_the_lecture_report(tiny, capsys):
    corpus, char_to_idx, idx_to_char, vocab = tiny
    d2lrnn.train_and_predict_rnn(d2lrnn.rnn, d2lrnn.get_params, d2lrnn.init_rnn_state, 16, vocab, CPU,
                                 corpus, idx_to_char, char_to_idx, False, 4, 5, 1.0, 0.1, 2, 2, 7,
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

