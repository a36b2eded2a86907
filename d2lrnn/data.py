"""Data: find The Time Machine, build a vocabulary, cut minibatches, one-hot encode."""
import collections
import hashlib
import os
import random
import warnings
from pathlib import Path

from . import _compat  # noqa: F401  (numpy shim before MXNet)
from mxnet import nd

DATA_URL = "http://d2l-data.s3-accelerate.amazonaws.com/timemachine.txt"
DATA_SHA1 = "090b5e7e70c295757f55df93cb0a180b9691891a"
DATA_FILE = "timemachine.txt"
REPO_DATA_DIR = Path(__file__).resolve().parent.parent / "data"
UNK = "<unk>"


class DataError(ValueError):
    """Raised when the corpus cannot be found, fetched or trusted."""


def _sha1(path):
    """Return the hex sha1 of a file."""
    h = hashlib.sha1()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 16), b""):
            h.update(block)
    return h.hexdigest()


def _checked(path):
    """Return `path` if its sha1 is the corpus's, else raise DataError."""
    digest = _sha1(path)
    if digest != DATA_SHA1:
        raise DataError(
            f"{path} is not the course's {DATA_FILE}: its sha1 is {digest}, expected {DATA_SHA1}. "
            f"Delete it (d2lrnn will download a fresh copy) or replace it with the file from {DATA_URL}."
        )
    return path


def cache_dir():
    """The per-user cache folder for downloaded data (D2LRNN_CACHE_DIR overrides it)."""
    import pooch

    return Path(os.environ.get("D2LRNN_CACHE_DIR") or pooch.os_cache("d2lrnn"))


def get_corpus_path(data_dir=None, url=DATA_URL):
    """Locate timemachine.txt (argument, $D2LRNN_DATA_DIR, repo data/, cache) or download it."""
    candidates = [data_dir, os.environ.get("D2LRNN_DATA_DIR"), REPO_DATA_DIR, cache_dir()]
    for folder in candidates:
        if folder and (Path(folder) / DATA_FILE).is_file():
            return _checked(Path(folder) / DATA_FILE)
    return _download(url)


def _download(url):
    """Fetch the corpus into the cache with pooch, verifying its sha1."""
    import pooch

    try:
        path = pooch.retrieve(url, known_hash=f"sha1:{DATA_SHA1}", fname=DATA_FILE,
                              path=cache_dir(), progressbar=False)
    except ValueError as err:  # pooch's hash mismatch; the bad download is not kept
        raise DataError(f"the file downloaded from {url} failed its checksum ({err}); "
                        f"expected sha1 {DATA_SHA1}") from None
    except Exception as err:  # offline, DNS failure, HTTP error, ...
        raise DataError(
            f"{DATA_FILE} was not found locally and could not be downloaded from {url} "
            f"({type(err).__name__}: {err}). Download it on a machine with internet access "
            f"(sha1 {DATA_SHA1}) and point the D2LRNN_DATA_DIR environment variable at its folder."
        ) from None
    return Path(path)


def build_vocab(tokens, min_freq=0):
    """Return (token_to_idx, idx_to_token), sorted so the order never depends on hashing."""
    counts = collections.Counter(tokens)
    kept = sorted(t for t, c in counts.items() if c >= min_freq and t != UNK)
    if len(kept) < len(counts):  # something was dropped (or was <unk> already): keep a slot for it
        kept = [UNK] + kept
    token_to_idx = {t: i for i, t in enumerate(kept)}
    return token_to_idx, kept


def tokenize(text, token="char"):
    """Split text into characters or (whitespace-separated) words."""
    if token == "char":
        return list(text)
    if token == "word":
        return text.split()
    raise ValueError(f"token must be 'char' or 'word', not {token!r}")


def normalize(text):
    """Lower-case and turn line breaks into spaces, as the lecture does."""
    return text.replace("\n", " ").replace("\r", " ").lower()


