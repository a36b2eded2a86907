"""Training: the one loop against the lecture's loop written out, detaching, how far Python runs ahead,
seeds, held-out perplexity, every registry model, hooks (stopping, resuming, keeping the best weights),
divergence and the history."""
import math
import random

import numpy as np
import pytest
from mxnet import autograd, nd
from mxnet.gluon import loss as gloss

import d2lrnn
from d2lrnn import training
from d2lrnn.training import Hook, Progress, TrainOptions, train_epoch

from helpers import CPU, init_rnn_state, numpy_arrays, randomize
from helpers import rnn as lecture_rnn


def _rnn_model(vocab, hidden, params=None):
    return d2lrnn.ScratchModel(d2lrnn.rnn, d2lrnn.get_params, d2lrnn.init_rnn_state, vocab_size=vocab,
                               num_hiddens=hidden, ctx=CPU, params=params)


def _lecture_epoch(params, corpus, vocab, options):
    """One sequential epoch as the lecture writes it, with its notebook's rnn (host syncs and all)."""
    loss, state, l_sum, n = gloss.SoftmaxCrossEntropyLoss(), None, 0.0, 0
    hidden = params[1].shape[0]
    for X, Y in d2lrnn.data_iter_consecutive(corpus, options.batch_size, options.num_steps):
        if state is None:
            state = init_rnn_state(options.batch_size, hidden, CPU)
        else:
            state = tuple(s.detach() for s in state)
        with autograd.record():
            outputs, state = lecture_rnn(d2lrnn.to_onehot(X, vocab), state, params)
            y = Y.T.reshape((-1,))
            l = loss(nd.concat(*outputs, dim=0), y).mean()
        l.backward()
        norm = math.sqrt(sum((p.grad.asnumpy().astype("float64") ** 2).sum() for p in params))
        for p in params:
            if norm > options.clipping_theta:
                p.grad[:] *= options.clipping_theta / norm
            p[:] = p - options.lr * p.grad
        l_sum += l.asscalar() * y.size
        n += y.size
    return math.exp(l_sum / n)


def test_train_epoch_equals_the_lecture_loop(tiny):
    """Same perplexities and same weights after two epochs: the fast path changes no semantics."""
    corpus, _, _, vocab = tiny
    options = TrainOptions(num_steps=5, batch_size=3, lr=1.0, clipping_theta=0.5)
    fast = randomize(d2lrnn.get_params(vocab, 16, CPU), scale=0.1)
    slow = randomize(d2lrnn.get_params(vocab, 16, CPU), scale=0.1)
    model = _rnn_model(vocab, 16, params=fast)
    for _ in range(2):
        p_fast = train_epoch(model, corpus, d2lrnn.SGD(fast, lr=options.lr), options, ctx=CPU)
        assert p_fast == pytest.approx(_lecture_epoch(slow, corpus, vocab, options), rel=1e-4)
    for a, b in zip(fast, slow):
        np.testing.assert_allclose(a.asnumpy(), b.asnumpy(), rtol=1e-3, atol=1e-5)


def test_state_is_detached_between_sequential_minibatches(tiny):
    """The gradient of minibatch 2 must equal the one computed from a constant copy of its state."""
    corpus, _, _, vocab = tiny
    batch, steps, hidden = 2, 6, 8
    corpus = corpus[:batch * (2 * steps + 1)]  # exactly two sequential minibatches
    model = _rnn_model(vocab, hidden)
    start = [p.copy() for p in model.params]
    train_epoch(model, corpus, d2lrnn.SGD(model.params, lr=0.0),  # lr 0: the weights stay at `start`
                TrainOptions(num_steps=steps, batch_size=batch, clipping_theta=1e9), ctx=CPU)
    (X1, _), (X2, Y2) = list(d2lrnn.data_iter_consecutive(corpus, batch, steps))
    for p in start:
        p.attach_grad()
    _, (H1,) = d2lrnn.rnn(d2lrnn.to_onehot(X1, vocab), d2lrnn.init_rnn_state(batch, hidden, CPU), start)
    with autograd.record():
        outputs, _ = d2lrnn.rnn(d2lrnn.to_onehot(X2, vocab), (H1.copy(),), start)
        l = gloss.SoftmaxCrossEntropyLoss()(nd.concat(*outputs, dim=0), Y2.T.reshape((-1,))).mean()
    l.backward()
    for p, r in zip(model.params, start):
        np.testing.assert_allclose(p.grad.asnumpy(), r.grad.asnumpy(), rtol=1e-4, atol=1e-7)


