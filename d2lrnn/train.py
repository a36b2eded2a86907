"""Training: gradient clipping, SGD, one epoch, the lecture's training loop, held-out perplexity."""
import csv
import inspect
import math
import time
from dataclasses import dataclass, field

from . import _compat  # noqa: F401
from mxnet import autograd, gluon, init, nd
from mxnet.gluon import loss as gloss

from .data import data_iter_consecutive, data_iter_random, to_onehot
from .generate import encode_prefix, predict_rnn, predict_rnn_gluon


@dataclass
class History:
    """Per-epoch training record: perplexity, seconds and (optionally) held-out perplexity."""

    epoch: list = field(default_factory=list)
    perplexity: list = field(default_factory=list)
    seconds: list = field(default_factory=list)
    val_perplexity: list = field(default_factory=list)

    def add(self, perplexity, seconds, val_perplexity=None):
        """Record one more epoch."""
        self.epoch.append((self.epoch[-1] if self.epoch else 0) + 1)
        self.perplexity.append(perplexity)
        self.seconds.append(seconds)
        if val_perplexity is not None:
            self.val_perplexity.append(val_perplexity)

    def __repr__(self):
        if not self.epoch:
            return "History(no epochs)"
        val = f", held-out {self.val_perplexity[-1]:.3f}" if self.val_perplexity else ""
        return (f"History({len(self.epoch)} epochs, final perplexity {self.perplexity[-1]:.3f}{val}, "
                f"{sum(self.seconds) / len(self.seconds):.2f} s/epoch)")

    def to_csv(self, path):
        """Write epoch, perplexity, seconds[, val_perplexity] rows."""
        cols = ["epoch", "perplexity", "seconds"] + (["val_perplexity"] if self.val_perplexity else [])
        with open(path, "w", newline="") as f:
            writer = csv.writer(f)
            writer.writerow(cols)
            writer.writerows(zip(*(getattr(self, c) for c in cols)))

    @classmethod
    def from_csv(cls, path):
        """Read a history written by to_csv."""
        with open(path, newline="") as f:
            rows = list(csv.DictReader(f))
        h = cls()
        for r in rows:
            h.epoch.append(int(r["epoch"]))
            h.perplexity.append(float(r["perplexity"]))
            h.seconds.append(float(r["seconds"]))
            if r.get("val_perplexity"):
                h.val_perplexity.append(float(r["val_perplexity"]))
        return h


def perplexity(mean_loss):
    """exp of the mean cross-entropy; inf once training has diverged (instead of OverflowError)."""
    return math.exp(mean_loss) if mean_loss < 709 else math.inf  # exp overflows a float above ~709.78


def grad_clipping(params, theta, ctx):
    """Rescale all gradients so their global L2 norm is at most theta (no host sync)."""
    if not theta > 0:
        raise ValueError(f"clipping_theta must be positive, got {theta}")
    if theta == math.inf:  # no clipping
        return
    grads = [p.grad for p in params]
    # |g|^2 = g . g: one BLAS dot per gradient, several times faster than (g ** 2).sum() on a CPU
    norm = nd.sqrt(nd.add_n(*[nd.dot(g.reshape(-1), g.reshape(-1)) for g in grads]))  # (1,), on device
    scale = theta / nd.maximum(norm, theta)  # 1 when norm <= theta, else theta / norm
    for g in grads:
        nd.broadcast_mul(g, scale, out=g)  # g *= scale, in place


def sgd(params, lr, batch_size):
    """Minibatch SGD in place: p -= lr * grad / batch_size."""
    for p in params:
        nd.sgd_update(p, p.grad, lr=lr, rescale_grad=1.0 / batch_size, out=p)  # one fused operator


def detach(state):
    """Cut the state from the graph of the minibatch that produced it (keeps the values)."""
    return tuple(s.detach() for s in state)


