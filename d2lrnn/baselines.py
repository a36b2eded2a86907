"""Count-based baselines the RNN must beat: uniform, unigram and bigram perplexity."""
import math

import numpy as np


def _as_indices(indices, vocab_size, what):
    """Token indices as an int64 array, checked to lie in [0, vocab_size)."""
    a = np.asarray(indices, dtype=np.int64).ravel()  # (len,)
    if a.size and (a.min() < 0 or a.max() >= vocab_size):
        raise ValueError(f"{what} holds indices outside [0, {vocab_size}): min {a.min()}, max {a.max()}")
    return a


def _unigram_probs(train, vocab_size):
    """Add-one P(w) = (count(w) + 1) / (N + V) for every token of the vocabulary."""
    counts = np.bincount(train, minlength=vocab_size)  # (vocab,)
    return (counts + 1) / (train.size + vocab_size)


def _bigram_probs(train, prev, nxt, vocab_size):
    """Add-one P(next | prev) = (count(prev, next) + 1) / (count(prev, *) + V) for each test pair."""
    keys, counts = np.unique(train[:-1] * vocab_size + train[1:], return_counts=True)  # sorted pairs
    test_keys = prev * vocab_size + nxt                      # (pairs,) one key per test pair
    pos = np.searchsorted(keys, test_keys)                   # (pairs,) where each key would sit
    found = pos < keys.size
    found[found] = keys[pos[found]] == test_keys[found]
    pair_counts = np.zeros(test_keys.size, dtype=np.int64)  # (pairs,)
    pair_counts[found] = counts[pos[found]]
    context_counts = np.bincount(train[:-1], minlength=vocab_size)[prev]  # (pairs,)
    return (pair_counts + 1) / (context_counts + vocab_size)


def ngram_perplexity(train_indices, test_indices, vocab_size, n):
    """Perplexity on test_indices[1:] of an add-one n-gram model counted on train_indices (n = 0, 1, 2)."""
    if n not in (0, 1, 2):
        raise ValueError(f"n must be 0 (uniform), 1 (unigram) or 2 (bigram), got {n!r}")
    if n == 0:
        return float(vocab_size)  # every token has probability 1 / V
    train = _as_indices(train_indices, vocab_size, "train_indices")
    test = _as_indices(test_indices, vocab_size, "test_indices")
    if test.size < 2:
        raise ValueError("test_indices needs at least 2 tokens (the first one is only context)")
    if n == 1:
        probs = _unigram_probs(train, vocab_size)[test[1:]]   # (len - 1,)
    else:
        probs = _bigram_probs(train, test[:-1], test[1:], vocab_size)
    return math.exp(-np.log(probs).mean())


def bits_per_char(perplexity):
    """Bits per token (per character on a character vocabulary): log2 of the perplexity."""
    if not perplexity > 0:
        raise ValueError(f"perplexity must be positive, got {perplexity!r}")
    return math.log2(perplexity)
