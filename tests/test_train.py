"""Training: clipping, SGD, detaching, host syncs, determinism, the printed report, held-out perplexity."""
import math
import re

import mxnet as mx
import numpy as np
import pytest
from mxnet import autograd, nd
from mxnet.gluon import loss as gloss
from mxnet.gluon import rnn as grnn

import d2lrnn


def _with_grads(*grads):
    params = []
    for g in grads:
        p = nd.zeros(len(g))
        p.attach_grad()
        p.grad[:] = nd.array(g)
        params.append(p)
    return params


def test_grad_clipping_scales_to_theta_by_global_norm():
    params = _with_grads([3.0, 0.0], [4.0])  # global norm 5
    d2lrnn.grad_clipping(params, 1.0, mx.cpu())
    np.testing.assert_allclose(params[0].grad.asnumpy(), [0.6, 0.0], rtol=1e-6)
    np.testing.assert_allclose(params[1].grad.asnumpy(), [0.8], rtol=1e-6)


def test_grad_clipping_leaves_small_gradients_alone():
    params = _with_grads([3.0, 0.0], [4.0])
    d2lrnn.grad_clipping(params, 10.0, mx.cpu())
    np.testing.assert_array_equal(params[0].grad.asnumpy(), [3.0, 0.0])


def test_grad_clipping_rejects_non_positive_theta():
    with pytest.raises(ValueError, match="clipping_theta must be positive"):
        d2lrnn.grad_clipping(_with_grads([1.0]), 0, mx.cpu())


def test_sgd_by_hand():
    p, = _with_grads([2.0, -4.0])
    p[:] = nd.array([1.0, 1.0])
    d2lrnn.sgd([p], 0.5, 2)  # 1 - 0.5 * g / 2
    np.testing.assert_allclose(p.asnumpy(), [0.5, 2.0])


def test_state_is_detached_between_sequential_minibatches(tiny):
    """The gradient of minibatch 2 must equal the one computed from a constant copy of its state."""
    corpus, _, _, vocab = tiny
    batch, steps, hidden = 2, 6, 8
    corpus = corpus[:batch * (2 * steps + 1)]  # exactly two sequential minibatches
    mx.random.seed(3)
    params = d2lrnn.get_params(vocab, hidden, mx.cpu())
    start = [p.copy() for p in params]
    d2lrnn.train_epoch(d2lrnn.rnn, params, d2lrnn.init_rnn_state, hidden, vocab, mx.cpu(), corpus,
                       False, steps, 0.0, 1e9, batch)  # lr 0: params stay at `start`
    got = [p.grad.copy() for p in params]

    (X1, _), (X2, Y2) = list(d2lrnn.data_iter_consecutive(corpus, batch, steps))
    ref = [p.copy() for p in start]
    for p in ref:
        p.attach_grad()
    _, (H1,) = d2lrnn.rnn(d2lrnn.to_onehot(X1, vocab), d2lrnn.init_rnn_state(batch, hidden, mx.cpu()), ref)
    with autograd.record():
        outputs, _ = d2lrnn.rnn(d2lrnn.to_onehot(X2, vocab), (H1.copy(),), ref)
        l = gloss.SoftmaxCrossEntropyLoss()(nd.concat(*outputs, dim=0), Y2.T.reshape((-1,))).mean()
    l.backward()
    for g, r in zip(got, ref):
        np.testing.assert_allclose(g.asnumpy(), r.grad.asnumpy(), rtol=1e-4, atol=1e-7)


def test_no_host_sync_per_minibatch(tiny, monkeypatch):
    corpus, _, _, vocab = tiny
    calls = []
    for name in ("asnumpy", "wait_to_read"):  # asscalar goes through asnumpy
        original = getattr(nd.NDArray, name)
        monkeypatch.setattr(nd.NDArray, name, lambda self, _o=original, _n=name: calls.append(_n) or _o(self))
    params = d2lrnn.get_params(vocab, 8, mx.cpu())
    batches = len(list(d2lrnn.data_iter_consecutive(corpus, 2, 5)))
    calls.clear()
    d2lrnn.train_epoch(d2lrnn.rnn, params, d2lrnn.init_rnn_state, 8, vocab, mx.cpu(), corpus, False, 5,
                       1.0, 0.1, 2)
    assert batches > 10 and calls == ["asnumpy"]  # one sync for the whole epoch


def _train(tiny, seed, epochs=3, **kw):
    corpus, char_to_idx, idx_to_char, vocab = tiny
    d2lrnn.set_seed(seed)
    return d2lrnn.train_and_predict_rnn(d2lrnn.rnn, d2lrnn.get_params, d2lrnn.init_rnn_state, 32, vocab,
                                        mx.cpu(), corpus, idx_to_char, char_to_idx, True, epochs, 8, 10.0,
                                        0.1, 4, 100, 10, ["the"], log=lambda *a: None, **kw)