def call_get_params(get_params, vocab_size, num_hiddens, ctx):
    """Call the lecture's zero-argument get_params closure, or get_params(vocab, hidden, ctx)."""
    try:
        inspect.signature(get_params).bind(vocab_size, num_hiddens, ctx)
    except TypeError:
        return get_params()
    return get_params(vocab_size, num_hiddens, ctx)


def train_epoch(rnn, params, init_rnn_state, num_hiddens, vocab_size, ctx, corpus_indices,
                is_random_iter, num_steps, lr, clipping_theta, batch_size):
    """Train for one epoch and return its training perplexity (one host sync, at the end)."""
    data_iter = data_iter_random if is_random_iter else data_iter_consecutive
    loss = gloss.SoftmaxCrossEntropyLoss()
    state, loss_sum, n = None, nd.zeros(1, ctx=ctx), 0
    for X, Y in data_iter(corpus_indices, batch_size, num_steps, ctx):
        if is_random_iter or state is None:
            state = init_rnn_state(batch_size, num_hiddens, ctx)  # windows are unrelated: start fresh
        else:
            state = detach(state)  # carry the values on, but not the gradient path
        with autograd.record():
            inputs = to_onehot(X, vocab_size)            # num_steps arrays of (batch, vocab)
            outputs, state = rnn(inputs, state, params)
            outputs = nd.concat(*outputs, dim=0)         # (num_steps * batch, vocab), time-major
            y = Y.T.reshape((-1,))                       # (num_steps * batch,), time-major too
            l = loss(outputs, y).mean()
        l.backward()
        grad_clipping(params, clipping_theta, ctx)
        sgd(params, lr, 1)  # l is already a mean over the minibatch
        loss_sum = loss_sum + l * y.size
        n += y.size
    return perplexity(loss_sum.asscalar() / n)


