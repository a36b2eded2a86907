"""The fast paths equal the plain lecture code: rnn (batched input/output layers, FullyConnected,
oneDNN tanh) against the one-step-at-a-time loop, grad_clipping (BLAS dots, in-place scaling)
and sgd (sgd_update) against numpy, train_epoch against a hand-written lecture loop."""
import math

import numpy as np
import pytest

import d2lrnn
import mxnet as mx
from mxnet import autograd, nd
from mxnet.gluon import loss as gloss

from d2lrnn.model import ScratchModel, get_params, init_rnn_state, rnn
from d2lrnn.optim import SGD, grad_clipping, sgd
from d2lrnn.training import train_epoch


def plain_rnn(inputs, state, params):
    """The lecture's cell, literally: three nd.dot per step."""
    W_xh, W_hh, b_h, W_hq, b_q = params
    H, = state
    outputs = []
    for X in inputs:
        H = nd.tanh(nd.dot(X, W_xh) + nd.dot(H, W_hh) + b_h)
        outputs.append(nd.dot(H, W_hq) + b_q)
    return outputs, (H,)


def _params(vocab, hidden, ctx=mx.cpu(), scale=0.3, seed=0):
    rng = np.random.RandomState(seed)
    params = get_params(vocab, hidden, ctx)
    for p in params:  # non-zero biases too, so every term is exercised
        p[:] = nd.array(rng.normal(scale=scale, size=p.shape), ctx=ctx)
    return params


def _inputs(vocab, batch, steps, ctx=mx.cpu(), seed=1):
    X = nd.array(np.random.RandomState(seed).randint(0, vocab, size=(batch, steps)), ctx=ctx)
    return d2lrnn.to_onehot(X, vocab)


@pytest.mark.parametrize("batch,steps", [(4, 7), (1, 1), (3, 1), (2, 35)])
def test_rnn_equals_the_plain_loop(batch, steps):
    vocab, hidden = 11, 16
    params = _params(vocab, hidden)
    H0 = nd.array(np.random.RandomState(2).normal(size=(batch, hidden)))
    inputs = _inputs(vocab, batch, steps)
    fast, (H_fast,) = rnn(inputs, (H0,), params)
    slow, (H_slow,) = plain_rnn(inputs, (H0,), params)
    assert isinstance(fast, list) and len(fast) == steps
    for a, b in zip(fast, slow):
        assert a.shape == (batch, vocab)
        np.testing.assert_allclose(a.asnumpy(), b.asnumpy(), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(H_fast.asnumpy(), H_slow.asnumpy(), rtol=1e-5, atol=1e-5)


def test_rnn_gradients_equal_the_plain_loops():
    """Autograd through the fast rnn gives the plain loop's gradients (params and initial state)."""
    vocab, hidden, batch, steps = 9, 12, 3, 6
    inputs = _inputs(vocab, batch, steps)
    y = nd.array(np.random.RandomState(3).randint(0, vocab, size=steps * batch))
    grads = []
    for model in (rnn, plain_rnn):
        params = _params(vocab, hidden)
        H0 = nd.array(np.random.RandomState(4).normal(size=(batch, hidden)))
        H0.attach_grad()
        with autograd.record():
            outputs, (H,) = model(inputs, (H0,), params)
            l = gloss.SoftmaxCrossEntropyLoss()(nd.concat(*outputs, dim=0), y).mean() + (H ** 2).sum()
        l.backward()
        grads.append([p.grad.asnumpy() for p in params] + [H0.grad.asnumpy()])
    for name, a, b in zip(["W_xh", "W_hh", "b_h", "W_hq", "b_q", "H0"], *grads):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6, err_msg=name)


def test_rnn_stays_on_the_given_context():
    ctx = mx.cpu(1)
    params = _params(5, 4, ctx=ctx)
    outputs, (H,) = rnn(_inputs(5, 2, 3, ctx=ctx), init_rnn_state(2, 4, ctx), params)
    assert all(o.context == ctx for o in outputs) and H.context == ctx


def _with_grads(shapes, scale, seed=0, ctx=mx.cpu()):
    rng = np.random.RandomState(seed)
    params = [nd.zeros(s, ctx=ctx) for s in shapes]
    for p in params:
        p.attach_grad()
        p.grad[:] = nd.array(rng.normal(scale=scale, size=p.shape), ctx=ctx)
    return params


