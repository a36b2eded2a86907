"""Perplexity as compression: entropy coding driven by a trained model's next-character distribution.

A model that gives the next character probability p lets an arithmetic (here: range) coder spend
-log2 p bits on it, so a text costs its cross-entropy in bits, up to a few bytes: bits per character
IS compressed size. The coder is `constriction`'s range coder (`pip install constriction`).

Encoder and decoder must compute bit-identical probabilities. The decoder can only go one step at
a time (the next input is the character it just decoded), so the encoder takes exactly the same
steps: the text is cut into `lanes` contiguous pieces of nearly equal length that are coded side by
side, one character of every lane per step (default_lanes chooses how many from the text's length).
A step is the model's forward step in NumPy for all lanes at once (`_Net`, built once from the
model's weights: float32, one matrix product per layer, BLAS on one thread), its probabilities
rounded ONCE to whole numbers out of 2**24 (`quantise`) and handed to one constriction call for all
lanes. Those whole numbers are exactly what the coder uses, so the payload is their information
content plus the coder's flush, a few bytes.

Characters outside the model's vocabulary are coded as an escape symbol (probability 2**-12 at every
step), their Unicode code points at the end of the stream. The header says which arithmetic computed
the probabilities and carries a digest of a few steps of them (the "probe"), a SHA-256 of the
model's weights and one of the text: decoding with another model, or on a machine that computes the
model differently, stops at once, and a decoded text that does not match its checksum (a damaged
file) is an error, never garbage. The header is untrusted input: every field is checked and bounded
before anything acts on it, and decoding stops as soon as it has read more information than the
payload can hold.
"""
import contextlib
import ctypes
import functools
import glob
import hashlib
import json
import math
import os
import struct

import numpy as np

from .utils import UserError

MAX_LANES = 4096                   # lanes coded side by side, at most
MAGIC = b"D2LRNN-Z"
VERSION = 2                        # format 1 (MXNet's probabilities, escapes inline) is refused, with a word
PRECISION = 24                     # constriction's range coder: every probability is a whole number / 2**24
ESCAPE_WEIGHT = 2 ** 12            # the escape symbol's share of the 2**24 at every step
ESCAPE_PROBABILITY = ESCAPE_WEIGHT / 2 ** PRECISION  # = 2**-12 at least, for characters the vocabulary lacks
MAX_PROBABILITY = 1 - 2 ** -8      # no character is coded as surer than this: each costs >= 0.0056 bits
CODE_POINTS = 0x110000             # every Unicode code point, coded uniformly after an escape
MAX_HEADER_BYTES = 4096            # a header longer than this is not one d2lrnn wrote
MAX_CHARS = 2 ** 31 - 1            # characters in one file, at most
MAX_VOCAB = 2 ** 16                # vocabulary sizes a header may name
FLUSH_BITS = 96                    # a payload of B bits holds at most B + this of information (3 words)
LANE_CHARS = 2048                  # default_lanes: one lane per this many characters ...
DEFAULT_MAX_LANES = 256            # ... up to this many (more are no faster, see default_lanes)
ARITHMETIC = {"numpy-float32": "d2lrnn's NumPy forward step in float32",
              "mxnet": "the model's own MXNet forward pass (a model d2lrnn cannot rewrite in NumPy)"}
PROBE_STEPS = 4                    # steps on fixed tokens whose probabilities the header's "probe" digests
HEADER_FIELDS = {"version": int, "chars": int, "lanes": int, "vocab": int, "arithmetic": str, "probe": str,
                 "model_sha256": str, "text_sha256": str}


class CompressError(UserError):
    """A file that cannot be compressed or decompressed as asked (one line, says why)."""


def _constriction():
    """The constriction module, or a clear error saying how to get it."""
    try:
        import constriction
    except ImportError:
        raise CompressError("compression needs the constriction package (Python >= 3.10): "
                            "pip install 'd2lrnn[compress]' or pip install constriction") from None
    return constriction


def model_digest(model):
    """SHA-256 of the model's weights (their bytes, in order): what the header ties the file to."""
    h = hashlib.sha256()
    for a in model.param_arrays():
        h.update(a.asnumpy().astype("<f4").tobytes())
    return h.hexdigest()


# ----------------------------------------------------------------------------------------------
# The model's forward step in NumPy
# ----------------------------------------------------------------------------------------------

