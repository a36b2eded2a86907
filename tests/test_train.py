"""Training: clipping, SGD and Adam, detaching, how far Python runs ahead, determinism, the printed
report, held-out perplexity, and one loop for every model in the registry."""
import math
import re

import mxnet as mx
import numpy as np
import pytest
from mxnet import autograd, nd
from mxnet.gluon import loss as gloss
from mxnet.gluon import rnn as grnn

import d2lrnn
from d2lrnn import training as train_mod

CPU = mx.cpu()


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
    d2lrnn.grad_clipping(params, 1.0, CPU)
    np.testing.assert_allclose(params[0].grad.asnumpy(), [0.6, 0.0], rtol=1e-6)
    np.testing.assert_allclose(params[1].grad.asnumpy(), [0.8], rtol=1e-6)


def test_grad_clipping_leaves_small_gradients_alone():
    params = _with_grads([3.0, 0.0], [4.0])
    d2lrnn.grad_clipping(params, 10.0, CPU)
    np.testing.assert_array_equal(params[0].grad.asnumpy(), [3.0, 0.0])


def test_global_norm_by_hand():
    assert d2lrnn.global_norm([nd.array([3.0, 0.0]), nd.array([[4.0]])]).asscalar() == pytest.approx(5.0)


def test_grad_clipping_rejects_non_positive_theta():
    with pytest.raises(ValueError, match="clipping_theta must be positive"):
        d2lrnn.grad_clipping(_with_grads([1.0]), 0, CPU)


def test_infinite_theta_means_no_clipping():
    params = _with_grads([3e6, 4e6])
    d2lrnn.grad_clipping(params, math.inf, CPU)
    np.testing.assert_array_equal(params[0].grad.asnumpy(), [3e6, 4e6])


def test_sgd_by_hand():
    p, = _with_grads([2.0, -4.0])
    p[:] = nd.array([1.0, 1.0])
    d2lrnn.sgd([p], 0.5, 2)  # 1 - 0.5 * g / 2
    np.testing.assert_allclose(p.asnumpy(), [0.5, 2.0])


def test_adam_matches_the_formula():
    """Two Adam steps against the update written out in numpy (bias-corrected moments)."""
    p, = _with_grads([0.5, -2.0])
    p[:] = nd.array([1.0, -1.0])
    opt = d2lrnn.Adam([p], lr=0.1)
    w, m, v = np.array([1.0, -1.0]), np.zeros(2), np.zeros(2)
    for t, g in enumerate([np.array([0.5, -2.0]), np.array([-1.0, 3.0])], start=1):
        p.grad[:] = nd.array(g)
        opt.step()
        m, v = 0.9 * m + 0.1 * g, 0.999 * v + 0.001 * g ** 2
        w = w - 0.1 * (m / (1 - 0.9 ** t)) / (np.sqrt(v / (1 - 0.999 ** t)) + 1e-8)
    np.testing.assert_allclose(p.asnumpy(), w, rtol=1e-5)
    fresh = d2lrnn.Adam([p.copy()], lr=0.1)
    fresh.load_state_arrays(opt.state_arrays())
    assert fresh.t == 2 and np.allclose(fresh.var[0].asnumpy(), v, rtol=1e-4)


def _rnn_model(vocab, hidden, ctx=CPU, params=None):
    return d2lrnn.ScratchModel(d2lrnn.rnn, d2lrnn.get_params, d2lrnn.init_rnn_state, vocab_size=vocab,
                               num_hiddens=hidden, ctx=ctx, params=params)


def test_state_is_detached_between_sequential_minibatches(tiny):
    """The gradient of minibatch 2 must equal the one computed from a constant copy of its state."""
    corpus, _, _, vocab = tiny
    batch, steps, hidden = 2, 6, 8
    corpus = corpus[:batch * (2 * steps + 1)]  # exactly two sequential minibatches
    mx.random.seed(3)
    model = _rnn_model(vocab, hidden)
    start = [p.copy() for p in model.params]
    d2lrnn.train_epoch(model, corpus, d2lrnn.SGD(model.params, lr=0.0), ctx=CPU, num_steps=steps,
                       batch_size=batch, clipping_theta=1e9)  # lr 0: params stay at `start`
    got = [p.grad.copy() for p in model.params]

    (X1, _), (X2, Y2) = list(d2lrnn.data_iter_consecutive(corpus, batch, steps))
    ref = [p.copy() for p in start]
    for p in ref:
        p.attach_grad()
    _, (H1,) = d2lrnn.rnn(d2lrnn.to_onehot(X1, vocab), d2lrnn.init_rnn_state(batch, hidden, CPU), ref)
    with autograd.record():
        outputs, _ = d2lrnn.rnn(d2lrnn.to_onehot(X2, vocab), (H1.copy(),), ref)
        l = gloss.SoftmaxCrossEntropyLoss()(nd.concat(*outputs, dim=0), Y2.T.reshape((-1,))).mean()
    l.backward()
    for g, r in zip(got, ref):
        np.testing.assert_allclose(g.asnumpy(), r.grad.asnumpy(), rtol=1e-4, atol=1e-7)


