"""Training: one epoch, the one loop every model shares, hooks, held-out perplexity, the lecture's loops."""
import collections
import csv
import itertools
import math
import random
import time
from dataclasses import dataclass, field

import numpy as np
from mxnet import autograd, init, nd

from .cells import CELLS
from .cells.batched import BatchedModel
from .cells.ops import INIT_SCALE
from .data import data_iter_consecutive, data_iter_random
from .generation import encode_prefix, generate
from .model import ScratchModel, call_get_params
from .optim import grad_clipping, make_optimizer
from .utils import UserError

MAX_EPOCH = 2 ** 31  # a history.csv row beyond this (or not finite) is not one d2lrnn wrote
LAG = 4  # default: minibatches Python may run ahead of MXNet before it waits (bounds the engine's queue)


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
        rows = [(v, e) for e, v in zip(self.epoch, self.val_perplexity)
                if v is not None and not math.isnan(v)]
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
            epoch, ppl, seconds = float(r["epoch"]), float(r["perplexity"]), float(r["seconds"])
            val = float(r["val_perplexity"]) if r.get("val_perplexity") else None
            if not (0 < epoch <= MAX_EPOCH and 0 < ppl < math.inf and 0 <= seconds < math.inf
                    and (val is None or 0 < val < math.inf)):
                raise ValueError(f"row {len(h.epoch) + 1} is out of range: {dict(r)}")
            h.epoch.append(int(epoch) if epoch == int(epoch) else epoch)
            h.perplexity.append(ppl)
            h.seconds.append(seconds)
            h.val_perplexity.append(val)
        return h


def perplexity(mean_loss):
    """exp of the mean cross-entropy; inf once it overflows a float (nan stays nan)."""
    if math.isnan(mean_loss):
        return math.nan
    return math.exp(mean_loss) if mean_loss < 709 else math.inf  # exp overflows a float above ~709.78


DIVERGED_LOSS = 700.0  # nats per token: exp() overflows a float just above 709; no learning model gets here


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
            kind = "not a number" if math.isnan(self.value) else "infinite"
            what = f"the loss became {self.value:g} ({kind})"
        else:
            what = (f"the loss became {self.value:g} (so large that perplexity overflows: above "
                    f"{DIVERGED_LOSS} nats)")
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

    def __init__(self, lag=LAG, check=True):
        self.lag, self.check = lag, check  # check: raise Diverged on a runaway loss
        self.pending, self.total, self.count, self.read = collections.deque(), 0.0, 0, 0

    def add(self, mean_loss, count):
        """Queue a minibatch's mean loss (an NDArray over `count` tokens); wait on old ones if many wait."""
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


@dataclass
class TrainOptions:
    """How to train: the lecture's hyperparameters (its defaults) and the optimiser."""

    num_epochs: int = 500       # None: until a hook stops training
    num_steps: int = 35         # time steps per minibatch
    batch_size: int = 32
    lr: float = 100.0
    clipping_theta: float = 0.01
    optimizer: object = "sgd"   # "sgd", "adam", or an optimiser object (d2lrnn.SGD, d2lrnn.Adam)
    is_random_iter: bool = False
    seed: int = None            # random windows from a generator seeded per epoch (None: Python's global one)
    start_batch: int = 0        # resume the first epoch after this many minibatches
    lag: int = LAG              # minibatches Python may run ahead of MXNet's engine


@dataclass
class Preview:
    """Samples printed with the lecture's progress line every `period` epochs."""

    prefixes: tuple
    idx_to_char: list
    char_to_idx: dict
    period: int = 50
    length: int = 50


@dataclass
class Progress:
    """Where training is: what every hook receives."""

    epoch: int = 1
    batch: int = 0            # minibatches done in this epoch
    batches: int = 0          # minibatches in a whole epoch
    meter: LossMeter = None   # this epoch's losses so far
    history: History = None
    started: float = 0.0      # when this epoch started (time.time())


class Hook:
    """What the training loop calls after every minibatch and after every row it adds to the history."""

    def on_batch(self, progress):
        """Return True to stop training here."""
        return False

    def on_epoch(self, progress):
        """After an epoch, or the part of one a hook stopped, is recorded in progress.history."""


