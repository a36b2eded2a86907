"""Generation: continue a prefix with a trained model (greedy, as in the lecture)."""
from . import _compat  # noqa: F401
from mxnet import nd

from .data import UNK, to_onehot


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
        hint = " (the corpus is lower-cased: try prefix.lower())" if any(t != t.lower() for t in missing) else ""
        raise ValueError(f"prefix {prefix!r} has {'words' if words else 'characters'} that are not in the "
                         f"vocabulary: {', '.join(map(repr, missing))}{hint}")
    return [char_to_idx[t] for t in tokens]


def decode(indices, idx_to_char):
    """Token indices -> text (characters joined as they are, words with spaces)."""
    sep = " " if is_word_vocab(idx_to_char) else ""
    return sep.join(idx_to_char[i] for i in indices)


def generate(prefix, num_chars, step, state, char_to_idx, idx_to_char, choose):
    """Warm up on the prefix with `step`, then extend it by num_chars tokens picked by `choose`."""
    output = encode_prefix(prefix, char_to_idx, idx_to_char)
    num_prefix = len(output)
    for t in range(num_prefix + num_chars - 1):
        logits, state = step(output[t], state)  # logits: (1, vocab)
        if t + 1 >= num_prefix:
            output.append(choose(logits))
    return decode(output, idx_to_char)


def greedy(logits):
    """The most likely next token."""
    return int(logits.argmax(axis=1).asscalar())


def predict_rnn(prefix, num_chars, rnn, params, init_rnn_state, num_hiddens, vocab_size, ctx,
                idx_to_char, char_to_idx):
    """Warm up on the prefix, then append num_chars greedy (argmax) predictions."""
    def step(idx, state):
        X = to_onehot(nd.array([[idx]], ctx=ctx), vocab_size)  # one step of (1, vocab)
        outputs, state = rnn(X, state, params)
        return outputs[0], state

    state = init_rnn_state(1, num_hiddens, ctx)
    return generate(prefix, num_chars, step, state, char_to_idx, idx_to_char, greedy)


def predict_rnn_gluon(prefix, num_chars, model, vocab_size, ctx, idx_to_char, char_to_idx):
    """predict_rnn for an RNNModel."""
    def step(idx, state):
        return model(nd.array([[idx]], ctx=ctx), state)  # logits (1, vocab), new state

    state = model.begin_state(batch_size=1, ctx=ctx)
    return generate(prefix, num_chars, step, state, char_to_idx, idx_to_char, greedy)
