"""Data: find a corpus, preprocess it, build a vocabulary, cut minibatches, one-hot encode.

The corpus is a NumPy integer array (one entry per token): the vocabulary, the encoding and the
minibatch iterators work on whole arrays, so a text of millions of characters loads in a second.
"""
import collections
import os
import random
import re
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from mxnet import nd

from .utils import UserError, file_digest, quoted

REPO_DATA_DIR = Path(__file__).resolve().parent.parent / "data"
UNK = "<unk>"


@dataclass(frozen=True)
class Corpus:
    """A built-in text: its file name, where it is published, its sha1 and its usual preprocessing."""

    file: str
    url: str
    sha1: str
    preprocess: str
    num_chars: int = None  # how much the lecture uses by default (None: all of it)


CORPORA = {
    "timemachine": Corpus("timemachine.txt", "http://d2l-data.s3-accelerate.amazonaws.com/timemachine.txt",
                          "090b5e7e70c295757f55df93cb0a180b9691891a", "lecture", 10000),
    "tinyshakespeare": Corpus(
        "tinyshakespeare.txt",
        "https://raw.githubusercontent.com/karpathy/char-rnn/master/data/tinyshakespeare/input.txt",
        "04486597058d11dcc2c556b1d0433891eb639d2e", "raw"),
}
DATA_URL, DATA_SHA1, DATA_FILE = (CORPORA["timemachine"].url, CORPORA["timemachine"].sha1,
                                  CORPORA["timemachine"].file)


class DataError(UserError, ValueError):
    """Raised when a text cannot be found, fetched, read or trusted."""


def _corpus(name):
    """The built-in corpus called `name`."""
    if name not in CORPORA:
        raise DataError(f"unknown corpus {name!r}: choose one of {', '.join(CORPORA)}")
    return CORPORA[name]


def _checked(path, corpus):
    """Return `path` if its sha1 is the corpus's, else raise DataError."""
    digest = file_digest(path, "sha1")
    if digest != corpus.sha1:
        raise DataError(
            f"{quoted(path)} is not the course's {corpus.file}: its sha1 is {digest}, expected {corpus.sha1}"
            f". Delete it (d2lrnn will download a fresh copy) or replace it with the file from {corpus.url}."
        )
    return path


def cache_dir():
    """The per-user cache folder for downloaded data (D2LRNN_CACHE_DIR overrides it)."""
    import pooch

    return Path(os.environ.get("D2LRNN_CACHE_DIR") or pooch.os_cache("d2lrnn"))


def get_corpus_path(data_dir=None, url=None, corpus="timemachine"):
    """Locate a built-in corpus (argument, $D2LRNN_DATA_DIR, repo data/, cache) or download it."""
    spec = _corpus(corpus)
    named = os.environ.get("D2LRNN_DATA_DIR")
    if named and not Path(named).is_dir():
        raise DataError(f"D2LRNN_DATA_DIR={quoted(named)} is not a folder: point it at the folder that holds "
                        f"{spec.file}, or unset it")
    for folder in [data_dir, named, REPO_DATA_DIR, cache_dir()]:
        if folder and (Path(folder) / spec.file).is_file():
            return _checked(Path(folder) / spec.file, spec)
    return _download(url or spec.url, spec)


def _download(url, corpus):
    """Fetch a corpus into the cache with pooch, verifying its sha1."""
    import pooch

    try:
        path = pooch.retrieve(url, known_hash=f"sha1:{corpus.sha1}", fname=corpus.file, path=cache_dir(),
                              progressbar=False)
    except ValueError as err:  # pooch's hash mismatch; the bad download is not kept
        raise DataError(f"the file downloaded from {url} failed its checksum ({err}); "
                        f"expected sha1 {corpus.sha1}") from None
    except Exception as err:  # offline, DNS failure, HTTP error, ...
        raise DataError(
            f"{corpus.file} was not found locally and could not be downloaded from {url} "
            f"({type(err).__name__}: {err}). Download it on a machine with internet access "
            f"(sha1 {corpus.sha1}) and point the D2LRNN_DATA_DIR environment variable at its folder."
        ) from None
    return Path(path)


