"""Generation: greedy continuation, unknown characters, word-level output."""
import mxnet as mx
import pytest

from mxnet.gluon import rnn as grnn

import d2lrnn


@pytest.fixture
def untrained(tiny):
    corpus, char_to_idx, idx_to_char, vocab = tiny
    mx.random.seed(0)
    return d2lrnn.get_params(vocab, 16, mx.cpu()), char_to_idx, idx_to_char, vocab


def _predict(untrained, prefix, n=10):
    params, char_to_idx, idx_to_char, vocab = untrained
    return d2lrnn.predict_rnn(prefix, n, d2lrnn.rnn, params, d2lrnn.init_rnn_state, 16, vocab, mx.cpu(),
                              idx_to_char, char_to_idx)


def test_predict_returns_prefix_plus_num_chars(untrained):
    out = _predict(untrained, "time traveller", 10)
    assert out.startswith("time traveller") and len(out) == len("time traveller") + 10
    assert out == _predict(untrained, "time traveller", 10)  # greedy is deterministic


def test_greedy_picks_the_largest_logit(untrained):
    params, char_to_idx, idx_to_char, vocab = untrained
    b_q = params[4]
    b_q[char_to_idx["x"]] = 100.0  # the output bias dominates: always predict "x"
    assert _predict(untrained, "a", 5) == "axxxxx"


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
    out = d2lrnn.predict_rnn_gluon("the", 4, model, vocab, mx.cpu(), idx_to_char, char_to_idx)
    assert out.startswith("the") and len(out) == 7
    with pytest.raises(ValueError, match="'Q'"):
        d2lrnn.predict_rnn_gluon("Q", 4, model, vocab, mx.cpu(), idx_to_char, char_to_idx)


def test_word_level_generation_joins_words():
    corpus, w2i, i2w, vocab = d2lrnn.corpus_from_text("the time traveller said the time was late " * 3 + "once",
                                                      token="word")
    params = d2lrnn.get_params(vocab, 8, mx.cpu())
    out = d2lrnn.predict_rnn("the unseen", 3, d2lrnn.rnn, params, d2lrnn.init_rnn_state, 8, vocab, mx.cpu(),
                             i2w, w2i)
    words = out.split(" ")
    assert words[:2] == ["the", "<unk>"] and len(words) == 5
