"""n-gram baselines: hand-computed perplexities on tiny sequences."""
import math

import pytest

from d2lrnn.baselines import bits_per_char, ngram_perplexity

TRAIN = [0, 1, 0, 1, 2]  # counts 0:2 1:2 2:1; pairs (0,1)x2 (1,0) (1,2)
TEST = [0, 1, 2]         # scored tokens: 1 (after 0), 2 (after 1)


def test_uniform_is_exactly_the_vocabulary_size():
    assert ngram_perplexity(TRAIN, TEST, 43, 0) == 43.0


def test_unigram_by_hand():
    # add-one: P(w) = (count + 1) / (5 + 3): P(1) = 3/8, P(2) = 2/8
    expected = (3 / 8 * 2 / 8) ** -0.5
    assert ngram_perplexity(TRAIN, TEST, 3, 1) == pytest.approx(expected, rel=1e-12)


def test_bigram_by_hand():
    # add-one: P(1|0) = (2 + 1) / (2 + 3), P(2|1) = (1 + 1) / (2 + 3)
    expected = (3 / 5 * 2 / 5) ** -0.5
    assert ngram_perplexity(TRAIN, TEST, 3, 2) == pytest.approx(expected, rel=1e-12)


def test_unseen_context_and_unseen_token_get_smoothed_probabilities():
    # token 3 never occurs in training: P(3|1) = (0 + 1) / (2 + 4); context 3 never occurs either
    # (nor does 2 as a context: it is the last training token), so P(3|3) = P(0|3) = 1 / (0 + 4)
    ppl = ngram_perplexity(TRAIN, [1, 3, 3, 0], 4, 2)
    expected = ((1 / 6) * (1 / 4) * (1 / 4)) ** (-1 / 3)
    assert ppl == pytest.approx(expected, rel=1e-12)
    assert ngram_perplexity(TRAIN, [2, 3, 0], 4, 2) == pytest.approx(4.0, rel=1e-12)
    assert math.isfinite(ngram_perplexity(TRAIN, [3, 3], 4, 1))


def test_bigram_beats_unigram_beats_uniform_on_structured_text():
    text = [0, 1, 2] * 30
    ppls = [ngram_perplexity(text, [0, 1, 2] * 5, 3, n) for n in (0, 1, 2)]
    assert ppls[2] < ppls[1] <= ppls[0]
    assert ppls[2] < 1.1  # next token fully determined by the previous one


def test_bits_per_char():
    assert bits_per_char(2.0) == 1.0
    assert bits_per_char(1.0) == 0.0
    assert bits_per_char(43) == pytest.approx(math.log2(43))
    with pytest.raises(ValueError, match="positive"):
        bits_per_char(0)


@pytest.mark.parametrize("n", [-1, 3, 1.5, "2"])
def test_invalid_n_is_a_value_error(n):
    with pytest.raises(ValueError, match="n must be"):
        ngram_perplexity(TRAIN, TEST, 3, n)


def test_bad_inputs_are_value_errors():
    with pytest.raises(ValueError, match="outside"):
        ngram_perplexity(TRAIN, [0, 3], 3, 1)
    with pytest.raises(ValueError, match="outside"):
        ngram_perplexity([0, -1], TEST, 3, 2)
    with pytest.raises(ValueError, match="at least 2"):
        ngram_perplexity(TRAIN, [0], 3, 2)
