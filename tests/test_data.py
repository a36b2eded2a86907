"""Data: corpus lookup and download, vocabulary, iterators, one-hot."""
import os
import random
import subprocess
import sys
import threading

import mxnet as mx
import numpy as np
import pytest

import d2lrnn
from d2lrnn import data
from d2lrnn.utils import file_digest, quoted


def test_time_machine_matches_the_lecture(corpus_dir):
    corpus, char_to_idx, idx_to_char, vocab_size = d2lrnn.load_data_time_machine(data_dir=corpus_dir)
    assert vocab_size == len(idx_to_char) == len(char_to_idx) == 43
    assert len(corpus) == 10000
    text = "".join(idx_to_char[i] for i in corpus)
    assert text.startswith("the time machine, by h. g. wells [1898]")
    assert "\n" not in text and text == text.lower()
    assert idx_to_char == sorted(idx_to_char)


@pytest.mark.slow  # three fresh interpreters
def test_vocabulary_does_not_depend_on_hash_seed(corpus_dir):
    code = "import d2lrnn; print(d2lrnn.load_data_time_machine()[2])"
    outs = {subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                           env={**os.environ, "PYTHONHASHSEED": seed, "D2LRNN_DATA_DIR": str(corpus_dir)}
                           ).stdout for seed in ("1", "2", "3")}
    assert len(outs) == 1


def test_corpus_from_text_lowercases_and_joins_lines():
    corpus, char_to_idx, idx_to_char, v = d2lrnn.corpus_from_text("Ab\nba\r", num_chars=4)
    assert idx_to_char == [" ", "a", "b"] and v == 3
    assert corpus.tolist() == [1, 2, 0, 2]


def test_word_level_maps_rare_words_to_unk():
    corpus, w2i, i2w, v = d2lrnn.corpus_from_text("the cat the dog the cat", token="word")
    assert i2w == ["<unk>", "cat", "the"]
    assert [i2w[i] for i in corpus] == ["the", "cat", "the", "<unk>", "the", "cat"]


def test_the_lecture_api_still_reads_like_a_list(corpus_dir):
    """Lecture notebooks print corpus_indices[:20], take len, index and slice it."""
    corpus, char_to_idx, idx_to_char, _ = d2lrnn.load_data_time_machine()
    assert isinstance(corpus, np.ndarray) and corpus.dtype == np.int32 and len(corpus) == 10000
    assert "".join(idx_to_char[i] for i in corpus[:20]) == "the time machine, by"
    assert idx_to_char[corpus[4]] == "t" and list(corpus[2:4]) == [char_to_idx["e"], char_to_idx[" "]]


def test_vectorised_vocabulary_equals_the_definition():
    """sorted(set(text)) and a dict lookup per character, on text with many scripts."""
    rng = np.random.default_rng(0)
    alphabet = list("abc XYZ\n\t.,;é中文ждё🙂\u00a0") + [chr(0x10FFFF)]
    text = "".join(rng.choice(alphabet, size=5000))
    corpus, char_to_idx, idx_to_char, v = d2lrnn.corpus_from_text(text, None, preprocess_style="raw")
    assert idx_to_char == sorted(set(text)) and v == len(set(text))
    assert corpus.tolist() == [char_to_idx[c] for c in text]
    indices, missing = data.encode("aé?🙂?", char_to_idx)
    assert indices.tolist() == [char_to_idx[c] for c in "aé🙂"] and missing == {"?": 2}


def test_preprocessing_choices():
    text = "But, Brutus!\nIs an honourable MAN -- 42."
    assert data.preprocess(text, "lecture") == "but, brutus! is an honourable man -- 42."
    assert data.preprocess(text, "raw") == text
    assert data.preprocess(text, "letters") == "but brutus is an honourable man"
    with pytest.raises(ValueError, match="lecture, raw, letters"):
        data.preprocess(text, "stemmed")


