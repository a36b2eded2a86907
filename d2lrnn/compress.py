"""Perplexity as compression: entropy coding driven by a trained model's next-character distribution.

A model that gives the next character probability p lets an arithmetic (here: range) coder spend
-log2 p bits on it, so a text costs its cross-entropy in bits, up to a few bytes: bits per character
IS compressed size. The coder is `constriction`'s range coder (`pip install constriction`).

Encoder and decoder must compute bit-identical probabilities. The decoder can only go one step at
a time, so the encoder does too, with the same array shapes: the text is cut into `lanes`
contiguous pieces that are coded side by side, one character of every lane per step (a batch of
lanes, one time step per model call). Characters outside the model's vocabulary are coded as an
escape symbol followed by their Unicode code point. The header carries a SHA-256 of the model's
weights and of the text: decoding with another model stops at once, and a decoded text that does
not match (a machine whose floating point disagrees, a damaged file) is an error, never garbage.
"""
import hashlib
import json
import struct

import numpy as np
from mxnet import nd

from .utils import UserError

MAX_LANES = 4096                 # lanes coded side by side, at most
MAGIC = b"D2LRNN-Z"
VERSION = 1
ESCAPE_PROBABILITY = 2.0 ** -12  # set aside for characters the vocabulary does not have
CODE_POINTS = 0x110000           # every Unicode code point, coded uniformly after an escape
HEADER_INTS = {"chars": 0, "lanes": 1, "vocab": 0}  # whole-number header fields and their least values


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