# 5 arrays (RNN), 14 arrays (LSTM), odd shapes
SHAPES = [[(43, 512), (512, 512), (512,), (512, 43), (43,)],
          [(7, 5), (5, 5), (5,)] * 4 + [(5, 7), (7,)],
          [(1,), (3, 1, 2), (1000,)]]


@pytest.mark.parametrize("shapes", SHAPES)
@pytest.mark.parametrize("scale", [1e-6, 1.0])
def test_grad_clipping_equals_numpy(shapes, scale):
    theta = 0.01
    params = _with_grads(shapes, scale)
    before = [p.grad.asnumpy().astype("float64") for p in params]
    norm = math.sqrt(sum((g ** 2).sum() for g in before))
    assert grad_clipping(params, theta, mx.cpu()) is None
    factor = theta / norm if norm > theta else 1.0
    for p, g in zip(params, before):
        np.testing.assert_allclose(p.grad.asnumpy(), g * factor, rtol=1e-5, atol=1e-12)


def test_grad_clipping_stays_on_the_given_context():
    ctx = mx.cpu(1)
    params = _with_grads(SHAPES[0], 1.0, ctx=ctx)
    grad_clipping(params, 0.01, ctx)
    assert all(p.grad.context == ctx for p in params)
    total = math.sqrt(sum((p.grad.asnumpy().astype("float64") ** 2).sum() for p in params))
    assert total == pytest.approx(0.01, rel=1e-5)


@pytest.mark.parametrize("batch_size", [1, 32])
def test_sgd_equals_numpy_and_works_in_place(batch_size):
    params = _with_grads(SHAPES[0], 1.0)
    rng = np.random.RandomState(5)
    for p in params:
        p[:] = nd.array(rng.normal(size=p.shape))
    arrays = list(params)  # sgd must update these very arrays
    expected = [p.asnumpy() - 100.0 * p.grad.asnumpy() / batch_size for p in params]
    sgd(params, 100.0, batch_size)
    for p, a, e in zip(params, arrays, expected):
        assert p is a
        np.testing.assert_allclose(p.asnumpy(), e, rtol=1e-5, atol=1e-6)


def _lecture_epoch(params, corpus, vocab, hidden, steps, lr, theta, batch):
    """One sequential epoch written as the lecture writes it, with the plain cell (host syncs and all)."""
    loss, state, l_sum, n = gloss.SoftmaxCrossEntropyLoss(), None, 0.0, 0
    for X, Y in d2lrnn.data_iter_consecutive(corpus, batch, steps):
        state = init_rnn_state(batch, hidden, mx.cpu()) if state is None else tuple(s.detach() for s in state)
        with autograd.record():
            outputs, state = plain_rnn(d2lrnn.to_onehot(X, vocab), state, params)
            y = Y.T.reshape((-1,))
            l = loss(nd.concat(*outputs, dim=0), y).mean()
        l.backward()
        norm = math.sqrt(sum((p.grad.asnumpy().astype("float64") ** 2).sum() for p in params))
        for p in params:
            if norm > theta:
                p.grad[:] *= theta / norm
            p[:] = p - lr * p.grad
        l_sum += l.asscalar() * y.size
        n += y.size
    return math.exp(l_sum / n)


def test_train_epoch_equals_the_lecture_loop(tiny):
    """Same perplexities and same weights after two epochs (the fast path changes no semantics)."""
    corpus, _, _, vocab = tiny
    hidden, steps, lr, theta, batch = 16, 5, 1.0, 0.5, 3
    fast, slow = _params(vocab, hidden, scale=0.1), _params(vocab, hidden, scale=0.1)
    model = ScratchModel(rnn, None, init_rnn_state, vocab_size=vocab, num_hiddens=hidden, ctx=mx.cpu(),
                         params=fast)
    for _ in range(2):
        p_fast = train_epoch(model, corpus, SGD(fast, lr=lr), ctx=mx.cpu(), num_steps=steps, batch_size=batch,
                             clipping_theta=theta)
        p_slow = _lecture_epoch(slow, corpus, vocab, hidden, steps, lr, theta, batch)
        assert p_fast == pytest.approx(p_slow, rel=1e-4)
    for a, b in zip(fast, slow):
        np.testing.assert_allclose(a.asnumpy(), b.asnumpy(), rtol=1e-3, atol=1e-5)