GATES = {"rnn": 1, "gru": 3, "lstm": 4}
SIGMOID_GATES = {"rnn": 0, "gru": 2, "lstm": 3}  # leading gate blocks that go through a sigmoid
# MXNet's fused layer orders the gates LSTM (i, f, g, o) and GRU (r, z, n); the lecture's cells (and
# the *-bptt models) LSTM (i, f, o, c) and GRU (z, r, h~). _Layer wants (sigmoid gates..., tanh gate):
FUSED_ORDER = {"rnn": [0], "lstm": [0, 1, 3, 2], "gru": [1, 0, 2]}
LECTURE_ORDER = {"rnn": [0], "lstm": [0, 1, 2, 3], "gru": [0, 1, 2]}


def _gate_blocks(a, gates, order):
    """a (..., G n) with its gate blocks reordered: block k of the result is block order[k] of a."""
    n = a.shape[-1] // gates
    return np.concatenate([a[..., j * n:(j + 1) * n] for j in order], axis=-1)


class _Layer:
    """One recurrent layer's weights as the NumPy step uses them.

    Gates come in the order (sigmoid gates..., tanh gate): LSTM (i, f, o, g), GRU (z, r, n); `order`
    says where each comes from in the source. W_x (inputs, G n) and b_x act on the layer's input,
    W_h (n, G n) on its state; b_h is the recurrent bias, kept apart only by a GRU, whose candidate
    reads r * (h W_hn + b_hn), and folded into b_x otherwise. The sigmoid gates' columns are stored
    halved (exact in binary floating point): sigmoid(x) = (1 + tanh(x / 2)) / 2, so one tanh call
    serves all gates. x64 keeps W_x and b_x in float64 for the first layer's lookup table.
    """

    def __init__(self, cell, W_x, b_x, W_h, b_h, order):
        G = GATES[cell]
        W_x, b_x, W_h = (_gate_blocks(np.asarray(a, np.float64), G, order) for a in (W_x, b_x, W_h))
        if b_h is not None:
            b_h = _gate_blocks(np.asarray(b_h, np.float64), G, order)
            if cell != "gru":
                b_x, b_h = b_x + b_h, None
        self.cell, self.n = cell, W_h.shape[0]
        half = np.ones(G * self.n)
        half[:SIGMOID_GATES[cell] * self.n] = 0.5
        self.x64 = (W_x * half, b_x * half)
        self.W_x, self.b_x = (a.astype(np.float32) for a in self.x64)
        self.W_h = (W_h * half).astype(np.float32)
        self.b_h = None if b_h is None else (b_h * half).astype(np.float32)