MAX_TEXT_BYTES = 2 ** 31  # 2 GB: the corpus becomes an array of 32-bit indices, 4 bytes a character


def read_text(path):
    """Read a UTF-8 text file (or a pipe), with clear errors for a missing, unreadable, huge or empty one.

    A byte-order mark at the start is dropped: it marks the encoding and is not part of the text."""
    path = Path(path)
    if path.is_dir():
        raise DataError(f"{quoted(path)} is a folder: give a text file")
    try:
        with open(path, "rb") as f:
            raw = f.read(MAX_TEXT_BYTES + 1)
    except FileNotFoundError:
        raise DataError(f"text file not found: {quoted(path)}") from None
    except OSError as err:
        raise DataError(f"cannot read {quoted(path)}: {err.strerror or err}") from None
    if len(raw) > MAX_TEXT_BYTES:
        raise DataError(f"{quoted(path)} is larger than {MAX_TEXT_BYTES // 2**30} GB: use a part of it")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as err:
        raise DataError(f"{quoted(path)} is not UTF-8 text ({err.reason} at byte {err.start}): "
                        "convert it, e.g. `iconv -t utf-8`") from None
    text = text[1:] if text.startswith("\ufeff") else text
    if not text.strip():
        raise DataError(f"{quoted(path)} is empty: give a text file with at least a few sentences")
    return text


def normalize(text):
    """Lower-case and turn line breaks into spaces, as the lecture does."""
    return text.replace("\n", " ").replace("\r", " ").lower()


def letters_only(text):
    """Homework 8's preprocessing: lower-case letters, every run of anything else one space."""
    return " ".join(re.sub("[^A-Za-z]+", " ", text).lower().split())


PREPROCESS = {"lecture": normalize, "raw": lambda text: text, "letters": letters_only}


def preprocess(text, style="lecture"):
    """Apply one of PREPROCESS: 'lecture' (lower case, no line breaks), 'raw' (as is) or 'letters'."""
    if style not in PREPROCESS:
        raise ValueError(f"preprocess must be one of {', '.join(PREPROCESS)}, not {style!r}")
    return PREPROCESS[style](text)


def tokenize(text, token="char"):
    """Split text into characters or (whitespace-separated) words."""
    if token == "char":
        return list(text)
    if token == "word":
        return text.split()
    raise ValueError(f"token must be 'char' or 'word', not {token!r}")


CHUNK = 1 << 20  # characters converted at a time: a long text costs 4 bytes a character, not 9


def _code_points(text):
    """Text -> (len,) int32 array of its characters' Unicode code points, converted a chunk at a time."""
    codes = np.empty(len(text), dtype=np.int32)
    for start in range(0, len(text), CHUNK):
        chunk = text[start:start + CHUNK].encode("utf-32-le")
        codes[start:start + CHUNK] = np.frombuffer(chunk, dtype=np.int32)
    return codes


def _index_codes(codes):
    """Code points -> (indices in place, idx_to_char): the characters that occur, in code-point order."""
    present = np.flatnonzero(np.bincount(codes))            # sorted code points that occur
    table = np.zeros(int(codes.max()) + 1, dtype=np.int32)  # code point -> index
    table[present] = np.arange(present.size, dtype=np.int32)
    np.take(table, codes, out=codes, mode="clip")           # in place: no second array of the text's length
    return codes, [chr(c) for c in present]


def char_vocab(text):
    """(corpus indices, idx_to_char) of a text: every character, in code-point order, vectorised."""
    return _index_codes(_code_points(text))


def build_vocab(tokens, min_freq=0):
    """Return (token_to_idx, idx_to_token), sorted so the order never depends on hashing."""
    counts = collections.Counter(tokens)
    kept = sorted(t for t, c in counts.items() if c >= min_freq and t != UNK)
    if len(kept) < len(counts):  # something was dropped (or was <unk> already): keep a slot for it
        kept = [UNK] + kept
    return {t: i for i, t in enumerate(kept)}, kept


def _check_num_chars(num_chars):
    """num_chars is None (all) or a positive whole number."""
    if num_chars is not None and (int(num_chars) != num_chars or num_chars < 1):
        raise ValueError("num_chars must be a whole number >= 1, or None for the whole text; got "
                         f"{num_chars!r}")