class KeepBest(Hook):
    """Keeps a copy of the weights whenever a history row has a lower held-out perplexity than any before."""

    def __init__(self, model, perplexity=math.inf, rows_seen=0):
        self.model, self.perplexity, self.epoch, self.arrays = model, perplexity, None, None
        self.rows_seen = rows_seen  # rows of the history already judged (a resumed run's earlier ones)

    def _look(self, history):
        if history is None or len(history.epoch) == self.rows_seen:
            return
        self.rows_seen = len(history.epoch)
        val = history.val_perplexity[-1]
        if val is not None and math.isfinite(val) and val < self.perplexity:
            self.epoch, self.perplexity = history.epoch[-1], val
            self.arrays = [a.copy() for a in self.model.param_arrays()]

    def on_batch(self, progress):
        self._look(progress.history)  # rows added within an epoch (held-out checks every few minibatches)
        return False

    def on_epoch(self, progress):
        self._look(progress.history)

    def restore(self):
        """Put the kept weights back into the model."""
        if self.arrays is None:
            raise ValueError("no held-out perplexity was measured: train with val_corpus to keep the best "
                             "weights")
        for a, kept in zip(self.model.param_arrays(), self.arrays):
            a[:] = kept


class LRSchedule(Hook):
    """Sets the optimiser's learning rate after every minibatch for the next: a linear warm-up over `warmup`
    minibatches, then constant, or a cosine decay to `floor` x lr at `total` minibatches."""

    def __init__(self, optimizer, lr, *, kind="constant", warmup=0, total=None, floor=0.1):
        if kind not in ("constant", "cosine"):
            raise ValueError(f"kind must be 'constant' or 'cosine', not {kind!r}")
        if kind == "cosine" and not total:
            raise ValueError("a cosine schedule needs the total number of minibatches")
        self.optimizer, self.lr, self.kind = optimizer, lr, kind
        self.warmup, self.total, self.floor = warmup, total, floor

    def rate(self, step):
        """The learning rate of minibatch step + 1 (steps counted from the start of training)."""
        if step < self.warmup:
            return self.lr * (step + 1) / self.warmup
        if self.kind == "constant":
            return self.lr
        done = min(1.0, (step - self.warmup) / max(1, self.total - self.warmup))
        return self.lr * (self.floor + (1 - self.floor) * 0.5 * (1 + math.cos(math.pi * done)))

    def start(self, step):
        """Set the rate for the first minibatch of a run that has already trained `step` minibatches."""
        self.optimizer.lr = self.rate(step)

    def on_batch(self, progress):
        self.optimizer.lr = self.rate((progress.epoch - 1) * progress.batches + progress.batch)
        return False


def cross_entropy(logits, y):
    """Softmax cross-entropy of each row of logits (rows, vocab) against its target index in y (rows,)."""
    return -nd.pick(nd.log_softmax(logits), y)  # (rows,); legacy nd operators, whatever npx.set_np says


def train_epoch(model, corpus_indices, optimizer, options, *, ctx, rng=None, start_batch=0, progress=None,
                on_batch=None):
    """Train for one epoch and return its training perplexity.

    rng shuffles random windows (None: Python's global generator, as in the lecture); start_batch skips
    the minibatches a resumed run already trained on; on_batch(progress) runs after each minibatch and
    may return True to end the epoch there.
    """
    params, meter, state = model.param_arrays(), LossMeter(options.lag), None
    progress = Progress() if progress is None else progress
    progress.meter = meter
    if options.is_random_iter:
        batches = data_iter_random(corpus_indices, options.batch_size, options.num_steps, ctx, rng=rng)
    else:
        batches = data_iter_consecutive(corpus_indices, options.batch_size, options.num_steps, ctx)
    for i, (X, Y) in enumerate(batches):
        if i < start_batch:
            continue
        if options.is_random_iter or state is None:
            state = model.begin_state(batch_size=options.batch_size, ctx=ctx)  # unrelated windows: afresh
        else:
            state = detach(state)  # carry the values on, but not the gradient path
        if getattr(model, "backward_by_hand", False):  # the registry's *-bptt models: see cells/batched.py
            l, state = model.loss_and_grads(X, Y, state)
        else:
            with autograd.record():
                logits, state = model(X, state)  # logits: (num_steps * batch, vocab), time-major
                y = Y.T.reshape((-1,))           # (num_steps * batch,), time-major too
                l = cross_entropy(logits, y).mean()
            l.backward()
        grad_clipping(params, options.clipping_theta, ctx)
        optimizer.step()
        meter.add(l, Y.size)  # Python reads the loss a few minibatches late, never waiting on this one
        progress.batch = i + 1
        if on_batch is not None and on_batch(progress):
            break
    return perplexity(meter.mean())


MIN_STREAM = 256  # held-out text is read as streams of at least this many tokens (each from a zero state)