class _Net:
    """A model's forward step in NumPy float32 for many lanes at once, built once from its weights.

    The first layer's input projection is a lookup table (vocab, G n), bias included: a one-hot input
    picks a row of W_x, an embedded one the same row of E W_x (precomputed in float64). Every other
    product is one matrix product for all lanes. Encoder and decoder run exactly these operations on
    arrays of exactly these shapes, which on one machine gives bit-identical results.
    """

    arithmetic = "numpy-float32"

    def __init__(self, cell, layers, W_out, b_out, embedding=None):
        W_x, b_x = layers[0].x64
        inputs = W_x if embedding is None else np.asarray(embedding, np.float64) @ W_x
        self.table = (inputs + b_x).astype(np.float32)
        self.cell, self.layers = cell, layers
        self.W_out, self.b_out = np.asarray(W_out, np.float32), np.asarray(b_out, np.float32)
        self.update = {"rnn": self._rnn, "gru": self._gru, "lstm": self._lstm}[cell]
        self.state = None

    def start(self, lanes):
        """Zero state for `lanes` rows: per layer [h], or [h, c] for an LSTM."""
        arrays = 2 if self.cell == "lstm" else 1
        self.state = [[np.zeros((lanes, layer.n), np.float32) for _ in range(arrays)]
                      for layer in self.layers]

    def step(self, tokens):
        """Logits (lanes, vocab), float32, of every lane's next character given its last token."""
        for k, layer in enumerate(self.layers):
            if k == 0:
                A = self.table[tokens]                              # (lanes, G n)
            else:
                A = np.dot(self.state[k - 1][0], layer.W_x)
                A += layer.b_x
            self.state[k] = self.update(layer, A, self.state[k])
        logits = np.dot(self.state[-1][0], self.W_out)              # (lanes, vocab)
        logits += self.b_out
        return logits

    @staticmethod
    def _rnn(layer, A, state):
        """h = tanh(A + h W_h)."""
        A += np.dot(state[0], layer.W_h)
        return [np.tanh(A, out=A)]

    @staticmethod
    def _lstm(layer, A, state):
        """(i, f, o) = sigmoid, g = tanh of A + h W_h; c = f c + i g; h = o tanh(c)."""
        h, c = state
        n = layer.n
        G = np.dot(h, layer.W_h)
        G += A
        np.tanh(G, out=G)                  # all four gates in one call (the sigmoid gates' inputs are halved)
        S = G[:, :3 * n]
        S += 1
        S *= 0.5                           # sigmoid(x) = (1 + tanh(x / 2)) / 2
        i, f, o, g = G[:, :n], G[:, n:2 * n], G[:, 2 * n:3 * n], G[:, 3 * n:]
        c = c * f
        i *= g
        c += i
        h = np.tanh(c)
        h *= o
        return [h, c]

    @staticmethod
    def _gru(layer, A, state):
        """(z, r) = sigmoid(A + h W_h), n = tanh(A_n + r (h W_hn + b_hn)), h = n + z (h - n)."""
        (h,) = state
        n = layer.n
        Hh = np.dot(h, layer.W_h)
        if layer.b_h is not None:
            Hh += layer.b_h
        ZR = A[:, :2 * n]
        ZR += Hh[:, :2 * n]
        np.tanh(ZR, out=ZR)
        ZR += 1
        ZR *= 0.5
        z, r = ZR[:, :n], ZR[:, n:]
        cand = Hh[:, 2 * n:]
        cand *= r
        cand += A[:, 2 * n:]
        cand = np.tanh(cand)
        new = h - cand
        new *= z
        new += cand
        return [new]


def _fused_layers(fused):
    """_Layers of a model.FusedLayer: its flat vector holds i2h, h2h weights per layer, then the biases."""
    flat = fused.flat.data().asnumpy()
    G, n, count = GATES[fused.cell], fused.num_hiddens, fused.num_layers
    weights, offset = [], 0
    for rows, cols in fused.shapes:  # (G n, inputs), (G n, n) per layer
        weights.append(flat[offset:offset + rows * cols].reshape(rows, cols))
        offset += rows * cols
    biases = flat[offset:].reshape(count, 2, G * n)
    return [_Layer(fused.cell, weights[2 * k].T, biases[k, 0], weights[2 * k + 1].T, biases[k, 1],
                   FUSED_ORDER[fused.cell]) for k in range(count)]


def _gluon_net(model):
    """_Net of a model.RNNModel around a FusedLayer or a LayerStack of them; None for another layer."""
    from .model import FusedLayer, LayerStack
    rnn = model.rnn
    fused = [rnn] if isinstance(rnn, FusedLayer) else list(rnn.layers) if isinstance(rnn, LayerStack) else []
    if not fused or not all(isinstance(f, FusedLayer) for f in fused) or len({f.cell for f in fused}) != 1:
        return None
    model.param_arrays()  # settles Gluon's deferred shapes
    embedding = None if model.embedding is None else model.embedding.weight.data().asnumpy()
    return _Net(fused[0].cell, [layer for f in fused for layer in _fused_layers(f)],
                model.dense.weight.data().asnumpy().T, model.dense.bias.data().asnumpy(), embedding)


def _lecture_net(cell, params, num_layers, embedded):
    """_Net of the lecture's parameter list: [W_embed] + per layer, per gate [W_x, W_h, b] + [W_hq, b_q]."""
    arrays = [p.asnumpy() for p in params]
    embedding = arrays.pop(0) if embedded else None
    layers = []
    for _ in range(num_layers):
        gate = [arrays.pop(0) for _ in range(3 * GATES[cell])]
        layers.append(_Layer(cell, np.concatenate(gate[0::3], axis=1), np.concatenate(gate[2::3]),
                             np.concatenate(gate[1::3], axis=1), None, LECTURE_ORDER[cell]))
    W_hq, b_q = arrays
    return _Net(cell, layers, W_hq, b_q, embedding)