def evaluate_perplexity(rnn, params, init_rnn_state, num_hiddens, vocab_size, ctx, corpus_indices,
                        num_steps=35, batch_size=32):
    """Perplexity of a model on text, read sequentially with the state carried along."""
    batch_size = max(1, min(batch_size, len(corpus_indices) // (num_steps + 1)))  # short text: fewer rows
    loss = gloss.SoftmaxCrossEntropyLoss()
    state, loss_sum, n = init_rnn_state(batch_size, num_hiddens, ctx), nd.zeros(1, ctx=ctx), 0
    for X, Y in data_iter_consecutive(corpus_indices, batch_size, num_steps, ctx):
        outputs, state = rnn(to_onehot(X, vocab_size), state, params)
        loss_sum = loss_sum + loss(nd.concat(*outputs, dim=0), Y.T.reshape((-1,))).sum()
        n += Y.size
    return perplexity(loss_sum.asscalar() / n)


def check_prefixes(prefixes, char_to_idx, idx_to_char):
    """Fail before training, not after pred_period epochs, on a prefix the vocabulary cannot read."""
    for prefix in prefixes:
        encode_prefix(prefix, char_to_idx, idx_to_char)


def _report(log, epoch, history, samples):
    """Print the lecture's progress line and one sample per prefix."""
    log("epoch %d, perplexity %f, time %.2f sec" % (epoch, history.perplexity[-1], history.seconds[-1]))
    for s in samples:
        log(" - " + s)


def _epochs(num_epochs, start, progress):
    """The epoch numbers to run, wrapped in a tqdm bar when progress is on."""
    epochs = range(start + 1, start + num_epochs + 1)
    if not progress:
        return epochs
    from tqdm.auto import tqdm

    return tqdm(epochs, desc="training", unit="epoch")


def train_and_predict_rnn(rnn, get_params, init_rnn_state, num_hiddens, vocab_size, ctx,
                          corpus_indices, idx_to_char, char_to_idx, is_random_iter, num_epochs,
                          num_steps, lr, clipping_theta, batch_size, pred_period, pred_len, prefixes,
                          *, params=None, val_corpus=None, history=None, progress=False,
                          plot=False, log=print):
    """The lecture's training loop; returns a History (and keeps training `params` if given)."""
    check_prefixes(prefixes, char_to_idx, idx_to_char)
    if params is None:
        params = call_get_params(get_params, vocab_size, num_hiddens, ctx)
    history = History() if history is None else history
    live = _live_plot() if plot else None
    bar = _epochs(num_epochs, len(history.epoch), progress)
    for epoch in bar:
        start = time.time()
        ppl = train_epoch(rnn, params, init_rnn_state, num_hiddens, vocab_size, ctx, corpus_indices,
                          is_random_iter, num_steps, lr, clipping_theta, batch_size)
        val = None if val_corpus is None else evaluate_perplexity(
            rnn, params, init_rnn_state, num_hiddens, vocab_size, ctx, val_corpus, num_steps, batch_size)
        history.add(ppl, time.time() - start, val)
        if progress:
            bar.set_postfix(perplexity=f"{ppl:.3f}")
        if epoch % pred_period == 0:
            _report(log, epoch, history, [
                predict_rnn(prefix, pred_len, rnn, params, init_rnn_state, num_hiddens, vocab_size,
                            ctx, idx_to_char, char_to_idx) for prefix in prefixes])
            if live:
                live(history)
    return history


def train_epoch_gluon(model, trainer, vocab_size, ctx, corpus_indices, num_steps, clipping_theta,
                      batch_size):
    """One epoch of the concise model with sequential minibatches; returns training perplexity."""
    loss = gloss.SoftmaxCrossEntropyLoss()
    state, loss_sum, n = None, nd.zeros(1, ctx=ctx), 0
    for X, Y in data_iter_consecutive(corpus_indices, batch_size, num_steps, ctx):
        if state is None:
            state = model.begin_state(batch_size=batch_size, ctx=ctx)
        else:
            state = [s.detach() for s in state]
        with autograd.record():
            output, state = model(X, state)  # output: (num_steps * batch, vocab)
            y = Y.T.reshape((-1,))
            l = loss(output, y).mean()
        l.backward()
        params = [p.data() for p in model.collect_params().values()]  # known only after a forward pass
        grad_clipping(params, clipping_theta, ctx)
        trainer.step(1)
        loss_sum = loss_sum + l * y.size
        n += y.size
    return perplexity(loss_sum.asscalar() / n)


def train_and_predict_rnn_gluon(model, num_hiddens, vocab_size, ctx, corpus_indices, idx_to_char,
                                char_to_idx, num_epochs, num_steps, lr, clipping_theta, batch_size,
                                pred_period, pred_len, prefixes, *, progress=False, plot=False,
                                log=print):
    """The lecture's concise training loop (Gluon layer + Trainer); returns a History."""
    check_prefixes(prefixes, char_to_idx, idx_to_char)
    model.initialize(ctx=ctx, force_reinit=True, init=init.Normal(0.01))
    trainer = gluon.Trainer(model.collect_params(), "sgd", {"learning_rate": lr, "momentum": 0, "wd": 0})
    history, live = History(), (_live_plot() if plot else None)
    bar = _epochs(num_epochs, 0, progress)
    for epoch in bar:
        start = time.time()
        ppl = train_epoch_gluon(model, trainer, vocab_size, ctx, corpus_indices, num_steps,
                                clipping_theta, batch_size)
        history.add(ppl, time.time() - start)
        if progress:
            bar.set_postfix(perplexity=f"{ppl:.3f}")
        if epoch % pred_period == 0:
            _report(log, epoch, history, [
                predict_rnn_gluon(prefix, pred_len, model, vocab_size, ctx, idx_to_char, char_to_idx)
                for prefix in prefixes])
            if live:
                live(history)
    return history


def _live_plot():
    """A callback that redraws the perplexity curve in a notebook."""
    from .plot import LivePlot

    return LivePlot()
