"""Training: one epoch, the training loop every model shares, held-out perplexity, the lecture's loops."""
import collections
import csv
import itertools
import math
import time
from dataclasses import dataclass, field

from mxnet import autograd, init, nd
from mxnet.gluon import loss as gloss

from .data import data_iter_consecutive, data_iter_random
from .generation import encode_prefix, generate
from .model import ScratchModel, call_get_params
from .optim import grad_clipping, make_optimizer
from .utils import UserError

LAG = 4  # minibatches Python may run ahead of MXNet before it waits (bounds the engine's queue)


@dataclass
class History:
    """Training record, a row per measurement: at each epoch's end and, when asked, within epochs.

    `epoch` is 1, 2, ... at epoch ends and a fraction (3.25: a quarter into epoch 4) within one;
    `perplexity` is the training perplexity averaged over the epoch so far, `seconds` the time spent
    in that epoch so far, and `val_perplexity` the held-out perplexity (None where not measured).
    """

    epoch: list = field(default_factory=list)
    perplexity: list = field(default_factory=list)
    seconds: list = field(default_factory=list)
    val_perplexity: list = field(default_factory=list)

    def epochs_done(self):
        """How many epochs have ended."""
        return math.floor(self.epoch[-1]) if self.epoch else 0

    def add(self, perplexity, seconds, val_perplexity=None, fraction=None):
        """Record the end of an epoch, or with fraction (0 < f < 1) a measurement within the next one."""
        self.epoch.append(self.epochs_done() + (1 if fraction is None else round(fraction, 4)))
        self.perplexity.append(perplexity)
        self.seconds.append(seconds)
        self.val_perplexity.append(val_perplexity)

    def until(self, epoch):
        """A copy with the rows up to and including `epoch`."""
        keep = [i for i, e in enumerate(self.epoch) if e <= epoch]
        return History(*[[getattr(self, name)[i] for i in keep]
                         for name in ("epoch", "perplexity", "seconds", "val_perplexity")])

    def has_val(self):
        """True if any row has a held-out perplexity."""
        return any(v is not None for v in self.val_perplexity)

    def best(self):
        """(epoch, held-out perplexity) of the row with the lowest held-out perplexity, or None."""
        rows = [(v, e) for e, v in zip(self.epoch, self.val_perplexity) if v is not None and not math.isnan(v)]
        return (min(rows)[1], min(rows)[0]) if rows else None

    def __repr__(self):
        if not self.epoch:
            return "History(no epochs)"
        vals = [v for v in self.val_perplexity if v is not None]
        val = f", held-out {vals[-1]:.3f}" if vals else ""
        ends = [s for e, s in zip(self.epoch, self.seconds) if e == int(e)] or self.seconds
        return (f"History({self.epochs_done()} epochs, final perplexity {self.perplexity[-1]:.3f}{val}, "
                f"{sum(ends) / len(ends):.2f} s/epoch)")

    def to_csv(self, path):
        """Write epoch, perplexity, seconds, val_perplexity rows (an empty cell where not measured)."""
        with open(path, "w", newline="") as f:
            writer = csv.writer(f)
            writer.writerow(["epoch", "perplexity", "seconds", "val_perplexity"])
            for row in zip(self.epoch, self.perplexity, self.seconds, self.val_perplexity):
                writer.writerow(["" if v is None else v for v in row])

    @classmethod
    def from_csv(cls, path):
        """Read a history written by to_csv."""
        with open(path, newline="") as f:
            rows = list(csv.DictReader(f))
        h = cls()
        for r in rows:
            epoch = float(r["epoch"])
            h.epoch.append(int(epoch) if epoch == int(epoch) else epoch)
            h.perplexity.append(float(r["perplexity"]))
            h.seconds.append(float(r["seconds"]))
            h.val_perplexity.append(float(r["val_perplexity"]) if r.get("val_perplexity") else None)
        return h


def perplexity(mean_loss):
    """exp of the mean cross-entropy; inf once it overflows a float (nan stays nan)."""
    if math.isnan(mean_loss):
        return math.nan
    return math.exp(mean_loss) if mean_loss < 709 else math.inf  # exp overflows a float above ~709.78


DIVERGED_LOSS = 700.0  # nats per token: exp() overflows a float just above 709; no model that learns gets here