def test_tiny_shakespeare_raw_and_letters(shakespeare):
    corpus, _, idx_to_char, v = d2lrnn.load_data_tiny_shakespeare(data_dir=shakespeare.parent)
    assert len(corpus) == 1115394 and v == 65 and "\n" in idx_to_char and "A" in idx_to_char
    corpus, _, idx_to_char, v = d2lrnn.load_data_tiny_shakespeare(data_dir=shakespeare.parent,
                                                                  preprocess_style="letters")
    assert v == 27 and "".join(idx_to_char) == " abcdefghijklmnopqrstuvwxyz"


@pytest.mark.parametrize("num_chars", [0, -1, -5, 2.5])
def test_bad_num_chars_are_errors_not_silent_cuts(num_chars):
    with pytest.raises(ValueError, match="num_chars"):
        d2lrnn.corpus_from_text("abc " * 10, num_chars)


@pytest.mark.parametrize("it", [d2lrnn.data_iter_random, d2lrnn.data_iter_consecutive])
@pytest.mark.parametrize("batch_size, num_steps, name", [(0, 5, "batch_size"), (-2, 5, "batch_size"),
                                                         (2, 0, "num_steps"), (2.5, 5, "batch_size")])
def test_bad_iterator_sizes_are_value_errors(it, batch_size, num_steps, name):
    with pytest.raises(ValueError, match=name):
        next(it(list(range(100)), batch_size, num_steps))


def test_empty_text_and_bad_token_are_errors():
    with pytest.raises(ValueError, match="empty"):
        d2lrnn.corpus_from_text("   ", token="word")
    with pytest.raises(ValueError, match="'char' or 'word'"):
        d2lrnn.corpus_from_text("abc", token="byte")


@pytest.mark.parametrize("content, message", [(None, "not found"), ("", "empty"), (b"\xff\xfe", "not UTF-8"),
                                              ("\ufeff \n", "empty"), ("folder", "is a folder")])
def test_read_text_errors_quote_the_path(tmp_path, content, message):
    path = tmp_path / "a\nname.txt"  # a newline in the name: the message stays one line
    if content == "folder":
        path.mkdir()
    elif isinstance(content, bytes):
        path.write_bytes(content)
    elif content is not None:
        path.write_text(content, encoding="utf-8")
    with pytest.raises(data.DataError, match=message) as err:
        data.read_text(path)
    assert quoted(path) in str(err.value) and "\n" not in str(err.value)


def test_read_text_drops_a_byte_order_mark_and_reads_a_pipe(tmp_path):
    path = tmp_path / "bom.txt"
    path.write_bytes("\ufeffThe Time Machine\n".encode("utf-8"))
    assert data.read_text(path) == "The Time Machine\n"
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    writer = threading.Thread(target=lambda: fifo.write_text("from a pipe, \u00e9", encoding="utf-8"))
    writer.start()
    assert data.read_text(fifo) == "from a pipe, \u00e9"
    writer.join()


def test_random_iterator_shuffles_with_the_generator_it_is_given():
    corpus = list(range(200))

    def starts(**kw):
        return [int(x) for X, _ in d2lrnn.data_iter_random(corpus, 3, 5, **kw) for x in X[:, 0].asnumpy()]

    state = random.getstate()
    first = starts(rng=random.Random(4))
    assert random.getstate() == state
    assert starts(rng=random.Random(4)) == first != starts(rng=random.Random(5))
    random.seed(4)  # without one, Python's global generator shuffles, as in the lecture
    assert starts() == first and random.getstate() != state


