"""Generation: continue a prefix with a trained model, greedily (the lecture) or by sampling."""
import numpy as np
from mxnet import nd

from .data import UNK
from .model import ScratchModel


def is_word_vocab(idx_to_char):
    """True when the vocabulary holds words rather than single characters."""
    return any(len(t) > 1 for t in idx_to_char if t != UNK)


def encode_prefix(prefix, char_to_idx, idx_to_char):
    """Prefix text -> token indices; unknown characters raise a ValueError that names them."""
    words = is_word_vocab(idx_to_char)
    tokens = prefix.lower().split() if words else list(prefix)
    if not tokens:
        raise ValueError("the prefix is empty: give at least one character to start from")
    if words and UNK in char_to_idx:
        return [char_to_idx.get(t, char_to_idx[UNK]) for t in tokens]
    missing = sorted({t for t in tokens if t not in char_to_idx})
    if missing:
        upper = any(t != t.lower() for t in missing)
        hint = " (the corpus is lower-cased: try prefix.lower())" if upper else ""
        raise ValueError(f"prefix {prefix!r} has {'words' if words else 'characters'} that are not in the "
                         f"vocabulary: {', '.join(map(repr, missing))}{hint}")
    return [char_to_idx[t] for t in tokens]


def decode(indices, idx_to_char):
    """Token indices -> text (characters joined as they are, words with spaces)."""
    sep = " " if is_word_vocab(idx_to_char) else ""
    return sep.join(idx_to_char[i] for i in indices)


def check_sampling_args(temperature, top_k):
    """Reject a temperature <= 0 or a top_k < 1 with a message that says what is allowed."""
    if temperature is not None and not 0 < temperature < np.inf:
        raise ValueError("temperature must be > 0 and finite (1 samples the model as is, smaller is "
                         f"greedier, larger is more random), got {temperature!r}")
    if top_k is not None and (int(top_k) != top_k or top_k < 1):
        raise ValueError(f"top_k must be a whole number >= 1 (1 is greedy) or None for no limit, "
                         f"got {top_k!r}")


def sample_index(logits, temperature, top_k, rng):
    """Draw one token index from softmax(logits / temperature) over the top_k largest logits."""
    logits = np.asarray(logits, dtype=np.float64).ravel()  # (vocab,)
    order = np.argsort(-logits, kind="stable")             # best first; ties keep the lower index
    if top_k is not None:
        order = order[:int(top_k)]                         # (k,)
    with np.errstate(over="ignore"):                        # a tiny temperature: all but the best go to -inf
        z = (logits[order] - logits[order[0]]) / temperature  # <= 0
    cdf = np.cumsum(np.exp(z))                             # unnormalised, (k,)
    pick = np.searchsorted(cdf, rng.random() * cdf[-1], side="right")
    return int(order[min(pick, order.size - 1)])


def generate(model, prefix, num_chars, *, ctx, idx_to_char, char_to_idx, temperature=None, top_k=None,
             seed=None):
    """Read the prefix, then append num_chars tokens: greedy unless temperature or top_k is given."""
    check_sampling_args(temperature, top_k)
    if int(num_chars) != num_chars or num_chars < 0:
        raise ValueError(f"num_chars must be a whole number >= 0 (how many tokens to add), got {num_chars!r}")
    tokens = encode_prefix(prefix, char_to_idx, idx_to_char)
    greedy = temperature is None and top_k is None
    rng = np.random.default_rng(seed)  # a local generator: the global random state is left alone
    state = model.begin_state(batch_size=1, ctx=ctx)
    X = nd.array([tokens], ctx=ctx)  # (1, len(prefix)): the whole prefix in one call
    for _ in range(num_chars):
        logits, state = model(X, state)  # the one generation step; logits: (steps, vocab)
        last = logits[-1]                # (vocab,) scores for the next token
        token = int(last.argmax(axis=0).asscalar()) if greedy else sample_index(
            last.asnumpy(), 1.0 if temperature is None else temperature, top_k, rng)
        tokens.append(token)
        X = nd.array([[token]], ctx=ctx)  # (1, 1)
    return decode(tokens, idx_to_char)


def predict_rnn(prefix, num_chars, rnn, params, init_rnn_state, num_hiddens, vocab_size, ctx,
                idx_to_char, char_to_idx):
    """Warm up on the prefix, then append num_chars greedy (argmax) predictions."""
    model = ScratchModel(rnn, None, init_rnn_state, vocab_size=vocab_size, num_hiddens=num_hiddens, ctx=ctx,
                         params=params)
    return generate(model, prefix, num_chars, ctx=ctx, idx_to_char=idx_to_char, char_to_idx=char_to_idx)


def predict_rnn_gluon(prefix, num_chars, model, vocab_size, ctx, idx_to_char, char_to_idx):
    """predict_rnn for an RNNModel."""
    return generate(model, prefix, num_chars, ctx=ctx, idx_to_char=idx_to_char, char_to_idx=char_to_idx)


def sample_rnn(prefix, num_chars, rnn, params, init_rnn_state, num_hiddens, vocab_size, ctx,
               idx_to_char, char_to_idx, temperature=1.0, top_k=None, seed=None):
    """predict_rnn that samples with a temperature and top-k instead of taking the argmax."""
    model = ScratchModel(rnn, None, init_rnn_state, vocab_size=vocab_size, num_hiddens=num_hiddens, ctx=ctx,
                         params=params)
    return generate(model, prefix, num_chars, ctx=ctx, idx_to_char=idx_to_char, char_to_idx=char_to_idx,
                    temperature=temperature, top_k=top_k, seed=seed)