class Diverged(UserError):
    """Training produced a non-finite loss: the weights are now useless."""

    exit_code = 1

    def __init__(self, value, batch, epoch=None, note=""):
        self.value, self.batch, self.epoch, self.note = value, batch, epoch, note
        super().__init__(self._message())

    def _message(self):
        where = ", ".join(([f"epoch {self.epoch}"] if self.epoch else []) +
                          ([f"minibatch {self.batch}"] if self.batch else []))
        if self.value is None:  # the weights, not (yet) the loss, became NaN or infinite
            what = "the weights became NaN or infinite"
        elif math.isnan(self.value) or math.isinf(self.value):
            what = f"the loss became {self.value:g} ({'not a number' if math.isnan(self.value) else 'infinite'})"
        else:
            what = f"the loss became {self.value:g} (so large that perplexity overflows: above {DIVERGED_LOSS} nats)"
        return (f"training diverged at {where}: {what}. "
                "Lower the learning rate or the clipping threshold theta and train again" +
                (f" {self.note}" if self.note else ""))

    def at_epoch(self, epoch):
        """The same error, now saying which epoch it happened in."""
        self.epoch = epoch
        self.args = (self._message(),)
        return self


class LossMeter:
    """Mean loss over minibatches, read back LAG minibatches late so MXNet's queue stays short."""

    def __init__(self, lag=None, check=True):
        self.lag, self.check = LAG if lag is None else lag, check  # check: raise Diverged on a runaway loss
        self.pending, self.total, self.count, self.read = collections.deque(), 0.0, 0, 0

    def add(self, mean_loss, count):
        """Queue one minibatch's mean loss (an NDArray over `count` tokens); wait on an old one if too many wait."""
        self.pending.append((mean_loss, count))
        while len(self.pending) > self.lag:
            self._read_oldest()

    def _read_oldest(self):
        """Copy the oldest pending loss to Python (this waits for that minibatch only)."""
        loss, count = self.pending.popleft()
        value = float(loss.asscalar())
        self.read += 1
        if self.check and not value <= DIVERGED_LOSS:  # nan fails this too
            raise Diverged(value, self.read)
        self.total += value * count
        self.count += count

    def running(self):
        """Mean loss of the minibatches read back so far (nan before the first)."""
        return self.total / self.count if self.count else math.nan

    def mean(self):
        """The mean loss over every token added so far (waits for all of them)."""
        while self.pending:
            self._read_oldest()
        return self.running()


def detach(state):
    """Cut the state from the graph of the minibatch that produced it (keeps the values)."""
    return tuple(s.detach() for s in state)