def corpus_from_text(text, num_chars=10000, token="char", min_freq=None, preprocess_style="lecture"):
    """Turn raw text into the lecture's (corpus_indices, char_to_idx, idx_to_char, vocab_size)."""
    _check_num_chars(num_chars)
    text = preprocess(text, preprocess_style)
    if num_chars is not None:
        text = text[:num_chars]
    if not text.strip():
        raise ValueError("the text is empty: give a corpus with at least a few characters")
    if token == "char" and not min_freq:
        corpus_indices, idx_to_char = char_vocab(text)
        return corpus_indices, {c: i for i, c in enumerate(idx_to_char)}, idx_to_char, len(idx_to_char)
    tokens = tokenize(text, token)
    if min_freq is None:  # words seen once become <unk>
        min_freq = 2 if token == "word" else 0
    char_to_idx, idx_to_char = build_vocab(tokens, min_freq)
    unk = char_to_idx.get(UNK)
    corpus_indices = np.array([char_to_idx.get(t, unk) for t in tokens], dtype=np.int32)
    return corpus_indices, char_to_idx, idx_to_char, len(idx_to_char)


def _encode_codes(codes, char_to_idx):
    """Code points -> (indices, -1 where the vocabulary lacks the character; Counter of those characters)."""
    table = np.full(max(int(codes.max(initial=0)), max(map(ord, char_to_idx))) + 1, -1, dtype=np.int32)
    table[[ord(c) for c in char_to_idx]] = list(char_to_idx.values())
    indices = table[codes]                                 # (len,)
    return indices, collections.Counter(chr(c) for c in codes[indices < 0])


def encode(text, char_to_idx, token="char"):
    """Map (already preprocessed) text onto a vocabulary: (indices, Counter of the tokens it lacks).

    Tokens outside the vocabulary become <unk> when the vocabulary has it and are dropped otherwise.
    """
    unk = char_to_idx.get(UNK)
    if token == "char" and all(len(c) == 1 for c in char_to_idx):
        indices, missing = _encode_codes(_code_points(text), char_to_idx)
        return (indices[indices >= 0] if unk is None else np.where(indices < 0, unk, indices)), missing
    tokens = tokenize(text, token)
    missing = collections.Counter(t for t in tokens if t not in char_to_idx)
    kept = [char_to_idx.get(t, unk) for t in tokens if t in char_to_idx or unk is not None]
    return np.array(kept, dtype=np.int32), missing


def unknown_fate(char_to_idx):
    """What encode() does with tokens outside this vocabulary, in words for a message."""
    return "scored as <unk>" if UNK in char_to_idx else "left out"


def encode_text(text, char_to_idx, token="char", preprocess_style="lecture"):
    """Map held-out text onto a training vocabulary (unknown tokens -> <unk>, else skipped with a warning)."""
    indices, missing = encode(preprocess(text, preprocess_style), char_to_idx, token)
    if missing and UNK not in char_to_idx:
        shown = ", ".join(repr(t) for t, _ in missing.most_common(5))
        warnings.warn(f"{sum(missing.values())} of {len(indices) + sum(missing.values())} held-out {token}s "
                      f"are not in the training vocabulary and are skipped (most common: {shown}); a "
                      f"vocabulary with {UNK} keeps them", stacklevel=2)
    return indices


def split_text(text, *, num_chars=None, val_chars=0, val_fraction=0.0):
    """(training text, held-out text). val_fraction holds out the end of the text; val_chars the
    characters right after the training text. Without num_chars the training text is all the rest."""
    train_len, start, held = split_bounds(len(text), num_chars=num_chars, val_chars=val_chars,
                                          val_fraction=val_fraction)
    return text[:train_len], text[start:start + held]