def numpy_net(model):
    """The model's forward step in NumPy (a _Net), or None for a model whose insides d2lrnn does not know."""
    from .cells import CELLS
    from .cells.batched import BatchedModel
    from .model import RNNModel, ScratchModel
    if isinstance(model, RNNModel):
        return _gluon_net(model)
    if isinstance(model, ScratchModel) and model.name in CELLS and model.rnn is CELLS[model.name].step:
        return _lecture_net(model.name, model.params, 1, False)
    if isinstance(model, BatchedModel) and model.cell in CELLS:
        return _lecture_net(model.cell, model.params, model.num_layers, bool(model.embed_size))
    return None


class _MXNetNet:
    """Any other model (a student's own step function, say): its MXNet forward pass, all lanes per call."""

    arithmetic = "mxnet"

    def __init__(self, model, ctx):
        self.model, self.ctx, self.state = model, ctx, None

    def start(self, lanes):
        self.state = self.model.begin_state(batch_size=lanes, ctx=self.ctx)

    def step(self, tokens):
        from mxnet import nd
        logits, self.state = self.model(nd.array(tokens[:, None], ctx=self.ctx), self.state)  # (lanes, vocab)
        return logits.asnumpy()


def _net(model, ctx):
    """What computes the model's probabilities: the NumPy step where d2lrnn knows the model, else MXNet."""
    return numpy_net(model) or _MXNetNet(model, ctx)


# ----------------------------------------------------------------------------------------------
# The same arithmetic in the encoder and the decoder
# ----------------------------------------------------------------------------------------------

@functools.lru_cache(maxsize=None)
def _numpy_openblas():
    """The OpenBLAS in numpy's wheels as (set_threads, get_threads, description), or None for another BLAS."""
    here = os.path.dirname(np.__file__)
    folders = [os.path.join(here, *parts) for parts in ((os.pardir, "numpy.libs"), (".dylibs",), (".libs",))]
    for path in sorted(p for folder in folders for p in glob.glob(os.path.join(folder, "lib*openblas*"))):
        try:
            lib = ctypes.CDLL(path)  # the copy numpy has loaded already
        except OSError:
            continue
        for prefix in ("openblas_", "scipy_openblas_"):  # numpy 1.x wheels; numpy 2 wheels
            for suffix in ("64_", ""):
                try:
                    set_threads, get_threads, config, core = (lib[prefix + f + suffix] for f in (
                        "set_num_threads", "get_num_threads", "get_config", "get_corename"))
                except AttributeError:
                    continue
                config.restype = core.restype = ctypes.c_char_p
                version = " ".join(config().decode("ascii", "replace").split()[:2])
                return set_threads, get_threads, f"{version} {core().decode('ascii', 'replace')}"
    return None


@contextlib.contextmanager
def one_blas_thread():
    """Run numpy's matrix products on one thread; yields which BLAS that is (for messages).

    OpenBLAS sums a product in another order on one thread than on two (OPENBLAS_NUM_THREADS), so a
    file compressed under one setting would not decode under the other. A step's products are small:
    a second thread gains little, less still on a busy machine, and one leaves the other cores free.
    Another BLAS (not numpy's wheels) runs as it is set; the header's probe catches a difference.
    """
    blas = _numpy_openblas()
    if blas is None:
        yield "unknown BLAS, threads as set"
        return
    set_threads, get_threads, description = blas
    before = get_threads()
    set_threads(1)
    try:
        yield f"{description}, 1 thread"
    finally:
        set_threads(before)


def _probe(net, lanes, vocab):
    """Digest of the whole-number probabilities of PROBE_STEPS steps on fixed tokens, `lanes` rows.

    The header carries it, so a machine that computes the model differently (another CPU, BLAS or
    numpy) is told so before it decodes anything.
    """
    net.start(lanes)
    digest = hashlib.sha256()
    for t in range(PROBE_STEPS):
        digest.update(quantise(net.step((np.arange(lanes) * 7 + 13 * t + 1) % vocab)).tobytes())
    return digest.hexdigest()[:16]


# ----------------------------------------------------------------------------------------------
# Probabilities as whole numbers
# ----------------------------------------------------------------------------------------------