class _Counting:
    """A model wrapper that counts forward calls (one per minibatch)."""

    def __init__(self, model):
        self.model, self.calls = model, 0

    def __call__(self, X, state):
        self.calls += 1
        return self.model(X, state)

    def __getattr__(self, name):
        return getattr(self.model, name)


@pytest.mark.parametrize("lag", [training.LAG, 1])
def test_python_waits_only_on_the_minibatch_lag_places_back(tiny, monkeypatch, lag):
    """Python copies a loss to the host only once `lag` more minibatches are queued behind it: MXNet
    always has work, and no more than `lag` minibatches are ever in flight."""
    corpus, _, _, vocab = tiny
    model = _Counting(_rnn_model(vocab, 8))
    reads = []  # forward calls made when each host copy happened
    for name in ("asnumpy", "wait_to_read"):  # asscalar goes through asnumpy
        original = getattr(nd.NDArray, name)
        monkeypatch.setattr(nd.NDArray, name, lambda self, _o=original: reads.append(model.calls) or _o(self))
    options = TrainOptions(num_steps=5, batch_size=2, lr=1.0, clipping_theta=0.1, lag=lag)
    batches = training.num_batches(len(corpus), num_steps=5, batch_size=2)
    train_epoch(model, corpus, d2lrnn.SGD(model.param_arrays(), lr=1.0), options, ctx=CPU)
    assert batches > 10 and len(reads) == batches == model.calls  # one read per minibatch ...
    assert reads[:batches - lag] == [i + 1 + lag for i in range(batches - lag)]  # ... `lag` minibatches late
    assert reads[batches - lag:] == [batches] * lag  # the last ones at the end of the epoch


def _train_rnn(tiny, seed, epochs=3, **settings):
    corpus, _, _, vocab = tiny
    d2lrnn.set_seed(seed)
    lecture_like = dict(num_epochs=epochs, num_steps=8, batch_size=4, lr=10.0, clipping_theta=0.1,
                        is_random_iter=True)
    options = TrainOptions(**{**lecture_like, **settings})
    return d2lrnn.train(_rnn_model(vocab, 32), corpus, options, ctx=CPU)


def test_the_same_seed_gives_the_same_perplexities(tiny):
    a, b, c = _train_rnn(tiny, 7, epochs=1), _train_rnn(tiny, 7, epochs=1), _train_rnn(tiny, 8, epochs=1)
    assert a.perplexity == b.perplexity and a.perplexity != c.perplexity


def test_a_training_seed_shuffles_with_its_own_generator(tiny):
    """TrainOptions(seed=...) draws the random windows from a generator of its own: the same windows
    whatever Python's global generator holds, which it leaves untouched."""
    runs = []
    for global_seed in (1, 2):
        d2lrnn.set_seed(0)  # the same initial weights ...
        model = _rnn_model(tiny[3], 16)
        random.seed(global_seed)  # ... and a different global random state
        before = random.getstate()
        options = TrainOptions(num_epochs=2, num_steps=8, batch_size=4, lr=10.0, clipping_theta=0.1,
                               is_random_iter=True, seed=5)
        runs.append(d2lrnn.train(model, tiny[0], options, ctx=CPU).perplexity)
        assert random.getstate() == before
    assert runs[0] == runs[1]


def test_training_lowers_perplexity_below_uniform(tiny):
    h = _train_rnn(tiny, 0, epochs=6)
    assert h.epoch == list(range(1, 7)) and len(h.seconds) == 6
    assert h.perplexity[-1] < 0.3 * h.perplexity[0] and h.perplexity[0] < tiny[3] * 1.05


# --- held-out perplexity ------------------------------------------------------------------------------