def test_random_iterator_windows_are_shifted_and_disjoint():
    corpus = list(range(50))
    starts = []
    batches = list(d2lrnn.data_iter_random(corpus, 2, 6))
    assert len(batches) == (49 // 6) // 2
    for X, Y in batches:
        assert X.shape == Y.shape == (2, 6)
        np.testing.assert_array_equal(Y.asnumpy(), X.asnumpy() + 1)  # corpus[i] == i
        starts += [int(x) for x in X[:, 0].asnumpy()]
    assert all(s % 6 == 0 for s in starts) and len(set(starts)) == len(starts)


def test_consecutive_iterator_continues_each_row():
    corpus = list(range(100))
    batches = list(d2lrnn.data_iter_consecutive(corpus, 3, 4))
    assert len(batches) == (100 // 3 - 1) // 4
    for (X1, Y1), (X2, _) in zip(batches, batches[1:]):
        np.testing.assert_array_equal(Y1.asnumpy(), X1.asnumpy() + 1)
        np.testing.assert_array_equal(X2[:, 0].asnumpy(), X1[:, -1].asnumpy() + 1)


@pytest.mark.parametrize("it", [d2lrnn.data_iter_random, d2lrnn.data_iter_consecutive])
def test_num_steps_longer_than_corpus_is_a_clear_error(it):
    with pytest.raises(ValueError, match="too short .* num_steps=64"):
        next(it(list(range(40)), 2, 64))


def test_to_onehot_shapes_and_values():
    X = mx.nd.arange(10).reshape((2, 5))
    inputs = d2lrnn.to_onehot(X, 43)
    assert len(inputs) == 5 and all(x.shape == (2, 43) for x in inputs)
    assert inputs[2][1, 7] == 1 and inputs[2].sum() == 2


# --- finding and downloading the corpus -------------------------------------------------------

def test_lookup_order_argument_then_environment(corpus_dir, tmp_path, monkeypatch):
    monkeypatch.setenv("D2LRNN_DATA_DIR", str(corpus_dir))
    assert data.get_corpus_path() == corpus_dir / "timemachine.txt"
    bad = tmp_path / "arg"
    bad.mkdir()
    (bad / "timemachine.txt").write_text("not the book")
    with pytest.raises(data.DataError, match="sha1"):  # the argument comes first, and is checked
        data.get_corpus_path(bad)


def test_a_corrupt_local_copy_is_refused_and_left_alone(no_local_copies, tmp_path):
    (tmp_path / "timemachine.txt").write_bytes(b"\x00" * 100)
    with pytest.raises(data.DataError, match=f"expected {data.DATA_SHA1}") as err:
        d2lrnn.load_data_time_machine(data_dir=tmp_path)
    assert quoted(tmp_path / "timemachine.txt") in str(err.value) and "Delete it" in str(err.value)
    assert (tmp_path / "timemachine.txt").read_bytes() == b"\x00" * 100


def test_download_verifies_and_caches(corpus_dir, no_local_copies, http_server):
    root, base = http_server
    (root / "timemachine.txt").write_bytes((corpus_dir / "timemachine.txt").read_bytes())
    path = data.get_corpus_path(url=f"{base}/timemachine.txt")
    assert path.parent == data.cache_dir() and file_digest(path, "sha1") == data.DATA_SHA1
    (root / "timemachine.txt").unlink()  # the second lookup must come from the cache
    assert data.get_corpus_path(url=f"{base}/timemachine.txt") == path
    assert d2lrnn.load_data_time_machine()[3] == 43


def test_download_with_wrong_checksum_is_refused_and_not_kept(tmp_path, no_local_copies, http_server):
    root, base = http_server
    (root / "timemachine.txt").write_text("this is not the book you are looking for\n" * 50)
    with pytest.raises(data.DataError, match="checksum") as err:
        data.get_corpus_path(data_dir=tmp_path / "data", url=f"{base}/timemachine.txt")
    assert f"{base}/timemachine.txt" in str(err.value) and data.DATA_SHA1 in str(err.value)
    assert not (tmp_path / "data").exists() and list(data.cache_dir().rglob("*")) == []


@pytest.mark.parametrize("where", ["missing file", "nothing listening"])
def test_offline_error_says_what_to_do(no_local_copies, http_server, where):
    root, base = http_server
    url = f"{base}/missing.txt"
    if where == "nothing listening":
        import socket

        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            url = f"http://127.0.0.1:{s.getsockname()[1]}/tm.txt"  # closed again: nothing listens there
    with pytest.raises(data.DataError) as err:
        data.get_corpus_path(url=url)
    msg = str(err.value)
    assert url in msg and data.DATA_SHA1 in msg and "D2LRNN_DATA_DIR" in msg and "\n" not in msg
    assert list(data.cache_dir().rglob("*")) == []


def test_held_out_text_maps_onto_the_training_vocabulary():
    _, c2i, i2c, _ = d2lrnn.corpus_from_text("abc abc")
    with pytest.warns(UserWarning, match=r"2 of 7 held-out chars .* skipped .*'x'"):
        assert data.encode_text("Ab xx c", c2i).tolist() == [c2i[c] for c in "ab  c"]
    _, w2i, i2w, _ = d2lrnn.corpus_from_text("the cat the dog the cat", token="word")
    assert [i2w[i] for i in data.encode_text("The bird", w2i, "word")] == ["the", "<unk>"]


def test_tiny_shakespeare_downloads_with_its_checksum(no_local_copies, http_server, shakespeare):
    root, base = http_server
    (root / "input.txt").write_bytes(shakespeare.read_bytes())
    path = data.get_corpus_path(url=f"{base}/input.txt", corpus="tinyshakespeare")
    assert path == data.cache_dir() / "tinyshakespeare.txt"
    (root / "input.txt").write_text("First Citizen: a forgery")
    path.unlink()
    with pytest.raises(data.DataError, match="checksum"):
        data.get_corpus_path(url=f"{base}/input.txt", corpus="tinyshakespeare")
    with pytest.raises(data.DataError, match="unknown corpus 'tinystories'"):
        data.get_corpus_path(corpus="tinystories")


def test_load_split_takes_the_vocabulary_from_the_training_part(tmp_path):
    path = tmp_path / "book.txt"
    path.write_text("abcabcabcab\nXYZa", encoding="utf-8")
    source = data.TextSource(text=str(path), preprocess="raw", val_chars=5)
    split = data.load_split(source)
    assert split.idx_to_char == list("abc") and len(split.corpus) == len("abcabcabcab")
    assert split.val.tolist() == [0] and split.skipped == {"\n": 1, "X": 1, "Y": 1, "Z": 1}
    assert source.part("train") + source.part("val") == "abcabcabcab\nXYZa"
    assert data.load_split(data.TextSource(text=str(path))).val is None  # nothing held out


def test_default_prefixes_come_from_the_text_unless_given(tmp_path):
    path = tmp_path / "book.txt"
    path.write_text("Call me Ishmael. Some years ago", encoding="utf-8")
    own = data.TextSource(text=str(path))                      # the lecture's preprocessing: lower case
    split = data.load_split(own)
    assert data.default_prefixes(own, split) == ("call",)   # the training text's first word
    assert data.default_prefixes(own, split, ["Some Years"]) == ("some years",)  # preprocessed like the text
    raw = data.TextSource(text=str(path), preprocess="raw")
    assert data.default_prefixes(raw, data.load_split(raw)) == ("Call",)
    assert data.default_prefixes(data.TextSource(), split) == ("traveller", "time traveller")  # the lecture's


def test_the_words_for_unknown_tokens_say_what_encode_does():
    with_unk, without = {d2lrnn.data.UNK: 0, "the": 1}, {"the": 0}
    indices, missing = d2lrnn.data.encode("the cat", with_unk, "word")
    assert list(indices) == [1, 0] and missing == {"cat": 1}
    assert d2lrnn.data.unknown_fate(with_unk) == "scored as <unk>"
    indices, missing = d2lrnn.data.encode("the cat", without, "word")
    assert list(indices) == [0] and missing == {"cat": 1}
    assert d2lrnn.data.unknown_fate(without) == "left out"