def split_bounds(n, *, num_chars=None, val_chars=0, val_fraction=0.0):
    """(training length, held-out start, held-out length) for a text of n characters (see split_text)."""
    _check_num_chars(num_chars)
    if val_chars and val_fraction:
        raise ValueError("give val_chars or val_fraction, not both")
    if int(val_chars) != val_chars or val_chars < 0 or not 0 <= val_fraction < 1:
        raise ValueError(f"val_chars must be a whole number >= 0 and val_fraction in [0, 1); got "
                         f"{val_chars!r} and {val_fraction!r}")
    held = round(val_fraction * n) if val_fraction else int(val_chars)
    end = n - held if val_fraction or num_chars is None else num_chars  # where the training text ends
    train_len = end if num_chars is None else min(num_chars, end)
    if train_len < 1 or (not val_fraction and train_len + held > n):
        raise ValueError(f"the text has {n} characters: not enough for {num_chars or 'the'} training "
                         f"characters and {held} held-out ones")
    if num_chars is not None and num_chars > end:
        raise ValueError(f"num_chars={num_chars} overlaps the held-out text, which starts at character {end}")
    return train_len, (end if val_fraction else train_len), held


def load_data_time_machine(num_chars=10000, data_dir=None, token="char", min_freq=None):
    """Load The Time Machine as the lecture's 4-tuple (vocab size 43 at character level)."""
    text = read_text(get_corpus_path(data_dir))
    return corpus_from_text(text, num_chars, token, min_freq)


def load_data_tiny_shakespeare(num_chars=None, data_dir=None, preprocess_style="raw", token="char"):
    """Load Tiny Shakespeare as the lecture's 4-tuple (65 characters with case and line breaks, raw)."""
    text = read_text(get_corpus_path(data_dir, corpus="tinyshakespeare"))
    return corpus_from_text(text, num_chars, token, preprocess_style=preprocess_style)


@dataclass(frozen=True)
class TextSource:
    """Which text to train on and how to read it: a corpus or a file, preprocessing, split, tokens."""

    corpus: str = "timemachine"
    text: str = None          # a file of your own instead of a built-in corpus
    preprocess: str = None    # None: the corpus's own (lecture: The Time Machine and files; raw: Shakespeare)
    token: str = "char"
    num_chars: int = None     # None: the corpus's default (The Time Machine: the lecture's 10,000), else all
    val_chars: int = 0
    val_fraction: float = 0.0

    @property
    def name(self):
        """The file or the corpus name."""
        return self.text or self.corpus

    @property
    def style(self):
        """The preprocessing that applies."""
        return self.preprocess or (_corpus(self.corpus).preprocess if not self.text else "lecture")

    @property
    def train_chars(self):
        """How many characters to train on (None: all but the held-out text)."""
        if self.num_chars is not None or self.text:
            return self.num_chars
        return _corpus(self.corpus).num_chars

    @property
    def holds_out(self):
        """True when part of the text is held out."""
        return bool(self.val_chars or self.val_fraction)

    def read(self):
        """The preprocessed text of the file or the built-in corpus."""
        raw = read_text(self.text) if self.text else read_text(get_corpus_path(corpus=self.corpus))
        return preprocess(raw, self.style)

    def part(self, which):
        """The preprocessed text of one part: "train", "val" (the held-out text) or "all"."""
        text = self.read()
        if which == "all":
            return text
        train_text, val_text = split_text(text, num_chars=self.train_chars, val_chars=self.val_chars,
                                          val_fraction=self.val_fraction)
        return train_text if which == "train" else val_text


@dataclass
class Split:
    """Training and held-out token indices with the training text's vocabulary."""

    corpus: object      # (tokens,) int32 array
    val: object         # (tokens,) int32 array, or None without held-out text
    idx_to_char: list
    char_to_idx: dict
    skipped: dict       # held-out tokens outside the training vocabulary, with counts


