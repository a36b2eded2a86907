"""What a trained network learned: hidden units over text, the features they track, surprisal, top-k.

After Karpathy, Johnson & Fei-Fei (2015), "Visualizing and Understanding Recurrent Networks": run a
trained character model over text, keep the hidden state after every character, and look for single
units whose activation follows something simple about the text (the position in the line, the end of
a word, being inside brackets). Everything here returns NumPy arrays aligned with the text: row t
describes the model after it has read character t.
"""
import html

import numpy as np
from mxnet import nd

from .cells.batched import BatchedModel
from .data import encode
from .model import RNNModel, ScratchModel


def _indices(text, char_to_idx):
    """The text's token indices; a ValueError names characters the vocabulary lacks."""
    indices, missing = encode(text, char_to_idx)
    if missing:
        shown = ", ".join(repr(c) for c, _ in missing.most_common(5))
        raise ValueError(f"the text has characters the model's vocabulary lacks ({shown}): remove or replace "
                         "them")
    if len(indices) == 0:
        raise ValueError("give at least one character of text")
    return np.asarray(indices)


def run_over(model, text, *, char_to_idx, ctx):
    """(hidden states (T, hidden) of the top layer, logits (T, vocab)) after each of the T characters."""
    if not isinstance(model, (RNNModel, BatchedModel, ScratchModel)):
        raise TypeError("run_over needs a model from d2lrnn.build_model or load_checkpoint, "
                        f"not {type(model).__name__}")
    X = nd.array(_indices(text, char_to_idx).reshape(1, -1), ctx=ctx)  # (batch 1, steps T)
    state = model.begin_state(batch_size=1, ctx=ctx)
    if isinstance(model, RNNModel):
        inputs = nd.one_hot(X.T, model.vocab_size) if model.embedding is None else model.embedding(X.T)
        Y, _ = model.rnn(inputs, state)                  # (T, 1, hidden)
        H = Y.reshape((-1, Y.shape[-1]))                 # (T, hidden)
        logits = model.dense(H)                          # (T, vocab)
    elif isinstance(model, BatchedModel):
        logits, _, (_, H, _) = model.forward_layers(X, state, training=False)  # H: (T, hidden)
    else:  # the lecture's step function: one character at a time, keeping H after each
        rows, hiddens = [], []
        for t in range(X.shape[1]):
            logits_t, state = model(X[:, t:t + 1], state)  # (1, vocab)
            rows.append(logits_t)
            hiddens.append(state[0])                       # (1, hidden)
        logits, H = nd.concat(*rows, dim=0), nd.concat(*hiddens, dim=0)
    return H.asnumpy(), logits.asnumpy()


def text_features(text):
    """Simple per-character facts about the text, each a float array of len(text), by name."""
    chars = np.array(list(text))
    is_letter = np.array([c.isalpha() for c in text])
    nxt = np.append(chars[1:], "")                       # the character that follows each one
    column, depth, quoted = np.zeros(len(text)), np.zeros(len(text)), np.zeros(len(text))
    col = d = 0
    inside = False
    for t, c in enumerate(text):
        col = 0 if c == "\n" else col + 1
        d = max(d - 1, 0) if c in ")]" else d + (c in "([")
        inside = (not inside) if c == '"' else inside
        column[t], depth[t], quoted[t] = col, d, inside
    line_upper = np.zeros(len(text))                     # inside a line in capitals (a speaker's name)
    start = 0
    for line in text.split("\n"):
        letters = [c for c in line if c.isalpha()]
        line_upper[start:start + len(line)] = bool(letters) and all(c.isupper() for c in letters)
        start += len(line) + 1
    return {
        "position in line": column,
        "inside brackets": (depth > 0).astype(float),
        "inside quotes": quoted,
        "end of word": (is_letter & ~np.array([c.isalpha() for c in nxt])).astype(float),
        "vowel next": np.isin(np.char.lower(nxt), list("aeiou")).astype(float),
        "speaker's name": line_upper,
    }


def correlations(H, features):
    """Pearson correlation of every unit with every feature: (num_features, hidden), rows in dict order."""
    F = np.stack([np.asarray(f, dtype=float) for f in features.values()], axis=1)  # (T, features)
    if F.shape[0] != H.shape[0]:
        raise ValueError(f"{H.shape[0]} hidden states but features for {F.shape[0]} characters")

    def standard(A):
        A = A - A.mean(axis=0)
        sd = A.std(axis=0)
        return A / np.where(sd > 0, sd, np.inf)          # a constant column correlates with nothing
    return standard(F).T @ standard(H) / H.shape[0]      # (features, hidden)


def rank_units(H, features, top=3):
    """For each feature, the `top` units that track it best: {name: [(unit, r), ...]}, largest |r| first."""
    R = correlations(H, features)
    return {name: [(int(u), float(R[i, u])) for u in np.argsort(-np.abs(R[i]))[:top]]
            for i, name in enumerate(features)}


def highlight(text, values, *, vmin=None, vmax=None, cmap="coolwarm"):
    """HTML of `text`, each character's background coloured by its value (IPython.display.HTML shows it)."""
    from matplotlib import colormaps, colors

    values = np.asarray(values, dtype=float)
    if len(values) != len(text):
        raise ValueError(f"{len(values)} values for {len(text)} characters")
    low, high = np.nanmin(values) if vmin is None else vmin, np.nanmax(values) if vmax is None else vmax
    norm = colors.Normalize(low, high)
    rgba = colormaps[cmap](norm(values))
    spans = []
    for c, colour in zip(text, rgba):
        shown = "&nbsp;" if c == " " else "↵<br>" if c == "\n" else html.escape(c)
        spans.append(f'<span style="background-color:{colors.to_hex(colour)}">{shown}</span>')
    return '<div style="font-family:monospace;line-height:1.6">' + "".join(spans) + "</div>"


def log_softmax(logits):
    """Natural-log probabilities of every row of logits, computed stably."""
    z = logits - logits.max(axis=1, keepdims=True)
    return z - np.log(np.exp(z).sum(axis=1, keepdims=True))


def surprisal(logits, text, *, char_to_idx):
    """Bits the model needed for each character after the first: -log2 p(x_t | x_<t), (T - 1,)."""
    indices = _indices(text, char_to_idx)
    log_p = log_softmax(logits[:-1])                     # row t predicts character t + 1
    return -log_p[np.arange(len(indices) - 1), indices[1:]] / np.log(2)


def top_candidates(logits, idx_to_char, k=5):
    """At each position, the k likeliest next characters with their probabilities: [[(char, p), ...], ...]."""
    p = np.exp(log_softmax(logits))
    order = np.argsort(-p, axis=1)[:, :k]
    return [[(idx_to_char[j], float(p[t, j])) for j in row] for t, row in enumerate(order)]