def test_same_seed_same_perplexities(tiny):
    a, b, c = _train(tiny, 7), _train(tiny, 7), _train(tiny, 8)
    assert a.perplexity == b.perplexity and a.perplexity != c.perplexity


def test_training_lowers_perplexity_below_uniform(tiny):
    h = _train(tiny, 0, epochs=15)
    assert h.epoch == list(range(1, 16)) and len(h.seconds) == 15
    assert h.perplexity[-1] < 0.2 * h.perplexity[0] and h.perplexity[0] < tiny[3] * 1.05


def test_prints_the_lecture_report(tiny, capsys):
    corpus, char_to_idx, idx_to_char, vocab = tiny
    d2lrnn.train_and_predict_rnn(d2lrnn.rnn, d2lrnn.get_params, d2lrnn.init_rnn_state, 16, vocab, mx.cpu(),
                                 corpus, idx_to_char, char_to_idx, False, 4, 5, 1.0, 0.1, 2, 2, 7,
                                 ["the", "time"])
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 6
    assert re.fullmatch(r"epoch 2, perplexity \d+\.\d{6}, time \d+\.\d\d sec", lines[0])
    assert lines[1].startswith(" - the") and len(lines[1]) == len(" - the") + 7
    assert lines[3].startswith("epoch 4")


def test_held_out_curve_and_all_zero_model(tiny):
    corpus, _, _, vocab = tiny
    zeros = [nd.zeros(p.shape) for p in d2lrnn.get_params(vocab, 8, mx.cpu())]
    ppl = d2lrnn.evaluate_perplexity(d2lrnn.rnn, zeros, d2lrnn.init_rnn_state, 8, vocab, mx.cpu(), corpus)
    assert ppl == pytest.approx(vocab, rel=1e-5)
    h = _train(tiny, 0, epochs=2, val_corpus=corpus[:200])
    assert len(h.val_perplexity) == 2 and all(1 < v < 2 * vocab for v in h.val_perplexity)


def test_history_csv_round_trip(tmp_path):
    h = d2lrnn.History()
    h.add(5.0, 0.5, 6.0)
    h.add(4.0, 0.4, 5.5)
    h.to_csv(tmp_path / "h.csv")
    back = d2lrnn.History.from_csv(tmp_path / "h.csv")
    assert back == h and "2 epochs" in repr(back)


def test_gluon_training_learns(tiny):
    corpus, char_to_idx, idx_to_char, vocab = tiny
    d2lrnn.set_seed(0)
    model = d2lrnn.RNNModel(grnn.RNN(32), vocab)
    h = d2lrnn.train_and_predict_rnn_gluon(model, 32, vocab, mx.cpu(), corpus, idx_to_char, char_to_idx, 10,
                                           8, 10.0, 0.1, 4, 100, 10, ["the"], log=lambda *a: None)
    assert h.perplexity[-1] < 0.75 * h.perplexity[0]


def test_infinite_theta_means_no_clipping():
    params = _with_grads([3e6, 4e6])
    d2lrnn.grad_clipping(params, math.inf, mx.cpu())
    np.testing.assert_array_equal(params[0].grad.asnumpy(), [3e6, 4e6])


def test_diverged_training_reports_infinite_perplexity(tiny):
    from d2lrnn.train import perplexity

    assert perplexity(0.0) == 1.0 and perplexity(1e4) == math.inf
    corpus, char_to_idx, idx_to_char, vocab = tiny
    d2lrnn.set_seed(0)
    h = d2lrnn.train_and_predict_rnn(d2lrnn.rnn, d2lrnn.get_params, d2lrnn.init_rnn_state, 32, vocab, mx.cpu(),
                                     corpus, idx_to_char, char_to_idx, True, 4, 8, 1e6, math.inf, 4, 100, 10,
                                     ["the"], log=lambda *a: None)
    assert len(h.perplexity) == 4 and h.perplexity[-1] > 1e3


def test_a_bad_prefix_fails_before_any_training(tiny):
    corpus, char_to_idx, idx_to_char, vocab = tiny
    epochs = []
    with pytest.raises(ValueError, match="'X'"):
        d2lrnn.train_and_predict_rnn(d2lrnn.rnn, d2lrnn.get_params, d2lrnn.init_rnn_state, 8, vocab, mx.cpu(),
                                     corpus, idx_to_char, char_to_idx, False, 3, 5, 1.0, 0.1, 2, 1, 5,
                                     ["the", "X"], log=epochs.append)
    assert epochs == []
    model = d2lrnn.RNNModel(grnn.RNN(8), vocab)
    with pytest.raises(ValueError, match="'X'"):
        d2lrnn.train_and_predict_rnn_gluon(model, 8, vocab, mx.cpu(), corpus, idx_to_char, char_to_idx, 3, 5,
                                           1.0, 0.1, 2, 1, 5, ["X"], log=epochs.append)
    assert epochs == []