def num_batches(corpus_len, *, num_steps, batch_size, is_random_iter=False):
    """How many minibatches an epoch over corpus_len tokens has."""
    if is_random_iter:
        return ((corpus_len - 1) // num_steps) // batch_size
    return (corpus_len // batch_size - 1) // num_steps


def train_epoch(model, corpus_indices, optimizer, *, ctx, num_steps, batch_size, clipping_theta,
                is_random_iter=False, start_batch=0, on_batch=None):
    """Train for one epoch and return its training perplexity.

    start_batch skips the minibatches a resumed run has already trained on; on_batch(done, meter)
    runs after each minibatch and may return True to end the epoch there.
    """
    data_iter = data_iter_random if is_random_iter else data_iter_consecutive
    loss = gloss.SoftmaxCrossEntropyLoss()
    params, meter, state = model.param_arrays(), LossMeter(), None
    for i, (X, Y) in enumerate(data_iter(corpus_indices, batch_size, num_steps, ctx)):
        if i < start_batch:
            continue
        if is_random_iter or state is None:
            state = model.begin_state(batch_size=batch_size, ctx=ctx)  # unrelated windows: start afresh
        else:
            state = detach(state)  # carry the values on, but not the gradient path
        if getattr(model, "backward_by_hand", False):  # the registry's scratch models: see bptt.py
            l, state = model.loss_and_grads(X, Y, state)
        else:
            with autograd.record():
                logits, state = model(X, state)  # logits: (num_steps * batch, vocab), time-major
                y = Y.T.reshape((-1,))           # (num_steps * batch,), time-major too
                l = loss(logits, y).mean()
            l.backward()
        grad_clipping(params, clipping_theta, ctx)
        optimizer.step()
        meter.add(l, Y.size)  # Python reads the loss a few minibatches late, never waiting on this one
        if on_batch is not None and on_batch(i + 1, meter):
            break
    return perplexity(meter.mean())


def evaluate_perplexity(model, corpus_indices, *, ctx, num_steps=35, batch_size=32):
    """Perplexity of a model on text it does not train on, read sequentially with the state carried along."""
    batch_size = max(1, min(batch_size, len(corpus_indices) // (num_steps + 1)))  # short text: fewer rows
    loss = gloss.SoftmaxCrossEntropyLoss()
    state, meter = model.begin_state(batch_size=batch_size, ctx=ctx), LossMeter(check=False)  # report, not stop
    for X, Y in data_iter_consecutive(corpus_indices, batch_size, num_steps, ctx):
        logits, state = model(X, state)  # (num_steps * batch, vocab)
        meter.add(loss(logits, Y.T.reshape((-1,))).mean(), Y.size)
    return perplexity(meter.mean())  # the mean over all the text: inf if it overflows, nan if it is nan


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
    """The epoch numbers to run (forever if num_epochs is None), in a tqdm bar when progress is on."""
    epochs = itertools.count(start + 1) if num_epochs is None else range(start + 1, start + num_epochs + 1)
    if not progress:
        return epochs
    from tqdm.auto import tqdm

    return tqdm(epochs, desc="training", unit="epoch", total=num_epochs)


class _BatchBar:
    """A second progress bar inside long epochs: minibatches, characters per second, running perplexity."""

    def __init__(self, total, tokens_per_batch, epoch):
        from tqdm.auto import tqdm

        self.bar = tqdm(total=total, desc=f"epoch {epoch}", unit="batch", leave=False, mininterval=1.0)
        self.tokens, self.start = tokens_per_batch, time.time()

    def update(self, done, meter):
        """Move to `done` minibatches and show the speed and the running perplexity."""
        self.bar.n = done
        rate = (done - self.bar.initial) * self.tokens / max(time.time() - self.start, 1e-9)
        self.bar.set_postfix_str(f"{rate:,.0f} tokens/s, perplexity {perplexity(meter.running()):.3f}", refresh=False)
        self.bar.refresh() if done == self.bar.total else self.bar.update(0)

    def close(self):
        self.bar.close()


class KeepBest:
    """An on_epoch callback that keeps a copy of the weights with the lowest held-out perplexity."""

    def __init__(self, model):
        self.model, self.epoch, self.perplexity, self.arrays = model, None, math.inf, None

    def __call__(self, epoch, history):
        val = history.val_perplexity[-1]
        if val is not None and val < self.perplexity:
            self.epoch, self.perplexity = epoch, val
            self.arrays = [a.copy() for a in self.model.param_arrays()]

    def restore(self):
        """Put the kept weights back into the model."""
        if self.arrays is None:
            raise ValueError("no held-out perplexity was measured: train with val_corpus to keep the best weights")
        for a, kept in zip(self.model.param_arrays(), self.arrays):
            a[:] = kept


def train(model, corpus_indices, *, ctx, num_epochs, num_steps, batch_size, clipping_theta, lr=None,
          optimizer="sgd", is_random_iter=False, val_corpus=None, history=None, idx_to_char=None,
          char_to_idx=None, prefixes=(), pred_period=50, pred_len=50, on_epoch=None, on_batch=None,
          start_batch=0, progress=False, plot=False, log=print):
    """Train any model (scratch or Gluon); returns its History, which grows in place as epochs end.

    num_epochs=None trains until on_batch stops it. on_epoch(epoch, history) runs after every epoch
    (e.g. a KeepBest); on_batch(epoch, done, meter) after every minibatch, and returning True ends
    training there. start_batch resumes the first epoch after that many minibatches.
    """
    check_prefixes(prefixes, char_to_idx, idx_to_char)
    if isinstance(optimizer, str):
        if lr is None:
            raise ValueError(f"give lr, the learning rate of {optimizer!r}")
        optimizer = make_optimizer(optimizer, model.param_arrays(), lr)
    history = History() if history is None else history
    live = _live_plot() if plot else None
    total = num_batches(len(corpus_indices), num_steps=num_steps, batch_size=batch_size,
                        is_random_iter=is_random_iter)
    bar = _epochs(num_epochs, history.epochs_done(), progress)
    stopped = False
    for epoch in bar:
        start = time.time()
        inner = _BatchBar(total, num_steps * batch_size, epoch) if progress and total >= 100 else None

        def after_batch(done, meter, epoch=epoch, inner=inner):
            nonlocal stopped
            if inner is not None:
                inner.update(done, meter)
            stopped = bool(on_batch is not None and on_batch(epoch, done, meter))
            return stopped

        try:
            ppl = train_epoch(model, corpus_indices, optimizer, ctx=ctx, num_steps=num_steps,
                              batch_size=batch_size, clipping_theta=clipping_theta, is_random_iter=is_random_iter,
                              start_batch=start_batch, on_batch=after_batch)
        except Diverged as err:
            raise err.at_epoch(epoch) from None
        finally:
            if inner is not None:
                inner.close()
        start_batch = 0
        if stopped:
            break
        val = None if val_corpus is None else evaluate_perplexity(
            model, val_corpus, ctx=ctx, num_steps=num_steps, batch_size=batch_size)
        history.add(ppl, time.time() - start, val)
        if progress:
            bar.set_postfix(perplexity=f"{ppl:.3f}", **({} if val is None else {"held_out": f"{val:.3f}"}))
        if on_epoch is not None:
            on_epoch(epoch, history)
        if epoch % pred_period == 0:
            _report(log, epoch, history, [generate(model, p, pred_len, ctx=ctx, idx_to_char=idx_to_char,
                                                   char_to_idx=char_to_idx) for p in prefixes])
            if live:
                live(history)
    return history


def lecture_model(rnn, get_params, init_rnn_state, *, vocab_size, num_hiddens, ctx, params=None):
    """The model for the lecture's functions: the package's own rnn, gru or lstm run batched with the
    backward pass written by hand (fast.py, bptt.py; same numbers); anything else, as given, with autograd."""
    from .fast import CELLS, FastScratchModel
    from .registry import MODELS

    for name, spec in MODELS.items():
        if spec.functions is not None and (rnn, init_rnn_state) == (spec.functions[0], spec.functions[2]):
            if params is None:
                params = call_get_params(get_params, vocab_size, num_hiddens, ctx)
            gates, V, n = CELLS[spec.cell][2], vocab_size, num_hiddens
            if [p.shape for p in params] == [(V, n), (n, n), (n,)] * gates + [(n, V), (V,)]:
                return FastScratchModel(spec.cell, vocab_size=vocab_size, num_hiddens=num_hiddens, ctx=ctx,
                                        params=params)
    return ScratchModel(rnn, get_params, init_rnn_state, vocab_size=vocab_size, num_hiddens=num_hiddens, ctx=ctx,
                        params=params)


def train_and_predict_rnn(rnn, get_params, init_rnn_state, num_hiddens, vocab_size, ctx,
                          corpus_indices, idx_to_char, char_to_idx, is_random_iter, num_epochs,
                          num_steps, lr, clipping_theta, batch_size, pred_period, pred_len, prefixes,
                          *, params=None, val_corpus=None, history=None, progress=False,
                          plot=False, log=print):
    """The lecture's training loop for its functions; returns a History (and trains `params` if given)."""
    model = lecture_model(rnn, get_params, init_rnn_state, vocab_size=vocab_size, num_hiddens=num_hiddens,
                          ctx=ctx, params=params)
    return train(model, corpus_indices, ctx=ctx, num_epochs=num_epochs, num_steps=num_steps,
                 batch_size=batch_size, lr=lr, clipping_theta=clipping_theta, is_random_iter=is_random_iter,
                 val_corpus=val_corpus, history=history, idx_to_char=idx_to_char, char_to_idx=char_to_idx,
                 prefixes=prefixes, pred_period=pred_period, pred_len=pred_len, progress=progress,
                 plot=plot, log=log)


def train_and_predict_rnn_gluon(model, num_hiddens, vocab_size, ctx, corpus_indices, idx_to_char,
                                char_to_idx, num_epochs, num_steps, lr, clipping_theta, batch_size,
                                pred_period, pred_len, prefixes, *, val_corpus=None, history=None,
                                progress=False, plot=False, log=print):
    """The lecture's concise training loop: (re)initialise an RNNModel, then train it sequentially."""
    model.initialize(ctx=ctx, force_reinit=True, init=init.Normal(0.01))
    return train(model, corpus_indices, ctx=ctx, num_epochs=num_epochs, num_steps=num_steps,
                 batch_size=batch_size, lr=lr, clipping_theta=clipping_theta, val_corpus=val_corpus,
                 history=history, idx_to_char=idx_to_char, char_to_idx=char_to_idx, prefixes=prefixes,
                 pred_period=pred_period, pred_len=pred_len, progress=progress, plot=plot, log=log)


def _live_plot():
    """A callback that redraws the perplexity curve in a notebook."""
    from .plot import LivePlot

    return LivePlot()