def test_an_all_zero_model_scores_exactly_the_vocabulary_size(tiny):
    corpus, _, _, vocab = tiny
    zeros = [nd.zeros(p.shape) for p in d2lrnn.get_params(vocab, 8, CPU)]
    ppl = d2lrnn.evaluate_perplexity(_rnn_model(vocab, 8, params=zeros), corpus, ctx=CPU)
    assert ppl == pytest.approx(vocab, rel=1e-5)


def _by_hand(model, corpus, streams):
    """exp(mean cross-entropy) of every token after the first, the text cut into `streams` contiguous
    pieces (the last one shorter), each read from a zero state in one call."""
    targets = len(corpus) - 1
    length = -(-targets // streams)
    total = 0.0
    for s in range(streams):
        piece = corpus[s * length:min((s + 1) * length, targets) + 1]
        logits, _ = model(nd.array([piece[:-1]]), model.begin_state(batch_size=1, ctx=CPU))
        total += float(gloss.SoftmaxCrossEntropyLoss()(logits, nd.array(piece[1:])).sum().asscalar())
    return math.exp(total / targets)


@pytest.mark.parametrize("name", ["rnn", "lstm-bptt", "gluon-gru"])
def test_held_out_perplexity_predicts_every_token_once_whatever_the_window(tiny, name):
    corpus, _, _, vocab = tiny
    model = d2lrnn.build_model(name, vocab_size=vocab, num_hiddens=8, ctx=CPU)
    randomize(model.param_arrays(), scale=0.3)
    corpus = corpus[:770]
    assert len(corpus) - 1 == 3 * training.MIN_STREAM + 1  # three streams of 257, 257 and 255 predictions
    expected = _by_hand(model, corpus, 3)
    for num_steps in (35, 300):  # several windows, and one longer than a stream
        got = d2lrnn.evaluate_perplexity(model, corpus, ctx=CPU, num_steps=num_steps, batch_size=32)
        assert got == pytest.approx(expected, rel=1e-5), num_steps
    assert d2lrnn.evaluate_perplexity(model, corpus, ctx=CPU, batch_size=1) == pytest.approx(
        _by_hand(model, corpus, 1), rel=1e-5)
    short = corpus[:20]  # one stream, shorter than a window
    assert d2lrnn.evaluate_perplexity(model, short, ctx=CPU) == pytest.approx(_by_hand(model, short, 1),
                                                                              rel=1e-5)
    with pytest.raises(ValueError, match="at least 2 tokens"):
        d2lrnn.evaluate_perplexity(model, corpus[:1], ctx=CPU)


@pytest.mark.parametrize("scale,expected", [(1e6, math.inf), (math.nan, math.nan)], ids=["overflow", "nan"])
def test_evaluate_reports_a_runaway_model_over_the_whole_text(tiny, scale, expected):
    """Held-out perplexity of a broken model is inf or nan for the whole text, never an exception."""
    corpus, _, _, vocab = tiny
    params = [p * scale for p in d2lrnn.get_params(vocab, 8, CPU)]
    ppl = d2lrnn.evaluate_perplexity(_rnn_model(vocab, 8, params=params), corpus, ctx=CPU, num_steps=5,
                                     batch_size=2)  # many more minibatches than the loss meter's lag
    assert (math.isnan(ppl) if math.isnan(expected) else ppl == expected)


# --- every model, one loop ----------------------------------------------------------------------------

@pytest.mark.parametrize("name", list(d2lrnn.MODELS))
def test_every_registry_model_trains_through_the_one_loop(tiny, name):
    """Scratch and fused models alike: held-out curve, lower perplexity, a sample per preview period."""
    corpus, char_to_idx, idx_to_char, vocab = tiny
    model = d2lrnn.build_model(name, vocab_size=vocab, num_hiddens=16, ctx=CPU)
    printed = []
    h = d2lrnn.train(model, corpus[:400], TrainOptions(num_epochs=4, num_steps=8, batch_size=8), ctx=CPU,
                     val_corpus=corpus[400:600], log=printed.append,
                     preview=d2lrnn.Preview(["the"], idx_to_char, char_to_idx, period=2, length=5))
    assert len(h.val_perplexity) == 4 and all(1 < v < 2 * vocab for v in h.val_perplexity)
    assert h.perplexity[-1] < 0.9 * h.perplexity[0]
    assert [line[:7] for line in printed[::2]] == ["epoch 2", "epoch 4"]
    assert [len(line) for line in printed[1::2]] == [len(" - the") + 5] * 2


@pytest.mark.parametrize("name", ["lstm-bptt", "gluon-lstm"])
def test_deep_embedded_models_learn_with_adam(tiny, name):
    corpus, _, _, vocab = tiny
    model = d2lrnn.build_model(name, vocab_size=vocab, num_hiddens=16, ctx=CPU, num_layers=2, embed_size=8,
                               dropout=0.1)
    options = TrainOptions(num_epochs=3, num_steps=8, batch_size=4, lr=0.01, clipping_theta=1.0,
                           optimizer="adam")
    h = d2lrnn.train(model, corpus[:400], options, ctx=CPU)
    assert h.perplexity[-1] < h.perplexity[0]


def test_training_continues_a_history_with_the_same_optimiser(tiny):
    corpus, _, _, vocab = tiny
    model = d2lrnn.build_model("gluon-lstm", vocab_size=vocab, num_hiddens=32, ctx=CPU)
    opt = d2lrnn.Adam(model.param_arrays(), lr=0.01)
    options = TrainOptions(num_epochs=3, num_steps=8, batch_size=4, clipping_theta=1.0, optimizer=opt)
    h = d2lrnn.train(model, corpus, options, ctx=CPU)
    options.num_epochs = 2
    d2lrnn.train(model, corpus, options, ctx=CPU, history=h)
    assert h.epoch == [1, 2, 3, 4, 5]
    assert opt.t == 5 * training.num_batches(len(corpus), num_steps=8, batch_size=4)
    assert h.perplexity[-1] < 0.8 * h.perplexity[0]


def test_history_csv_round_trip_keeps_columns_aligned(tmp_path):
    h = d2lrnn.History()
    h.add(5.0, 0.5)                      # an epoch from a run without held-out text
    h.add(4.0, 0.4, 5.5)
    h.add(3.5, 0.1, 4.5, fraction=0.25)  # a measurement a quarter into epoch 3
    h.add(3.0, 0.4)
    h.to_csv(tmp_path / "h.csv")
    back = d2lrnn.History.from_csv(tmp_path / "h.csv")
    assert back == h and back.val_perplexity == [None, 5.5, 4.5, None] and "3 epochs" in repr(back)
    assert back.epoch == [1, 2, 2.25, 3] and back.best() == (2.25, 4.5) and back.epochs_done() == 3
    assert back.until(2.25).epoch == [1, 2, 2.25]


def test_divergence_stops_training_and_says_where_and_what_to_lower(tiny):
    from d2lrnn.training import Diverged, perplexity

    assert perplexity(0.0) == 1.0 and perplexity(1e4) == math.inf and math.isnan(perplexity(math.nan))
    with pytest.raises(Diverged, match=r"epoch 1, minibatch \d+: the loss became nan.*learning rate") as err:
        _train_rnn(tiny, 0, epochs=4, lr=math.inf, clipping_theta=0.1, lag=2)
    assert err.value.epoch == 1 and 1 <= err.value.batch <= 2 + 1  # caught within `lag` minibatches


# --- hooks ------------------------------------------------------------------------------------------

class _StopAt(Hook):
    """Records (epoch, minibatch) after every minibatch and the history's rows; stops at one minibatch."""

    def __init__(self, epoch, batch):
        self.at, self.seen, self.rows = (epoch, batch), [], []

    def on_batch(self, progress):
        self.seen.append((progress.epoch, progress.batch))
        return (progress.epoch, progress.batch) == self.at

    def on_epoch(self, progress):
        self.rows.append(progress.history.epoch[-1])


def test_a_hook_stops_training_mid_epoch_with_a_fractional_row_and_start_batch_resumes(tiny):
    corpus, _, _, vocab = tiny
    corpus = corpus[:300]
    total = training.num_batches(len(corpus), num_steps=5, batch_size=2)
    assert total == len(list(d2lrnn.data_iter_consecutive(corpus, 2, 5)))
    model, hook = _rnn_model(vocab, 8), _StopAt(2, 3)
    options = TrainOptions(num_epochs=None, num_steps=5, batch_size=2, lr=1.0, clipping_theta=0.1)
    h = d2lrnn.train(model, corpus, options, ctx=CPU, hooks=[hook], val_corpus=corpus[:100])
    assert hook.seen == [(1, i) for i in range(1, total + 1)] + [(2, 1), (2, 2), (2, 3)]
    assert h.epoch == hook.rows == [1, round(1 + 3 / total, 4)]
    assert all(v is not None for v in h.val_perplexity)  # the part of epoch 2 was scored too
    hook.seen.clear()
    options.num_epochs, options.start_batch = 1, 3
    d2lrnn.train(model, corpus, options, ctx=CPU, hooks=[hook], history=h)
    assert hook.seen == [(2, i) for i in range(4, total + 1)] and h.epoch == [1, round(1 + 3 / total, 4), 2]


def test_a_stop_asked_at_an_epochs_last_minibatch_ends_the_epoch_normally(tiny):
    corpus, _, _, vocab = tiny
    total = training.num_batches(len(corpus), num_steps=5, batch_size=2)
    options = TrainOptions(num_epochs=None, num_steps=5, batch_size=2, lr=1.0, clipping_theta=0.1)
    h = d2lrnn.train(_rnn_model(vocab, 8), corpus, options, ctx=CPU, hooks=[_StopAt(1, total)])
    assert h.epoch == [1]


class _Snapshots(Hook):
    """The weights after every epoch."""

    def __init__(self, model):
        self.model, self.weights = model, []

    def on_epoch(self, progress):
        self.weights.append(numpy_arrays(self.model.param_arrays()))


def test_keep_best_holds_the_weights_of_the_best_held_out_epoch(tiny):
    corpus, _, _, vocab = tiny
    model = d2lrnn.build_model("rnn", vocab_size=vocab, num_hiddens=8, ctx=CPU)
    best, snapshots = d2lrnn.KeepBest(model), _Snapshots(model)
    options = TrainOptions(num_epochs=5, num_steps=5, batch_size=4, lr=1e4, clipping_theta=0.01)
    # a huge lr: held-out perplexity jumps about
    h = d2lrnn.train(model, corpus[:300], options, ctx=CPU, val_corpus=corpus[-200:], hooks=[best, snapshots])
    assert best.epoch == 1 + int(np.argmin(h.val_perplexity)) and best.perplexity == min(h.val_perplexity)
    assert best.epoch < h.epoch[-1]  # so restoring really changes the weights
    best.restore()
    for a, kept in zip(numpy_arrays(model.param_arrays()), snapshots.weights[best.epoch - 1]):
        np.testing.assert_array_equal(a, kept)
    with pytest.raises(ValueError, match="val_corpus"):
        d2lrnn.KeepBest(model).restore()


def test_keep_best_judges_each_row_once_and_skips_a_resumed_runs_earlier_rows():
    model = _rnn_model(5, 4)
    h = d2lrnn.History()
    for val in (3.0, 2.0, math.nan, 2.5):
        h.add(4.0, 0.1, val)
    resumed = d2lrnn.KeepBest(model, perplexity=2.2, rows_seen=2)  # rows 1-2 were judged before the restart
    fresh = d2lrnn.KeepBest(model)
    for hook in (resumed, fresh):
        hook.on_epoch(Progress(history=h))
    assert (resumed.epoch, resumed.perplexity) == (None, 2.2)  # neither nan nor 2.5 beats 2.2
    assert (fresh.epoch, fresh.perplexity) == (4, 2.5)  # only the last row describes the weights it can copy
    h.add(4.0, 0.1, 1.5)
    fresh.on_batch(Progress(history=h))  # a row added within an epoch is judged at the next minibatch
    assert (fresh.epoch, fresh.perplexity) == (5, 1.5)

