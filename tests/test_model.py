"""Model: parameters, state, the scratch RNN against Gluon's fused layer, device placement."""
import mxnet as mx
import numpy as np
import pytest
from mxnet import nd
from mxnet.gluon import rnn as grnn

import d2lrnn


def test_params_shapes_scale_and_grads():
    mx.random.seed(0)
    W_xh, W_hh, b_h, W_hq, b_q = params = d2lrnn.get_params(43, 256, mx.cpu())
    assert [p.shape for p in params] == [(43, 256), (256, 256), (256,), (256, 43), (43,)]
    assert abs(W_hh.asnumpy().std() - 0.01) < 1e-3 and b_h.sum() == 0 and b_q.sum() == 0
    assert all(p.grad is not None for p in params)


def test_state_is_a_tuple_of_zeros():
    state = d2lrnn.init_rnn_state(2, 512, mx.cpu())
    assert isinstance(state, tuple) and len(state) == 1 and state[0].shape == (2, 512)
    assert state[0].abs().sum() == 0


def _copy_into_gluon(params, num_hiddens, vocab_size):
    """A fused Gluon RNN layer and Dense layer holding the scratch parameters."""
    W_xh, W_hh, b_h, W_hq, b_q = params
    layer, dense = grnn.RNN(num_hiddens, activation="tanh"), mx.gluon.nn.Dense(vocab_size)
    layer.initialize()
    dense.initialize()
    layer(nd.zeros((1, 1, vocab_size)), layer.begin_state(1))
    dense(nd.zeros((1, num_hiddens)))
    p = layer.collect_params()
    prefix = layer.prefix
    p[prefix + "l0_i2h_weight"].set_data(W_xh.T)
    p[prefix + "l0_h2h_weight"].set_data(W_hh.T)
    p[prefix + "l0_i2h_bias"].set_data(b_h)
    p[prefix + "l0_h2h_bias"].set_data(nd.zeros_like(b_h))
    dense.weight.set_data(W_hq.T)
    dense.bias.set_data(b_q)
    return layer, dense