def _lanes(n, lanes):
    """(start, length) of each lane's piece of an n-character text."""
    size = -(-n // lanes) if n else 0
    return [(min(k * size, n), max(0, min(size, n - k * size))) for k in range(lanes)]


def _start_token(char_to_idx):
    """What every lane is fed before its first character: a line break, a space, or token 0."""
    return char_to_idx.get("\n", char_to_idx.get(" ", 0))


def _probabilities(logits):
    """(lanes, vocab + 1) float64 probabilities from (lanes, vocab) logits, the escape symbol last."""
    z = logits.astype(np.float64)
    p = np.exp(z - z.max(axis=1, keepdims=True))
    p = p / p.sum(axis=1, keepdims=True) * (1 - ESCAPE_PROBABILITY)
    return np.concatenate([p, np.full((p.shape[0], 1), ESCAPE_PROBABILITY)], axis=1)


class _Stepper:
    """Runs the model one step for all lanes at a time; yields each step's probabilities."""

    def __init__(self, model, lanes, ctx, start):
        self.model, self.ctx = model, ctx
        self.state = model.begin_state(batch_size=lanes, ctx=ctx)
        self.tokens = np.full(lanes, start, dtype=np.int64)

    def probabilities(self):
        logits, self.state = self.model(nd.array(self.tokens[:, None], ctx=self.ctx), self.state)  # (lanes, vocab)
        return _probabilities(logits.asnumpy())

    def feed(self, tokens):
        self.tokens = tokens


def cross_entropy_bits(model, text, *, char_to_idx, ctx, lanes=16):
    """What an ideal coder would spend on `text` with this model and these lanes, in bits."""
    symbols, escapes, bits = _symbols(text, char_to_idx), 0, 0.0
    stepper = _Stepper(model, lanes, ctx, _start_token(char_to_idx))
    pieces = _lanes(len(text), lanes)
    for t in range(max((length for _, length in pieces), default=0)):
        probs = stepper.probabilities()
        active = [k for k, (_, length) in enumerate(pieces) if t < length]
        step = np.array([symbols[pieces[k][0] + t] for k in active])
        bits -= np.log2(probs[active, step]).sum()
        escapes += int((step == probs.shape[1] - 1).sum())
        stepper.feed(_next_tokens(stepper.tokens, active, step, probs.shape[1] - 1, _start_token(char_to_idx)))
    return bits + escapes * np.log2(CODE_POINTS)


def _symbols(text, char_to_idx):
    """Each character's vocabulary index, or the escape symbol (len(vocab)) if it has none."""
    escape = len(char_to_idx)
    return np.array([char_to_idx.get(c, escape) for c in text], dtype=np.int64)


def _next_tokens(tokens, active, step, escape, start):
    """What each lane reads next: its character just coded (an escaped one reads as the start token)."""
    tokens = tokens.copy()
    tokens[active] = np.where(step == escape, start, step)
    return tokens


def default_lanes(num_chars):
    """Lanes for a text of num_chars characters: one per 4,096 characters, from 1 to 16."""
    return max(1, min(16, num_chars // 4096))


def compress(text, model, *, char_to_idx, ctx, lanes=None):
    """Bytes of the compressed text (header included)."""
    constriction = _constriction()
    lanes = default_lanes(len(text)) if lanes is None else lanes
    encoder, family = constriction.stream.queue.RangeEncoder(), constriction.stream.model.Categorical(perfect=False)
    uniform = constriction.stream.model.Uniform(CODE_POINTS)
    symbols, start = _symbols(text, char_to_idx), _start_token(char_to_idx)
    escape, pieces = len(char_to_idx), _lanes(len(text), lanes)
    stepper = _Stepper(model, lanes, ctx, start)
    for t in range(max((length for _, length in pieces), default=0)):
        probs = stepper.probabilities()
        active = [k for k, (_, length) in enumerate(pieces) if t < length]
        step = np.array([symbols[pieces[k][0] + t] for k in active])
        encoder.encode(step.astype(np.int32), family, probs[active].astype(np.float64))
        for k, s in zip(active, step):
            if s == escape:
                encoder.encode(ord(text[pieces[k][0] + t]), uniform)
        stepper.feed(_next_tokens(stepper.tokens, active, step, escape, start))
    header = json.dumps({"version": VERSION, "chars": len(text), "lanes": lanes, "vocab": len(char_to_idx),
                         "model_sha256": model_digest(model),
                         "text_sha256": hashlib.sha256(text.encode("utf-8")).hexdigest()}).encode()
    words = encoder.get_compressed()  # uint32 array
    return MAGIC + struct.pack("<I", len(header)) + header + words.astype("<u4").tobytes()


def read_header(data):
    """The header of a compressed file, and where its coded words start."""
    if not data.startswith(MAGIC) or len(data) < len(MAGIC) + 4:
        raise CompressError("not a d2lrnn compressed file (its first bytes are not D2LRNN-Z)")
    (size,) = struct.unpack("<I", data[len(MAGIC):len(MAGIC) + 4])
    start = len(MAGIC) + 4 + size
    try:
        header = json.loads(data[len(MAGIC) + 4:start].decode())
        if header["version"] != VERSION:
            raise CompressError(f"this file is format {header['version']}; this d2lrnn reads format {VERSION}")
        if not (all(type(header[k]) is int and header[k] >= low for k, low in HEADER_INTS.items())
                and all(isinstance(header[k], str) for k in ("model_sha256", "text_sha256"))):
            raise ValueError("a header field is missing or out of range")
        return header, start
    except (ValueError, KeyError, TypeError, UnicodeDecodeError):
        raise CompressError("the compressed file is damaged or truncated (its header cannot be read)") from None


def decompress(data, model, *, idx_to_char, ctx):
    """The text compressed into `data`, checked against its SHA-256."""
    constriction = _constriction()
    header, start = read_header(data)
    if header["model_sha256"] != model_digest(model) or header["vocab"] != len(idx_to_char):
        raise CompressError("this file was compressed with another model: decompress it with the same checkpoint")
    if (len(data) - start) % 4:
        raise CompressError("the compressed file is truncated (its length is not a whole number of 32-bit words)")
    words = np.frombuffer(data[start:], dtype="<u4").astype(np.uint32)
    decoder = constriction.stream.queue.RangeDecoder(words)
    family = constriction.stream.model.Categorical(perfect=False)
    uniform = constriction.stream.model.Uniform(CODE_POINTS)
    char_to_idx = {c: i for i, c in enumerate(idx_to_char)}
    escape, start_token, lanes = len(idx_to_char), _start_token(char_to_idx), header["lanes"]
    pieces = _lanes(header["chars"], lanes)
    out = [[] for _ in range(lanes)]
    stepper = _Stepper(model, lanes, ctx, start_token)
    try:
        for t in range(max((length for _, length in pieces), default=0)):
            probs = stepper.probabilities()
            active = [k for k, (_, length) in enumerate(pieces) if t < length]
            step = np.asarray(decoder.decode(family, probs[active].astype(np.float64)), dtype=np.int64)
            for k, s in zip(active, step):
                out[k].append(chr(decoder.decode(uniform)) if s == escape else idx_to_char[s])
            stepper.feed(_next_tokens(stepper.tokens, active, step, escape, start_token))
    except (ValueError, RuntimeError, IndexError, OverflowError, AssertionError) as err:  # constriction: invalid data
        raise CompressError(f"the compressed file is damaged or truncated ({err})") from None
    text = "".join("".join(lane) for lane in out)
    # damage may decode an escape into a lone surrogate, which strict UTF-8 refuses: it only fails the checksum
    if hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest() != header["text_sha256"]:
        raise CompressError("the decoded text does not match its checksum: the file is damaged, or this machine "
                            "computes the model's probabilities differently from the one that compressed it")
    return text