def load_split(source):
    """Read, preprocess and split a TextSource; the vocabulary comes from the training part only."""
    text = source.read()
    if not text.strip():
        raise DataError(f"{source.name}: the text is empty after preprocessing ({source.style}); choose "
                        "another preprocessing or another text")
    train_len, start, held = split_bounds(len(text), num_chars=source.train_chars, val_chars=source.val_chars,
                                          val_fraction=source.val_fraction)
    if source.token == "word":
        corpus, char_to_idx, idx_to_char, _ = corpus_from_text(text[:train_len], None, "word",
                                                               preprocess_style="raw")
        val, skipped = (encode(text[start:start + held], char_to_idx, "word") if source.holds_out
                        else (None, {}))
    else:  # characters: one array of code points for the whole text, the training part indexed in place
        codes = _code_points(text)
        del text
        corpus, idx_to_char = _index_codes(codes[:train_len])  # held-out text starts at train_len or later
        char_to_idx = {c: i for i, c in enumerate(idx_to_char)}
        val, skipped = None, {}
        if source.holds_out:
            val, skipped = _encode_codes(codes[start:start + held], char_to_idx)
            val = val[val >= 0]
    return Split(corpus=corpus, val=val, idx_to_char=idx_to_char, char_to_idx=char_to_idx,
                 skipped=dict(skipped))


LECTURE_PREFIXES = ("traveller", "time traveller")  # the lecture's, for The Time Machine


def default_prefixes(source, split, prefixes=None):
    """Prefixes for samples: the given ones, preprocessed like the text; the lecture's for The Time
    Machine; else the training text's first word."""
    if prefixes:
        return tuple(preprocess(p, source.style) if source.token == "char" else p for p in prefixes)
    if not source.text and source.corpus == "timemachine" and source.style == "lecture":
        return LECTURE_PREFIXES
    sep = "" if source.token == "char" else " "
    head = sep.join(split.idx_to_char[i] for i in split.corpus[:40]).split()
    if not head:
        return (split.idx_to_char[split.corpus[0]],)
    return (head[0][:20] if source.token == "char" else head[0],)


def check_minibatches(num_windows, what, batch_size, num_steps, corpus_len):
    """Raise a clear error when the corpus yields no minibatch at all."""
    for name, value in (("batch_size", batch_size), ("num_steps", num_steps)):
        if int(value) != value or value < 1:
            raise ValueError(f"{name} must be a whole number >= 1, got {value!r}")
    if num_windows < 1:
        raise ValueError(
            f"a corpus of {corpus_len} tokens is too short for {what} with batch_size={batch_size} "
            f"and num_steps={num_steps}: use more text or smaller batch_size/num_steps"
        )


def data_iter_random(corpus_indices, batch_size, num_steps, ctx=None, *, rng=None):
    """Yield (X, Y) minibatches of random, non-overlapping windows; Y is X shifted by one.

    rng (a random.Random) shuffles the windows; without it, Python's global generator does, as in the
    lecture (d2lrnn.set_seed seeds it)."""
    corpus = np.asarray(corpus_indices)
    num_examples = (len(corpus) - 1) // max(num_steps, 1)
    epoch_size = num_examples // max(batch_size, 1)
    check_minibatches(epoch_size, "random sampling", batch_size, num_steps, len(corpus))
    starts = np.arange(num_examples) * num_steps  # (examples,) an array, not a list of Python ints
    (rng or random).shuffle(starts)
    offsets = np.arange(num_steps)
    for i in range(epoch_size):
        windows = starts[i * batch_size:(i + 1) * batch_size, None] + offsets  # (batch, steps)
        yield nd.array(corpus[windows], ctx=ctx), nd.array(corpus[windows + 1], ctx=ctx)


def data_iter_consecutive(corpus_indices, batch_size, num_steps, ctx=None):
    """Yield (X, Y) minibatches from batch_size parallel streams; batch k+1 continues batch k."""
    corpus = np.asarray(corpus_indices)
    batch_len = len(corpus) // max(batch_size, 1)
    epoch_size = (batch_len - 1) // max(num_steps, 1)
    check_minibatches(epoch_size, "sequential sampling", batch_size, num_steps, len(corpus))
    streams = corpus[:batch_size * batch_len].reshape((batch_size, batch_len))  # (batch, len), a view
    for i in range(epoch_size):
        t = i * num_steps
        yield (nd.array(streams[:, t:t + num_steps], ctx=ctx),               # (batch, steps) each, copied to
               nd.array(streams[:, t + 1:t + num_steps + 1], ctx=ctx))       # ctx one minibatch at a time


def to_onehot(X, size):
    """(batch, steps) indices -> list of `steps` one-hot arrays of shape (batch, size)."""
    return [nd.one_hot(x, size) for x in X.T]
