"""Generation: greedy continuation, the prefix read in one call, unknown characters, word-level output."""
import mxnet as mx
import numpy as np
import pytest
from mxnet import nd
from mxnet.gluon import rnn as grnn

import d2lrnn
from d2lrnn.generation import generate

from helpers import CPU, random_model


@pytest.fixture
def untrained(tiny):
    corpus, char_to_idx, idx_to_char, vocab = tiny
    mx.random.seed(0)
    return d2lrnn.get_params(vocab, 16, CPU), char_to_idx, idx_to_char, vocab


def _predict(untrained, prefix, n=10):
    params, char_to_idx, idx_to_char, vocab = untrained
    return d2lrnn.predict_rnn(prefix, n, rnn=d2lrnn.rnn, params=params, init_rnn_state=d2lrnn.init_rnn_state,
                              num_hiddens=16, vocab_size=vocab, ctx=CPU, idx_to_char=idx_to_char,
                              char_to_idx=char_to_idx)


def test_predict_returns_prefix_plus_num_chars(untrained):
    out = _predict(untrained, "time traveller", 10)
    assert out.startswith("time traveller") and len(out) == len("time traveller") + 10
    assert out == _predict(untrained, "time traveller", 10)  # greedy is deterministic


def test_greedy_picks_the_largest_logit(untrained):
    params, char_to_idx, idx_to_char, vocab = untrained
    params[4][char_to_idx["x"]] = 100.0  # the output bias b_q dominates: always predict "x"
    assert _predict(untrained, "a", 5) == "axxxxx"


@pytest.mark.parametrize("name", list(d2lrnn.MODELS))
def test_reading_the_prefix_at_once_equals_one_token_at_a_time(tiny, name):
    """generate reads the whole prefix in one call; the state and next scores must be those of the
    lecture's token-by-token warm-up."""
    corpus, char_to_idx, idx_to_char, vocab = tiny
    model = random_model(name, vocab_size=vocab, num_hiddens=12)
    tokens = [char_to_idx[c] for c in "the time"]
    logits, state = model(nd.array([tokens]), model.begin_state(batch_size=1, ctx=CPU))
    step_state = model.begin_state(batch_size=1, ctx=CPU)
    for t in tokens:
        step_logits, step_state = model(nd.array([[t]]), step_state)
    np.testing.assert_allclose(logits[-1].asnumpy(), step_logits[0].asnumpy(), rtol=1e-4, atol=1e-5)
    for a, b in zip(state, step_state):
        np.testing.assert_allclose(a.asnumpy(), b.asnumpy(), rtol=1e-4, atol=1e-5)


def test_unknown_prefix_characters_are_named(untrained):
    with pytest.raises(ValueError, match=r"'T'.*lower") as err:
        _predict(untrained, "The Time")
    assert "KeyError" not in repr(err.value)
    with pytest.raises(ValueError, match=r"'#', '@'"):
        _predict(untrained, "a@b#")
    with pytest.raises(ValueError, match="empty"):
        _predict(untrained, "")


def test_gluon_predict_and_unknown_characters(tiny):
    corpus, char_to_idx, idx_to_char, vocab = tiny
    model = d2lrnn.RNNModel(grnn.RNN(8), vocab)
    model.initialize()
    out = d2lrnn.predict_rnn_gluon("the", 4, model=model, vocab_size=vocab, ctx=CPU, idx_to_char=idx_to_char,
                                   char_to_idx=char_to_idx)
    assert out.startswith("the") and len(out) == 7
    assert out == generate(model, "the", 4, ctx=CPU, idx_to_char=idx_to_char, char_to_idx=char_to_idx)
    with pytest.raises(ValueError, match="'Q'"):
        generate(model, "Q", 4, ctx=CPU, idx_to_char=idx_to_char, char_to_idx=char_to_idx)


def test_word_level_generation_joins_words():
    text = "the time traveller said the time was late " * 3 + "once"
    corpus, w2i, i2w, vocab = d2lrnn.corpus_from_text(text, token="word")
    model = d2lrnn.build_model("rnn", vocab_size=vocab, num_hiddens=8, ctx=CPU)
    words = generate(model, "the unseen", 3, ctx=CPU, idx_to_char=i2w, char_to_idx=w2i).split(" ")
    assert words[:2] == ["the", "<unk>"] and len(words) == 5