def quantise(logits):
    """Whole-number weights (lanes, vocab + 1), float32, from logits (lanes, vocab); the escape symbol last.

    Every row sums to 2**24 - (vocab + 1). constriction's Categorical(perfect=False) adds 1 to each
    weight and, given whole numbers that sum to that, rescales by exactly 1: symbol k is coded with
    probability (w_k + 1) / 2**24, no rounding of its own. The escape gets ESCAPE_WEIGHT; character k
    gets floor(p_k R) of the R that is left, and the most likely character the rounding remainder,
    but never more than MAX_PROBABILITY: what it would have above that goes to the escape. (That
    cap costs the held-out Shakespeare 0.003 %, and it bounds what a payload can hold: see read_header.)
    """
    lanes, vocab = logits.shape
    free = 2 ** PRECISION - (vocab + 1) - (ESCAPE_WEIGHT - 1)  # R: the characters' share
    z = logits.astype(np.float64)
    z -= z.max(axis=1, keepdims=True)
    np.exp(z, out=z)
    z *= free / z.sum(axis=1, keepdims=True)
    if not np.isfinite(z).all():
        raise CompressError("the model's output is not finite (NaN or infinity): it cannot drive a coder")
    np.floor(z, out=z)
    rows, top = np.arange(lanes), z.argmax(axis=1)
    z[rows, top] += free - z.sum(axis=1)  # the remainder: 0 to vocab
    excess = np.maximum(z[rows, top] - (MAX_PROBABILITY * 2 ** PRECISION - 1), 0)
    z[rows, top] -= excess
    weights = np.empty((lanes, vocab + 1), np.float32)  # whole numbers below 2**24: exact in float32
    weights[:, :vocab] = z
    weights[:, vocab] = ESCAPE_WEIGHT - 1 + excess
    return weights


def coded_bits(weights, symbols):
    """Bits the coder spends on symbols[k] in row k of quantised weights: -log2((w + 1) / 2**24)."""
    return PRECISION - np.log2(weights[np.arange(len(symbols)), symbols].astype(np.float64) + 1)


def min_bits_per_char(vocab):
    """The fewest bits a character can cost: -log2 MAX_PROBABILITY, or less sure where the vocabulary is huge
    (every other symbol keeps at least 1 / 2**24, the escape 2**-12)."""
    largest = min(MAX_PROBABILITY * 2 ** PRECISION, 2 ** PRECISION - vocab - (ESCAPE_WEIGHT - 1))
    return PRECISION - math.log2(largest)


# ----------------------------------------------------------------------------------------------
# Lanes and symbols
# ----------------------------------------------------------------------------------------------