def evaluate_perplexity(model, corpus_indices, *, ctx, num_steps=35, batch_size=32):
    """Perplexity of a model on a text it does not train on: every token after the first is predicted once.

    The text is read as up to batch_size contiguous streams (fewer for short text, each at least MIN_STREAM
    tokens), the state carried along each; the last stream is padded and the padding left out of the mean.
    """
    indices = np.asarray(corpus_indices)
    targets = len(indices) - 1
    if targets < 1:
        raise ValueError("scoring a text needs at least 2 tokens: one to read and one to predict")
    streams = max(1, min(batch_size, targets // MIN_STREAM))
    length = -(-targets // streams)                                   # targets per stream, rounded up
    padded = np.zeros(streams * length + 1, dtype=np.int32)
    padded[:targets + 1] = indices
    X = padded[:-1].reshape(streams, length)                          # (streams, length), views
    Y = padded[1:].reshape(streams, length)
    valid = (np.arange(streams * length) < targets).reshape(streams, length)
    state, meter = model.begin_state(batch_size=streams, ctx=ctx), LossMeter(check=False)  # report, not stop
    for t in range(0, length, num_steps):
        count = int(valid[:, t:t + num_steps].sum())
        if count == 0:
            break  # only padding is left
        window = slice(t, t + num_steps)
        mask = nd.array(valid[:, window].T.reshape(-1), ctx=ctx)                   # (steps * streams,)
        logits, state = model(nd.array(X[:, window], ctx=ctx), state)              # (steps * streams, vocab)
        targets = nd.array(Y[:, window].T.reshape(-1), ctx=ctx)                   # (steps * streams,)
        token_loss = cross_entropy(logits, targets)                                # (steps * streams,)
        meter.add((token_loss * mask).sum() / count, count)
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


class _BatchBar(Hook):
    """A second progress bar inside long epochs: minibatches, tokens per second, running perplexity."""

    def __init__(self, total, tokens_per_batch, epoch):
        from tqdm.auto import tqdm

        self.bar = tqdm(total=total, desc=f"epoch {epoch}", unit="batch", leave=False, mininterval=1.0)
        self.tokens, self.start = tokens_per_batch, time.time()

    def on_batch(self, progress):
        self.bar.n = progress.batch
        rate = (progress.batch - self.bar.initial) * self.tokens / max(time.time() - self.start, 1e-9)
        self.bar.set_postfix_str(f"{rate:,.0f} tokens/s, perplexity "
                                 f"{perplexity(progress.meter.running()):.3f}",
                                 refresh=False)
        self.bar.refresh() if progress.batch == self.bar.total else self.bar.update(0)
        return False


def _epoch_rng(seed, epoch):
    """The generator that shuffles one epoch's random windows: the same for the same seed and epoch."""
    return None if seed is None else random.Random(seed * 1_000_003 + epoch)


def train(model, corpus_indices, options, *, ctx, val_corpus=None, history=None, hooks=(), preview=None,
          log=print, progress=False):
    """Train any model (scratch or Gluon) with TrainOptions; returns its History, which grows in place.

    After every minibatch each hook's on_batch runs (any returning True stops training there; at an
    epoch's last minibatch the epoch still ends normally); after every row added to the history, each
    hook's on_epoch. With val_corpus, every row has the held-out perplexity; with a Preview, samples
    are printed every preview.period epochs.
    """
    if preview is not None:
        check_prefixes(preview.prefixes, preview.char_to_idx, preview.idx_to_char)
    optimizer = options.optimizer
    if isinstance(optimizer, str):
        optimizer = make_optimizer(optimizer, model.param_arrays(), options.lr)
    history = History() if history is None else history
    state = Progress(history=history, batches=num_batches(len(corpus_indices), num_steps=options.num_steps,
                                                          batch_size=options.batch_size,
                                                          is_random_iter=options.is_random_iter))
    start_batch, stop = options.start_batch, False
    epochs = _epochs(options.num_epochs, history.epochs_done(), progress)
    for epoch in epochs:
        state.epoch, state.started, state.batch = epoch, time.time(), 0
        every = list(hooks)
        if progress and state.batches >= 100:
            every.append(_BatchBar(state.batches, options.num_steps * options.batch_size, epoch))

        def on_batch(p, every=every):
            nonlocal stop
            stop = any([hook.on_batch(p) for hook in every])  # a list: every hook sees every minibatch
            return stop and p.batch < p.batches  # asked at the last minibatch, the epoch ends normally

        try:
            ppl = train_epoch(model, corpus_indices, optimizer, options, ctx=ctx,
                              rng=_epoch_rng(options.seed, epoch), start_batch=start_batch, progress=state,
                              on_batch=on_batch)
        except Diverged as err:
            raise err.at_epoch(epoch) from None
        finally:
            for hook in every[len(hooks):]:
                hook.bar.close()
        start_batch, partial = 0, state.batch < state.batches
        val = None if val_corpus is None else evaluate_perplexity(model, val_corpus, ctx=ctx)
        fraction = state.batch / state.batches if partial else None
        history.add(ppl, time.time() - state.started, val, fraction=fraction)
        if progress:
            epochs.set_postfix(perplexity=f"{ppl:.3f}", **({} if val is None else {"held_out": f"{val:.3f}"}))
        for hook in hooks:
            hook.on_epoch(state)
        if preview is not None and not partial and epoch % preview.period == 0:
            samples = [generate(model, p, preview.length, ctx=ctx, idx_to_char=preview.idx_to_char,
                                char_to_idx=preview.char_to_idx) for p in preview.prefixes]
            _report(log, epoch, history, samples)
        if stop:
            break
    return history


def lecture_model(rnn, get_params, init_rnn_state, *, vocab_size, num_hiddens, ctx, params=None,
                  backward="autograd", log=print):
    """The lecture's functions as a model: as given, with autograd; or, with backward="by-hand" and the
    package's own rnn, gru or lstm, the same cell batched with the backward pass written by hand."""
    if backward == "autograd":
        return ScratchModel(rnn, get_params, init_rnn_state, vocab_size=vocab_size, num_hiddens=num_hiddens,
                            ctx=ctx, params=params)
    if backward != "by-hand":
        raise ValueError(f"backward must be 'autograd' or 'by-hand', not {backward!r}")
    cell = next((name for name, c in CELLS.items() if (c.step, c.init_state) == (rnn, init_rnn_state)), None)
    if cell is None:
        raise ValueError("backward='by-hand' needs d2lrnn's own rnn, gru or lstm (with their init_*_state); "
                         "train your own cell with backward='autograd'")
    params = call_get_params(get_params, vocab_size, num_hiddens, ctx) if params is None else params
    log(f"training d2lrnn's batched {cell} cell with the backward pass written by hand (backward='by-hand')")
    return BatchedModel(cell, vocab_size=vocab_size, num_hiddens=num_hiddens, ctx=ctx, params=params)


def train_and_predict_rnn(rnn, get_params, init_rnn_state, num_hiddens, vocab_size, ctx,
                          corpus_indices, idx_to_char, char_to_idx, is_random_iter, num_epochs,
                          num_steps, lr, clipping_theta, batch_size, pred_period, pred_len, prefixes,
                          *, params=None, backward="autograd", val_corpus=None, history=None, progress=False,
                          plot=False, log=print):
    """The lecture's training loop for its functions; returns a History (and trains `params` if given).

    It trains the functions it is given, with autograd; backward="by-hand" (printed when used) trains
    the package's own rnn, gru or lstm batched with the backward pass written by hand instead.
    """
    model = lecture_model(rnn, get_params, init_rnn_state, vocab_size=vocab_size, num_hiddens=num_hiddens,
                          ctx=ctx, params=params, backward=backward, log=log)
    options = TrainOptions(num_epochs=num_epochs, num_steps=num_steps, batch_size=batch_size, lr=lr,
                           clipping_theta=clipping_theta, is_random_iter=is_random_iter)
    preview = Preview(prefixes, idx_to_char, char_to_idx, period=pred_period, length=pred_len)
    return train(model, corpus_indices, options, ctx=ctx, val_corpus=val_corpus, history=history,
                 hooks=_live_plot(plot, pred_period), preview=preview, log=log, progress=progress)


def train_and_predict_rnn_gluon(model, num_hiddens, vocab_size, ctx, corpus_indices, idx_to_char,
                                char_to_idx, num_epochs, num_steps, lr, clipping_theta, batch_size,
                                pred_period, pred_len, prefixes, *, val_corpus=None, history=None,
                                progress=False, plot=False, log=print):
    """The lecture's concise training loop: (re)initialise an RNNModel, then train it sequentially."""
    model.initialize(ctx=ctx, force_reinit=True, init=init.Normal(INIT_SCALE))
    options = TrainOptions(num_epochs=num_epochs, num_steps=num_steps, batch_size=batch_size, lr=lr,
                           clipping_theta=clipping_theta)
    preview = Preview(prefixes, idx_to_char, char_to_idx, period=pred_period, length=pred_len)
    return train(model, corpus_indices, options, ctx=ctx, val_corpus=val_corpus, history=history,
                 hooks=_live_plot(plot, pred_period), preview=preview, log=log, progress=progress)


def _live_plot(plot, period):
    """[a hook redrawing the perplexity curve in a notebook every `period` epochs] if plot, else []."""
    if not plot:
        return []
    from .plot import LivePlot

    return [LivePlot(period)]