def test_scratch_rnn_equals_gluon_fused_rnn():
    mx.random.seed(1)
    vocab, hidden, batch, steps = 7, 5, 3, 4
    params = [nd.random.normal(scale=0.5, shape=p.shape) for p in d2lrnn.get_params(vocab, hidden, mx.cpu())]
    X = nd.random.randint(0, vocab, shape=(batch, steps)).astype("float32")
    H0 = nd.random.normal(shape=(batch, hidden))
    outputs, (H,) = d2lrnn.rnn(d2lrnn.to_onehot(X, vocab), (H0,), params)
    layer, dense = _copy_into_gluon(params, hidden, vocab)
    Y, [H_gluon] = layer(nd.one_hot(X.T, vocab), [H0.expand_dims(0)])  # Y: (steps, batch, hidden)
    np.testing.assert_allclose(nd.stack(*outputs).asnumpy(), dense(Y.reshape((-1, hidden))).reshape(
        (steps, batch, vocab)).asnumpy(), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(H.asnumpy(), H_gluon[0].asnumpy(), rtol=1e-5, atol=1e-6)


def test_rnn_model_forward_matches_scratch():
    mx.random.seed(2)
    vocab, hidden = 6, 4
    params = [nd.random.normal(scale=0.5, shape=p.shape) for p in d2lrnn.get_params(vocab, hidden, mx.cpu())]
    layer, dense = _copy_into_gluon(params, hidden, vocab)
    model = d2lrnn.RNNModel(layer, vocab)
    model.dense = dense
    X = nd.array([[0, 1, 2], [3, 4, 5]])
    out, state = model(X, model.begin_state(batch_size=2))
    outputs, (H,) = d2lrnn.rnn(d2lrnn.to_onehot(X, vocab), d2lrnn.init_rnn_state(2, hidden, mx.cpu()), params)
    assert out.shape == (6, vocab)
    np.testing.assert_allclose(out.asnumpy(), nd.concat(*outputs, dim=0).asnumpy(), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(state[0][0].asnumpy(), H.asnumpy(), rtol=1e-5, atol=1e-6)


class _Watched:
    """Wraps a model and records every array that goes in or comes out of it."""

    def __init__(self, model, seen):
        self.model, self.seen = model, seen

    def __call__(self, X, state):
        logits, new_state = self.model(X, state)
        self.seen.extend([X, *state, logits, *new_state])
        return logits, new_state

    def __getattr__(self, name):
        return getattr(self.model, name)


@pytest.mark.parametrize("name", list(d2lrnn.MODELS))
def test_every_model_stays_on_the_given_context(tiny, name):
    """MXNet mixes cpu(0) and cpu(1) silently, so this catches what would break on a GPU: training
    (random and sequential), held-out evaluation, generation, gradients through time and checkpoints."""
    ctx = mx.cpu(1)
    corpus, char_to_idx, idx_to_char, vocab = tiny
    seen = []
    model = _Watched(d2lrnn.build_model(name, vocab_size=vocab, num_hiddens=8, ctx=ctx), seen)
    for is_random in (True, False):
        d2lrnn.train(model, corpus, ctx=ctx, num_epochs=1, num_steps=5, batch_size=2, lr=1.0, clipping_theta=0.1,
                     is_random_iter=is_random, val_corpus=corpus[:100], idx_to_char=idx_to_char,
                     char_to_idx=char_to_idx, prefixes=["the"], pred_period=1, pred_len=3, log=lambda *a: None)
    d2lrnn.state_grad_norms(model, corpus[:6], ctx=ctx, clip_theta=1.0)
    d2lrnn.param_grad_norms(model, corpus[:6], [3], ctx=ctx)
    arrays = model.param_arrays()
    seen += arrays + [a.grad for a in arrays] + list(d2lrnn.Adam(arrays, lr=0.1).state_arrays().values())
    for it in (d2lrnn.data_iter_random, d2lrnn.data_iter_consecutive):
        X, Y = next(it(corpus, 2, 5, ctx))
        seen += [X, Y]
    assert len(seen) > 20 and {a.context for a in seen} == {ctx}


def test_the_lecture_functions_stay_on_the_given_context(tiny):
    ctx = mx.cpu(1)
    corpus, char_to_idx, idx_to_char, vocab = tiny
    seen = []

    def watched_rnn(inputs, state, params):
        outputs, new_state = d2lrnn.rnn(inputs, state, params)
        seen.extend(list(inputs) + list(state) + list(params) + list(outputs) + list(new_state))
        return outputs, new_state

    for is_random in (True, False):
        d2lrnn.train_and_predict_rnn(
            rnn=watched_rnn, get_params=d2lrnn.get_params, init_rnn_state=d2lrnn.init_rnn_state, num_hiddens=8,
            vocab_size=vocab, ctx=ctx, corpus_indices=corpus, idx_to_char=idx_to_char, char_to_idx=char_to_idx,
            is_random_iter=is_random, num_epochs=1, num_steps=5, lr=1.0, clipping_theta=0.1, batch_size=2,
            pred_period=1, pred_len=3, prefixes=["the"], log=lambda *a: None)
    assert seen and {a.context for a in seen} == {ctx}


def test_gluon_model_stays_on_the_given_context(tiny):
    ctx = mx.cpu(1)
    corpus, char_to_idx, idx_to_char, vocab = tiny
    model = d2lrnn.RNNModel(grnn.RNN(8), vocab)
    d2lrnn.train_and_predict_rnn_gluon(
        model=model, num_hiddens=8, vocab_size=vocab, ctx=ctx, corpus_indices=corpus, idx_to_char=idx_to_char,
        char_to_idx=char_to_idx, num_epochs=1, num_steps=5, lr=1.0, clipping_theta=0.1, batch_size=2,
        pred_period=1, pred_len=3, prefixes=["the"], log=lambda *a: None)
    assert {p.list_ctx()[0] for p in model.collect_params().values()} == {ctx}
    state = model.begin_state(batch_size=2, ctx=ctx)
    out, new_state = model(nd.zeros((2, 3), ctx=ctx), state)
    assert {a.context for a in [out, *state, *new_state]} == {ctx}


def test_scratch_model_interface_shapes(tiny):
    """logits are (steps * batch, vocab), time-major: row t * batch + b is step t of sequence b."""
    _, _, _, vocab = tiny
    for name in d2lrnn.MODELS:
        model = d2lrnn.build_model(name, vocab_size=vocab, num_hiddens=6, ctx=mx.cpu())
        X = nd.array(np.random.RandomState(0).randint(0, vocab, size=(3, 4)))
        logits, state = model(X, model.begin_state(batch_size=3, ctx=mx.cpu()))
        assert logits.shape == (12, vocab) and len(state) == (2 if "lstm" in name else 1)
        first, _ = model(X[:, :1], model.begin_state(batch_size=3, ctx=mx.cpu()))
        np.testing.assert_allclose(logits[:3].asnumpy(), first.asnumpy(), rtol=1e-5, atol=1e-6)
        assert model.config == {"model": name, "hidden": 6, "layers": 1, "embed": 0, "dropout": 0.0}


def test_try_gpu_falls_back_to_cpu_without_cuda():
    assert d2lrnn.try_gpu() in (mx.cpu(), mx.gpu(0))
    assert d2lrnn.try_all_gpus()[0].device_type in ("cpu", "gpu")
    if mx.context.num_gpus() == 0:
        assert d2lrnn.try_gpu() == mx.cpu() and d2lrnn.try_all_gpus() == [mx.cpu()]