def corpus_from_text(text, num_chars=10000, token="char", min_freq=None):
    """Turn raw text into the lecture's (corpus_indices, char_to_idx, idx_to_char, vocab_size)."""
    text = normalize(text)
    if num_chars is not None:
        text = text[:num_chars]
    tokens = tokenize(text, token)
    if not tokens:
        raise ValueError("the text is empty: give a corpus with at least a few characters")
    if min_freq is None:  # words seen once become <unk>; every character is kept
        min_freq = 2 if token == "word" else 0
    char_to_idx, idx_to_char = build_vocab(tokens, min_freq)
    unk = char_to_idx.get(UNK)
    corpus_indices = [char_to_idx.get(t, unk) for t in tokens]
    return corpus_indices, char_to_idx, idx_to_char, len(idx_to_char)


def encode_text(text, char_to_idx, token="char"):
    """Map held-out text onto a training vocabulary (unknown tokens -> <unk>, else skipped with a warning)."""
    tokens = tokenize(normalize(text), token)
    unk = char_to_idx.get(UNK)
    unknown = collections.Counter(t for t in tokens if t not in char_to_idx)
    if unknown and unk is None:
        shown = ", ".join(repr(t) for t, _ in unknown.most_common(5))
        warnings.warn(f"{sum(unknown.values())} of {len(tokens)} held-out {token}s are not in the training "
                      f"vocabulary and are skipped (most common: {shown}); a vocabulary with {UNK} keeps them",
                      stacklevel=2)
    return [char_to_idx.get(t, unk) for t in tokens if t in char_to_idx or unk is not None]


def read_text(path):
    """Read a UTF-8 text file, with clear errors for a missing, unreadable or empty file."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"text file not found: {path}")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as err:
        raise ValueError(f"{path} is not UTF-8 text ({err.reason} at byte {err.start}): "
                         "convert it, e.g. `iconv -t utf-8`") from None
    if not text.strip():
        raise ValueError(f"{path} is empty: give a text file with at least a few sentences")
    return text


def load_data_time_machine(num_chars=10000, data_dir=None, token="char", min_freq=None):
    """Load The Time Machine as the lecture's 4-tuple (vocab size 43 at character level)."""
    text = read_text(get_corpus_path(data_dir))
    return corpus_from_text(text, num_chars, token, min_freq)


def _check_fits(num_windows, what, batch_size, num_steps, corpus_len):
    """Raise a clear error when the corpus yields no minibatch at all."""
    if batch_size < 1 or num_steps < 1:
        raise ValueError(f"batch_size and num_steps must be >= 1 (got {batch_size}, {num_steps})")
    if num_windows < 1:
        raise ValueError(
            f"a corpus of {corpus_len} tokens is too short for {what} with batch_size={batch_size} "
            f"and num_steps={num_steps}: use more text or smaller batch_size/num_steps"
        )


def data_iter_random(corpus_indices, batch_size, num_steps, ctx=None):
    """Yield (X, Y) minibatches of random, non-overlapping windows; Y is X shifted by one."""
    num_examples = (len(corpus_indices) - 1) // num_steps
    epoch_size = num_examples // batch_size
    _check_fits(epoch_size, "random sampling", batch_size, num_steps, len(corpus_indices))
    starts = [i * num_steps for i in range(num_examples)]
    random.shuffle(starts)
    for i in range(epoch_size):
        batch = starts[i * batch_size:(i + 1) * batch_size]
        X = [corpus_indices[s:s + num_steps] for s in batch]
        Y = [corpus_indices[s + 1:s + num_steps + 1] for s in batch]
        yield nd.array(X, ctx=ctx), nd.array(Y, ctx=ctx)  # (batch_size, num_steps) each


def data_iter_consecutive(corpus_indices, batch_size, num_steps, ctx=None):
    """Yield (X, Y) minibatches from batch_size parallel streams; batch k+1 continues batch k."""
    batch_len = len(corpus_indices) // batch_size
    epoch_size = (batch_len - 1) // num_steps
    _check_fits(epoch_size, "sequential sampling", batch_size, num_steps, len(corpus_indices))
    streams = nd.array(corpus_indices[:batch_size * batch_len], ctx=ctx)
    streams = streams.reshape((batch_size, batch_len))  # (batch_size, batch_len)
    for i in range(epoch_size):
        t = i * num_steps
        yield streams[:, t:t + num_steps], streams[:, t + 1:t + num_steps + 1]


def to_onehot(X, size):
    """(batch, steps) indices -> list of `steps` one-hot arrays of shape (batch, size)."""
    return [nd.one_hot(x, size) for x in X.T]