def default_lanes(num_chars):
    """Lanes for a text of num_chars characters: one per LANE_CHARS characters, from 1 to DEFAULT_MAX_LANES.

    A lane starts without context, so its first characters cost more: the shipped model spends about
    19 bits more on a lane's start than on the same characters in mid-text. One lane per 2,048
    characters keeps that near 0.3 % of the size (about 20 / (2,048 x 2.3 bits)), so short texts get
    few lanes. Lanes make coding faster because one matrix product serves them all: per character,
    54 lanes cost 1.5 times less than 16, 128 lanes 1.2 times less than 54, and past 256 nothing
    more is gained, so the count stops there.
    """
    return max(1, min(DEFAULT_MAX_LANES, num_chars // LANE_CHARS))


def _pieces(n, lanes):
    """(starts, lengths) of the lanes' contiguous pieces of an n-character text; lengths differ by <= 1."""
    base, extra = divmod(n, lanes)
    lengths = np.full(lanes, base, dtype=np.int64)
    lengths[:extra] += 1
    starts = np.zeros(lanes, dtype=np.int64)
    starts[1:] = np.cumsum(lengths)[:-1]
    return starts, lengths


def _step_order(positions, starts):
    """The text positions of some characters sorted as the coder meets them: by step, then by lane."""
    lane = np.searchsorted(starts, positions, side="right") - 1
    return positions[np.lexsort((lane, positions - starts[lane]))]


def _start_token(char_to_idx):
    """What every lane is fed before its first character: a line break, a space, or token 0."""
    return char_to_idx.get("\n", char_to_idx.get(" ", 0))


def _vocab_points(idx_to_char):
    """The vocabulary's code points, refusing entries that are not single characters."""
    if not all(isinstance(c, str) and len(c) == 1 for c in idx_to_char):
        raise CompressError("compression works with character models: this vocabulary has entries that are "
                            "not single characters")
    return np.array([ord(c) for c in idx_to_char], dtype=np.int64)


def _code_points(text):
    """Every character's code point (a lone surrogate too, as Python strings may hold one)."""
    return np.frombuffer(text.encode("utf-32-le", "surrogatepass"), dtype="<u4").astype(np.int32)


def _text_digest(text):
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()


def _symbols(points, vocab_points):
    """Each code point's vocabulary index, or the escape symbol len(vocabulary) where it has none."""
    escape = len(vocab_points)
    lookup = np.full(CODE_POINTS, escape, dtype=np.int32)
    lookup[vocab_points] = np.arange(escape, dtype=np.int32)
    return lookup[points]


class _Lanes:
    """The net run over all lanes a step at a time, each lane fed the symbol it coded last."""

    def __init__(self, net, lanes, start, escape):
        self.net, self.start, self.escape = net, start, escape
        net.start(lanes)
        self.tokens = np.full(lanes, start, dtype=np.int64)

    def logits(self):
        """This step's logits (lanes, vocab)."""
        return self.net.step(self.tokens)

    def feed(self, symbols):
        """The symbols just coded by the first len(symbols) lanes (an escape reads as the start token)."""
        self.tokens[:len(symbols)] = np.where(symbols == self.escape, self.start, symbols)


# ----------------------------------------------------------------------------------------------
# Compress, decompress, and what an ideal coder would spend
# ----------------------------------------------------------------------------------------------

def _lanes_for(n, lanes):
    """The lanes to use for n characters: default_lanes(n) if None, checked, and no more than characters."""
    lanes = default_lanes(n) if lanes is None else lanes
    if type(lanes) is not int or not 1 <= lanes <= MAX_LANES:
        raise CompressError(f"lanes must be a whole number from 1 to {MAX_LANES}, got {lanes!r}")
    return min(lanes, max(1, n))  # a lane without characters would only cost time


def _text_symbols(text, char_to_idx):
    """(code points, symbols, idx_to_char) of a text: a symbol is a vocabulary index or len(vocabulary)."""
    if len(text) > MAX_CHARS:
        raise CompressError(f"the text has {len(text):,} characters; one file holds at most {MAX_CHARS:,}")
    idx_to_char = sorted(char_to_idx, key=char_to_idx.get)
    points = _code_points(text)
    return points, _symbols(points, _vocab_points(idx_to_char)), idx_to_char


def cross_entropy_bits(model, text, *, char_to_idx, ctx, lanes=None, quantised=False):
    """Bits an ideal coder driven by this model spends on `text`, in these lanes (None: as compress).

    The model's probabilities with the escape's 2**-12 set aside, and log2(0x110000) = 20.1 bits for
    each escaped code point. quantised=True: the whole-number probabilities the coder really uses;
    compress's payload is that plus its flush (at most FLUSH_BITS).
    """
    lanes = _lanes_for(len(text), lanes)
    _, symbols, _ = _text_symbols(text, char_to_idx)
    escape, (starts, lengths) = len(char_to_idx), _pieces(len(text), lanes)
    bits = 0.0
    with one_blas_thread():
        run = _Lanes(_net(model, ctx), lanes, _start_token(char_to_idx), escape)
        for t in range(int(lengths[0])):
            active = int((lengths > t).sum())
            step = symbols[starts[:active] + t]
            logits = run.logits()[:active]
            if quantised:
                bits += coded_bits(quantise(logits), step).sum()
            else:
                z = logits.astype(np.float64)
                z -= z.max(axis=1, keepdims=True)
                z -= np.log(np.exp(z).sum(axis=1, keepdims=True))  # log-probabilities
                known = np.flatnonzero(step != escape)
                bits -= z[known, step[known]].sum() / math.log(2)
                bits -= len(known) * math.log2(1 - ESCAPE_PROBABILITY)
                bits -= (len(step) - len(known)) * math.log2(ESCAPE_PROBABILITY)
            run.feed(step)
    return float(bits + (symbols == escape).sum() * math.log2(CODE_POINTS))


def compress(text, model, *, char_to_idx, ctx, lanes=None):
    """Bytes of the compressed text, header included (lanes=None: default_lanes(len(text)))."""
    constriction = _constriction()
    n = len(text)
    lanes = _lanes_for(n, lanes)
    points, symbols, idx_to_char = _text_symbols(text, char_to_idx)
    escape, (starts, lengths) = len(idx_to_char), _pieces(n, lanes)
    encoder = constriction.stream.queue.RangeEncoder()
    family = constriction.stream.model.Categorical(perfect=False)
    with one_blas_thread():
        net = _net(model, ctx)
        probe = _probe(net, lanes, escape)
        run = _Lanes(net, lanes, _start_token(char_to_idx), escape)
        for t in range(int(lengths[0])):
            active = int((lengths > t).sum())  # all lanes, but in the last step only the first `active`
            step = symbols[starts[:active] + t]
            encoder.encode(step, family, quantise(run.logits())[:active])
            run.feed(step)
    escaped = _step_order(np.flatnonzero(symbols == escape), starts)
    if len(escaped):  # their code points go last: the decoder needs them only once every symbol is known
        encoder.encode(points[escaped], constriction.stream.model.Uniform(CODE_POINTS))
    header = json.dumps({"version": VERSION, "chars": n, "lanes": lanes, "vocab": escape,
                         "arithmetic": net.arithmetic, "probe": probe, "model_sha256": model_digest(model),
                         "text_sha256": _text_digest(text)}, separators=(",", ":")).encode()
    words = encoder.get_compressed() if n else np.zeros(0, np.uint32)
    return MAGIC + struct.pack("<I", len(header)) + header + words.astype("<u4").tobytes()


def _damaged(what):
    return CompressError(f"the compressed file is damaged or truncated ({what})")


def _is_hex(value, digits):
    return len(value) == digits and set(value) <= set("0123456789abcdef")


def read_header(data):
    """The header of a compressed file, every field checked and bounded, and where its payload starts.

    The header is untrusted input: its length is bounded before it is parsed, its fields are exactly
    the expected ones with the expected types (a bool is not a number), lanes from 1 to MAX_LANES,
    and the characters it announces must fit in the payload, each costing at least
    min_bits_per_char(vocab) bits.
    """
    data = bytes(data)
    prefix = len(MAGIC) + 4
    if len(data) < prefix or not data.startswith(MAGIC):
        raise CompressError("not a d2lrnn compressed file (its first bytes are not D2LRNN-Z)")
    (size,) = struct.unpack("<I", data[len(MAGIC):prefix])
    if size > MAX_HEADER_BYTES:
        raise _damaged(f"its header claims {size:,} bytes; d2lrnn writes at most {MAX_HEADER_BYTES:,}")
    start = prefix + size
    if len(data) < start:
        raise _damaged("it ends inside its header")
    try:
        header = json.loads(data[prefix:start].decode("utf-8"))
    except (ValueError, RecursionError):  # JSONDecodeError and UnicodeDecodeError are ValueErrors
        raise _damaged("its header is not JSON") from None
    if not isinstance(header, dict):
        raise _damaged("its header is not a JSON object")
    version = header.get("version")
    if type(version) is int and version != VERSION:
        raise CompressError(f"this file is format {version}; this d2lrnn reads format {VERSION} only: "
                            "compress the text again with this version")
    if set(header) != set(HEADER_FIELDS):
        missing, extra = sorted(set(HEADER_FIELDS) - set(header)), sorted(set(header) - set(HEADER_FIELDS))
        raise _damaged(f"header fields missing: {', '.join(missing) or 'none'}; unexpected: "
                       f"{', '.join(repr(k[:20]) for k in extra[:3]) or 'none'}")
    for key, kind in HEADER_FIELDS.items():
        if type(header[key]) is not kind:
            raise _damaged(f"header field {key!r} is not {'a whole number' if kind is int else 'a string'}")
    chars, lanes, vocab = header["chars"], header["lanes"], header["vocab"]
    if not 0 <= chars <= MAX_CHARS:
        raise _damaged(f"header field 'chars' is {chars}, not from 0 to {MAX_CHARS:,}")
    if not 1 <= lanes <= min(MAX_LANES, max(1, chars)):
        raise _damaged(f"header field 'lanes' is {lanes}, not from 1 to {min(MAX_LANES, max(1, chars)):,}")
    if not 1 <= vocab <= MAX_VOCAB:
        raise _damaged(f"header field 'vocab' is {vocab}, not from 1 to {MAX_VOCAB:,}")
    if header["arithmetic"] not in ARITHMETIC:
        raise _damaged(f"header field 'arithmetic' is not one of {', '.join(ARITHMETIC)}")
    digests = all(_is_hex(header[k], 64) for k in ("model_sha256", "text_sha256"))
    if not _is_hex(header["probe"], 16) or not digests:
        raise _damaged("a digest in its header is not hexadecimal of the right length")
    payload = len(data) - start
    if payload % 4:
        raise _damaged("its payload is not a whole number of 32-bit words")
    if (chars == 0) != (payload == 0):
        raise _damaged("an empty text with a payload" if payload else "no payload")
    if 8 * payload + FLUSH_BITS < chars * min_bits_per_char(vocab):
        raise _damaged(f"{payload:,} payload bytes cannot hold {chars:,} characters: each costs at least "
                       f"{min_bits_per_char(vocab):.2g} bits")
    return header, start


def decompress(data, model, *, idx_to_char, ctx):
    """The text compressed into `data`, checked against its SHA-256."""
    constriction = _constriction()
    header, start = read_header(data)
    if header["model_sha256"] != model_digest(model):
        raise CompressError("this file was compressed with another model: decompress it with the same "
                            "checkpoint")
    if header["vocab"] != len(idx_to_char):
        raise _damaged(f"its header says the vocabulary has {header['vocab']:,} characters; the model's has "
                       f"{len(idx_to_char):,}")
    n, lanes, escape = header["chars"], header["lanes"], len(idx_to_char)
    vocab_points = _vocab_points(idx_to_char)
    text = ""
    with one_blas_thread() as blas:
        net = _net(model, ctx)
        if header["arithmetic"] != net.arithmetic:
            raise CompressError(f"this file was coded with {ARITHMETIC[header['arithmetic']]}, but here the "
                                f"model runs {ARITHMETIC[net.arithmetic]}: decompress it with the same kind "
                                "of model")
        if n and _probe(net, lanes, escape) != header["probe"]:
            raise CompressError(f"this machine ({blas}) computes the model's probabilities differently from "
                                "the one that compressed the file, or its header is damaged: decompress it "
                                "where it was compressed")
        if n:
            text = _decode(constriction, net, data[start:], header, vocab_points,
                           _start_token({c: i for i, c in enumerate(idx_to_char)}))
    if _text_digest(text) != header["text_sha256"]:
        raise CompressError("the decoded text does not match its checksum: the file is damaged, or this "
                            "machine computes the model's probabilities differently from the one that "
                            "compressed it")
    return text


def _decode(constriction, net, payload, header, vocab_points, start_token):
    """The text of a payload: a step of the net and a decode call per step, code points of escapes last."""
    n, lanes, escape = header["chars"], header["lanes"], len(vocab_points)
    words = np.frombuffer(payload, dtype="<u4").astype(np.uint32)
    budget = 32 * len(words) + FLUSH_BITS  # the most information a payload this long carries
    decoder = constriction.stream.queue.RangeDecoder(words)
    family = constriction.stream.model.Categorical(perfect=False)
    starts, lengths = _pieces(n, lanes)
    run = _Lanes(net, lanes, start_token, escape)
    rows, spent = [], 0.0
    try:
        for t in range(int(lengths[0])):
            active = int((lengths > t).sum())
            weights = quantise(run.logits())[:active]
            step = np.asarray(decoder.decode(family, weights), dtype=np.int32)
            spent += coded_bits(weights, step).sum()
            if spent > budget:  # a damaged or forged file: stop now rather than decode on
                raise _damaged(f"{len(payload):,} payload bytes cannot hold the {n:,} characters its header "
                               "announces")
            rows.append(step)
            run.feed(step)
        symbols = np.full((len(rows), lanes), escape, dtype=np.int32)  # (steps, lanes)
        for t, step in enumerate(rows):
            symbols[t, :len(step)] = step
        in_text = np.arange(len(rows))[None, :] < lengths[:, None]   # (lanes, steps)
        symbols = symbols.T[in_text]                                    # text order: lane after lane
        points = vocab_points[np.minimum(symbols, escape - 1)]
        escaped = _step_order(np.flatnonzero(symbols == escape), starts)
        if len(escaped):
            points[escaped] = decoder.decode(constriction.stream.model.Uniform(CODE_POINTS), len(escaped))
        return points.astype("<u4").tobytes().decode("utf-32-le", "surrogatepass")
    except (ValueError, RuntimeError, IndexError, OverflowError, AssertionError) as err:  # bad data
        raise _damaged(str(err).splitlines()[0] if str(err) else type(err).__name__) from None