class _Counting:
    """A model wrapper that counts forward calls (one per minibatch)."""

    def __init__(self, model):
        self.model, self.calls = model, 0

    def __call__(self, X, state):
        self.calls += 1
        return self.model(X, state)

    def __getattr__(self, name):
        return getattr(self.model, name)


def test_python_never_waits_on_the_minibatch_it_just_queued(tiny, monkeypatch):
    """Python copies a loss to the host only once LAG more minibatches are queued behind it: MXNet
    always has work, and no more than LAG minibatches are ever in flight."""
    corpus, _, _, vocab = tiny
    model = _Counting(_rnn_model(vocab, 8))
    reads = []  # forward calls made when each host copy happened
    for name in ("asnumpy", "wait_to_read"):  # asscalar goes through asnumpy
        original = getattr(nd.NDArray, name)
        monkeypatch.setattr(nd.NDArray, name, lambda self, _o=original: reads.append(model.calls) or _o(self))
    batches = len(list(d2lrnn.data_iter_consecutive(corpus, 2, 5)))
    d2lrnn.train_epoch(model, corpus, d2lrnn.SGD(model.param_arrays(), lr=1.0), ctx=CPU, num_steps=5,
                       batch_size=2, clipping_theta=0.1)
    lag = train_mod.LAG
    assert batches > 10 and len(reads) == batches  # one read per minibatch ...
    in_loop = reads[:batches - lag]                # ... each LAG minibatches after it was queued
    assert in_loop == [i + 1 + lag for i in range(batches - lag)]
    assert reads[batches - lag:] == [batches] * lag  # the last ones at the end of the epoch


def _train_rnn(tiny, seed, epochs=3, **kw):
    corpus, char_to_idx, idx_to_char, vocab = tiny
    d2lrnn.set_seed(seed)
    model = _rnn_model(vocab, 32)
    settings = {**dict(num_steps=8, batch_size=4, lr=10.0, clipping_theta=0.1, is_random_iter=True), **kw}
    return d2lrnn.train(model, corpus, ctx=CPU, num_epochs=epochs, idx_to_char=idx_to_char,
                        char_to_idx=char_to_idx, **settings)


def test_same_seed_same_perplexities(tiny):
    a, b, c = _train_rnn(tiny, 7), _train_rnn(tiny, 7), _train_rnn(tiny, 8)
    assert a.perplexity == b.perplexity and a.perplexity != c.perplexity


def test_training_lowers_perplexity_below_uniform(tiny):
    h = _train_rnn(tiny, 0, epochs=15)
    assert h.epoch == list(range(1, 16)) and len(h.seconds) == 15
    assert h.perplexity[-1] < 0.2 * h.perplexity[0] and h.perplexity[0] < tiny[3] * 1.05


def test_evaluate_all_zero_model_is_exactly_uniform(tiny):
    corpus, _, _, vocab = tiny
    zeros = [nd.zeros(p.shape) for p in d2lrnn.get_params(vocab, 8, CPU)]
    ppl = d2lrnn.evaluate_perplexity(_rnn_model(vocab, 8, params=zeros), corpus, ctx=CPU)
    assert ppl == pytest.approx(vocab, rel=1e-5)


@pytest.mark.parametrize("scale,expected", [(1e6, math.inf), (math.nan, math.nan)], ids=["overflow", "nan"])
def test_evaluate_reports_a_runaway_model_over_the_whole_text(tiny, scale, expected):
    """Held-out perplexity of a broken model is inf or nan for the whole text, never an exception."""
    corpus, _, _, vocab = tiny
    params = [p * scale for p in d2lrnn.get_params(vocab, 8, CPU)]
    ppl = d2lrnn.evaluate_perplexity(_rnn_model(vocab, 8, params=params), corpus, ctx=CPU, num_steps=5,
                                     batch_size=2)  # many more minibatches than the loss meter's lag
    assert (math.isnan(ppl) if math.isnan(expected) else ppl == expected)


@pytest.mark.parametrize("name", list(d2lrnn.MODELS))
def test_every_registry_model_trains_through_the_one_loop(tiny, name):
    """Scratch and fused models alike: held-out curve, lower perplexity, a sample per pred_period."""
    corpus, char_to_idx, idx_to_char, vocab = tiny
    model = d2lrnn.build_model(name, vocab_size=vocab, num_hiddens=24, ctx=CPU)
    printed = []
    h = d2lrnn.train(model, corpus, ctx=CPU, num_epochs=6, num_steps=8, batch_size=4, lr=1e2,
                     clipping_theta=0.01, val_corpus=corpus[:300], idx_to_char=idx_to_char,
                     char_to_idx=char_to_idx, prefixes=["the"], pred_period=3, pred_len=5, log=printed.append)
    assert len(h.val_perplexity) == 6 and all(1 < v < 2 * vocab for v in h.val_perplexity)
    assert h.perplexity[-1] < 0.85 * h.perplexity[0]
    assert [line[:7] for line in printed[::2]] == ["epoch 3", "epoch 6"]
    assert [len(line) for line in printed[1::2]] == [len(" - the") + 5] * 2


def test_training_continues_a_history_and_adam_learns(tiny):
    corpus, char_to_idx, idx_to_char, vocab = tiny
    model = d2lrnn.build_model("gluon-lstm", vocab_size=vocab, num_hiddens=32, ctx=CPU)
    opt = d2lrnn.Adam(model.param_arrays(), lr=0.01)
    kw = dict(ctx=CPU, num_steps=8, batch_size=4, clipping_theta=1.0, optimizer=opt)
    h = d2lrnn.train(model, corpus, num_epochs=3, **kw)
    d2lrnn.train(model, corpus, num_epochs=2, history=h, **kw)
    assert h.epoch == [1, 2, 3, 4, 5] and opt.t == 5 * len(list(d2lrnn.data_iter_consecutive(corpus, 4, 8)))
    assert h.perplexity[-1] < 0.8 * h.perplexity[0]


def test_a_named_optimizer_needs_a_learning_rate(tiny):
    corpus, _, _, vocab = tiny
    with pytest.raises(ValueError, match="lr"):
        d2lrnn.train(_rnn_model(vocab, 4), corpus, ctx=CPU, num_epochs=1, num_steps=5, batch_size=2,
                     clipping_theta=1.0, optimizer="adam")


def test_history_csv_round_trip_keeps_columns_aligned(tmp_path):
    h = d2lrnn.History()
    h.add(5.0, 0.5)             # an epoch from a run without held-out text
    h.add(4.0, 0.4, 5.5)
    h.add(3.5, 0.1, 4.5, fraction=0.25)  # a measurement a quarter into epoch 3
    h.add(3.0, 0.4)
    h.to_csv(tmp_path / "h.csv")
    back = d2lrnn.History.from_csv(tmp_path / "h.csv")
    assert back == h and back.val_perplexity == [None, 5.5, 4.5, None] and "3 epochs" in repr(back)
    assert back.epoch == [1, 2, 2.25, 3] and back.best() == (2.25, 4.5) and back.epochs_done() == 3


def test_divergence_stops_training_and_says_where_and_what_to_lower(tiny):
    from d2lrnn.training import Diverged, perplexity

    assert perplexity(0.0) == 1.0 and perplexity(1e4) == math.inf and math.isnan(perplexity(math.nan))
    with pytest.raises(Diverged, match=r"epoch 1, minibatch \d+: the loss became nan.*learning rate") as err:
        _train_rnn(tiny, 0, epochs=4, lr=math.inf, clipping_theta=0.1)
    assert err.value.epoch == 1 and 1 <= err.value.batch <= train_mod.LAG + 1  # caught within LAG minibatches


def test_on_batch_can_stop_training_and_start_batch_resumes(tiny):
    corpus, _, _, vocab = tiny
    seen = []

    def on_batch(epoch, done, meter):
        seen.append((epoch, done))
        return (epoch, done) == (2, 3)

    model = _rnn_model(vocab, 8)
    h = d2lrnn.train(model, corpus, ctx=CPU, num_epochs=None, num_steps=5, batch_size=2, lr=1.0,
                     clipping_theta=0.1, on_batch=on_batch)
    total = train_mod.num_batches(len(corpus), num_steps=5, batch_size=2)
    assert total == len(list(d2lrnn.data_iter_consecutive(corpus, 2, 5)))
    assert seen == [(1, i) for i in range(1, total + 1)] + [(2, 1), (2, 2), (2, 3)] and h.epoch == [1]
    seen.clear()
    d2lrnn.train(model, corpus, ctx=CPU, num_epochs=1, num_steps=5, batch_size=2, lr=1.0, clipping_theta=0.1,
                 on_batch=on_batch, history=h, start_batch=3)
    assert seen == [(2, i) for i in range(4, total + 1)] and h.epoch == [1, 2]



def test_keep_best_holds_the_weights_of_the_best_held_out_epoch(tiny):
    corpus, _, _, vocab = tiny
    model = d2lrnn.build_model("rnn", vocab_size=vocab, num_hiddens=16, ctx=CPU)
    best, seen = d2lrnn.KeepBest(model), []

    def on_epoch(epoch, history):
        best(epoch, history)
        seen.append([a.copy() for a in model.param_arrays()])

    h = d2lrnn.train(model, corpus, ctx=CPU, num_epochs=5, num_steps=5, batch_size=2, lr=1e4, clipping_theta=0.01,
                     val_corpus=corpus[-200:], on_epoch=on_epoch)  # a huge lr: held-out perplexity jumps about
    assert best.epoch == 1 + int(np.argmin(h.val_perplexity)) and best.perplexity == min(h.val_perplexity)
    best.restore()
    for a, kept in zip(model.param_arrays(), seen[best.epoch - 1]):
        np.testing.assert_array_equal(a.asnumpy(), kept.asnumpy())
    with pytest.raises(ValueError, match="val_corpus"):
        d2lrnn.KeepBest(model).restore()
