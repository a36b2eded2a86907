"""Compression driven by a model: lossless round trips on any text and every model kind, the NumPy
step equal to the model's own forward pass, size equal to the model's cross-entropy, and clean,
quick failures for damaged, truncated, forged or foreign files."""
import json
import math
import os
import struct
import subprocess
import sys
import time

import numpy as np
import pytest

pytest.importorskip("constriction", reason="needs constriction (pip install -e '.[compress]', Python >= "
                                           "3.10)")

import mxnet as mx  # noqa: E402
from mxnet import nd  # noqa: E402

import d2lrnn  # noqa: E402
from d2lrnn import compress as cz  # noqa: E402
from d2lrnn.cli import main  # noqa: E402
from d2lrnn.model import ScratchModel  # noqa: E402
from d2lrnn.registry import MODELS  # noqa: E402

from conftest import ROOT, TINY_TEXT  # noqa: E402

CPU = mx.cpu()
ODD_TEXT = "Ünïcødé 中文 🙂 ж\x00 𝄞 \U0010ffff tabs\tand CRLF\r\n"  # escapes, astral code points among them


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A small character LSTM trained briefly on raw text, saved as a checkpoint."""
    d2lrnn.set_seed(0)
    corpus, char_to_idx, idx_to_char, vocab = d2lrnn.corpus_from_text(TINY_TEXT, None, preprocess_style="raw")
    model = d2lrnn.build_model("lstm", vocab_size=vocab, num_hiddens=32, ctx=CPU)
    options = d2lrnn.TrainOptions(num_epochs=8, num_steps=10, batch_size=4, lr=0.01, optimizer="adam",
                                  clipping_theta=1.0)
    d2lrnn.train(model, corpus, options, ctx=CPU, log=lambda *args, **kwargs: None)
    folder = tmp_path_factory.mktemp("model") / "checkpoint"
    d2lrnn.save_checkpoint(folder, model, idx_to_char)
    return folder, model, char_to_idx, idx_to_char


def _round_trip(model, char_to_idx, idx_to_char, text, lanes=4):
    data = cz.compress(text, model, char_to_idx=char_to_idx, ctx=CPU, lanes=lanes)
    assert cz.decompress(data, model, idx_to_char=idx_to_char, ctx=CPU) == text
    return data


def _forge(data, **changes):
    """The file with its header's fields changed (a field set to ... is removed)."""
    header, start = cz.read_header(data)
    header = {k: v for k, v in dict(header, **changes).items() if v is not ...}
    raw = json.dumps(header).encode()
    return cz.MAGIC + struct.pack("<I", len(raw)) + raw + data[start:]


def _small_model(name, vocab, **options):
    """A registry model with weights large enough for peaked, varied predictions (biases too)."""
    mx.random.seed(1)
    model = d2lrnn.build_model(name, vocab_size=vocab, num_hiddens=16, ctx=CPU, **options)
    for p in model.param_arrays():
        p[:] = nd.random.normal(scale=0.5, shape=p.shape)
    return model


KINDS = [(name, {}) for name in MODELS] + [
    (f"{cell}-bptt", {"num_layers": 2, "embed_size": 5}) for cell in ("rnn", "gru", "lstm")] + [
    (f"{cell}-bptt", {"num_layers": 2, "dropout": 0.3}) for cell in ("rnn", "gru", "lstm")] + [
    (f"gluon-{cell}", {"num_layers": 2, "embed_size": 5}) for cell in ("rnn", "gru", "lstm")] + [
    (f"gluon-{cell}", {"num_layers": 2, "dropout": 0.3}) for cell in ("rnn", "gru", "lstm")]


def _kind_id(kind):
    name, options = kind
    return name + "".join(f"-{k.split('_')[-1]}{v}" for k, v in options.items())


# -- the NumPy step ---------------------------------------------------------------------------------

@pytest.mark.parametrize("kind", KINDS, ids=_kind_id)
def test_numpy_step_equals_the_models_forward_pass(kind):
    """Step by step from the zero state, the NumPy net's logits are MXNet's (gate orders, biases, layers,
    embedding; dropout off as in any forward pass outside training)."""
    name, options = kind
    vocab, batch, steps = 23, 3, 12
    model = _small_model(name, vocab, **options)
    X = np.random.default_rng(0).integers(0, vocab, (batch, steps))
    logits, _ = model(nd.array(X), model.begin_state(batch_size=batch, ctx=CPU))
    expected = logits.asnumpy().reshape(steps, batch, vocab)  # time-major
    net = cz.numpy_net(model)
    assert net is not None and net.arithmetic == "numpy-float32"
    net.start(batch)
    got = np.stack([net.step(X[:, t]) for t in range(steps)])
    assert got.dtype == np.float32 and got.shape == expected.shape
    np.testing.assert_allclose(got, expected, atol=1e-4 * max(1.0, np.abs(expected).max()), rtol=0)


@pytest.mark.parametrize("kind", [("rnn", {}), ("rnn-bptt", {"num_layers": 2, "embed_size": 5}),
                                  ("gluon-lstm", {}), ("gluon-gru", {"num_layers": 2, "dropout": 0.3}),
                                  ("gru", {}), ("lstm-bptt", {"num_layers": 2, "dropout": 0.3})],
                         ids=_kind_id)
def test_every_model_kind_round_trips(kind):
    name, options = kind
    idx_to_char = list("\n abcdefghijklmnopqrstuvwxyz.,")
    char_to_idx = {c: i for i, c in enumerate(idx_to_char)}
    model = _small_model(name, len(idx_to_char), **options)
    text = "the quick brown fox, jumping over the lazy dog.\n" * 6 + ODD_TEXT
    for lanes in (1, 5, None):
        data = _round_trip(model, char_to_idx, idx_to_char, text, lanes)
        assert cz.read_header(data)[0]["arithmetic"] == "numpy-float32"


def test_a_students_own_functions_run_through_mxnet():
    """A model whose insides d2lrnn does not know is run by MXNet, and the header says so."""
    from d2lrnn.cells import get_params, init_rnn_state, rnn

    def my_rnn(inputs, state, params):
        return rnn(inputs, state, params)

    idx_to_char = list("\n abcdefgh")
    char_to_idx = {c: i for i, c in enumerate(idx_to_char)}
    model = ScratchModel(my_rnn, get_params, init_rnn_state, vocab_size=len(idx_to_char), num_hiddens=8,
                         ctx=CPU)
    assert cz.numpy_net(model) is None
    data = _round_trip(model, char_to_idx, idx_to_char, "a bad cafe\nfed a hag éh", lanes=3)
    assert cz.read_header(data)[0]["arithmetic"] == "mxnet"
    with pytest.raises(cz.CompressError, match="coded with d2lrnn's NumPy"):
        cz.decompress(_forge(data, arithmetic="numpy-float32"), model, idx_to_char=idx_to_char, ctx=CPU)


# -- whole numbers, lanes, sizes --------------------------------------------------------------------

def test_quantised_probabilities_are_whole_numbers_constriction_reads_exactly():
    scale = np.linspace(0, 60, 50)[:, None]
    logits = np.random.default_rng(0).normal(size=(50, 30)).astype(np.float32) * scale
    logits[0] = 0          # uniform
    logits[1, 3] = 1000    # all but certain
    w = cz.quantise(logits)
    assert w.dtype == np.float32 and w.shape == (50, 31)
    assert (w == np.floor(w)).all() and (w >= 0).all()
    assert (w.astype(np.int64).sum(axis=1) == 2 ** 24 - 31).all()  # constriction adds 1 to each: 2**24 in all
    assert (w[:, -1] >= cz.ESCAPE_WEIGHT - 1).all() and w[0, -1] == cz.ESCAPE_WEIGHT - 1
    assert ((w[:, :-1] + 1) / 2 ** 24 <= cz.MAX_PROBABILITY).all()
    assert cz.coded_bits(w, np.full(50, 30))[0] == pytest.approx(12)  # an escape: exactly 12 bits
    assert cz.coded_bits(w[1:2], np.array([3]))[0] == pytest.approx(cz.min_bits_per_char(30))


def test_default_lanes_grow_with_the_text_and_stay_bounded():
    assert [cz.default_lanes(n) for n in (0, 1, 4000)] == [1, 1, 1]
    lanes = [cz.default_lanes(n) for n in range(0, 10 ** 7, 9973)]
    assert lanes == sorted(lanes) and max(lanes) == cz.DEFAULT_MAX_LANES <= cz.MAX_LANES
    assert cz.default_lanes(111_539) == 111_539 // cz.LANE_CHARS


@pytest.mark.parametrize("text", ["", "T", "The", "Time Traveller\r\n\ttabs and "
                                                  "CRLF\r\n", ODD_TEXT, TINY_TEXT[:500]],
                         ids=["empty", "one", "three", "controls", "unicode", "book"])
@pytest.mark.parametrize("lanes", [1, 3, 16, None])
def test_lossless_on_any_text(trained, text, lanes):
    _, model, char_to_idx, idx_to_char = trained
    data = _round_trip(model, char_to_idx, idx_to_char, text, lanes)
    header, start = cz.read_header(data)
    assert header["chars"] == len(text) and 1 <= header["lanes"] <= max(1, len(text))
    if not text:
        assert len(data) == start  # an empty text is its header only


def test_lone_surrogates_round_trip(trained):
    """Python strings may hold lone surrogates (e.g. via surrogateescape): they are escapes like any other."""
    _, model, char_to_idx, idx_to_char = trained
    _round_trip(model, char_to_idx, idx_to_char, "The \udcff Time \ud800", lanes=2)


def test_size_is_the_models_cross_entropy(trained):
    _, model, char_to_idx, idx_to_char = trained
    text = TINY_TEXT[:300] + "Ωμέγα" + TINY_TEXT[300:600]  # mostly known characters, a few escapes
    data = _round_trip(model, char_to_idx, idx_to_char, text)
    header, start = cz.read_header(data)
    payload = 8 * (len(data) - start)
    exact = cz.cross_entropy_bits(model, text, char_to_idx=char_to_idx, ctx=CPU, lanes=4, quantised=True)
    ideal = cz.cross_entropy_bits(model, text, char_to_idx=char_to_idx, ctx=CPU, lanes=4)
    assert exact <= payload <= exact + cz.FLUSH_BITS  # the whole numbers' information, plus the coder's flush
    assert 0.99 * ideal <= payload <= 1.01 * ideal + 64
    assert header["chars"] == len(text) and header["lanes"] == 4


def _held_out(chars):
    """The start of Tiny Shakespeare's held-out text (skip without the course data)."""
    folder = os.environ.get("D2LRNN_DATA_DIR")
    if not folder or not os.path.isfile(os.path.join(folder, "tinyshakespeare.txt")):
        pytest.skip("set D2LRNN_DATA_DIR to the folder with tinyshakespeare.txt (../shared/data)")
    from d2lrnn.config import TrainConfig
    config = TrainConfig(corpus="tinyshakespeare", preprocess="raw", val_fraction=0.1)
    return config.source().part("val")[:chars]


def test_shipped_model_codes_at_its_cross_entropy():
    """8 KB of held-out Shakespeare with the shipped LSTM and the default lanes: the payload is within 1 % of
    the model's cross-entropy read as one stream (one lane, the most context it can have)."""
    text = _held_out(8192)
    ckpt = d2lrnn.load_checkpoint(d2lrnn.pretrained("shakespeare-lstm"), CPU)
    data = _round_trip(ckpt.model, ckpt.char_to_idx, ckpt.idx_to_char, text, lanes=None)
    header, start = cz.read_header(data)
    assert header["lanes"] == cz.default_lanes(len(text)) > 1
    one_stream = cz.cross_entropy_bits(ckpt.model, text, char_to_idx=ckpt.char_to_idx, ctx=CPU, lanes=1)
    assert 8 * (len(data) - start) <= 1.01 * one_stream
    assert one_stream / len(text) < 2.6  # the model is the shipped one: about 2.3 bits per character


def test_a_better_model_compresses_better(trained):
    _, model, char_to_idx, idx_to_char = trained
    untrained = d2lrnn.build_model("lstm", vocab_size=len(idx_to_char), num_hiddens=32, ctx=CPU)
    text = TINY_TEXT[:400]

    def payload(m):
        data = cz.compress(text, m, char_to_idx=char_to_idx, ctx=CPU)
        return len(data) - cz.read_header(data)[1]

    assert payload(model) < 0.85 * payload(untrained)


@pytest.mark.slow  # a subprocess
def test_decoding_does_not_depend_on_blas_threads(trained, tmp_path):
    """Compressed here (numpy's BLAS on its usual threads), decompressed by another process told to use one
    thread: the same probabilities, because the coder pins BLAS to one thread either way."""
    folder, model, char_to_idx, idx_to_char = trained
    text = TINY_TEXT * 3
    packed, back = tmp_path / "in.d2lz", tmp_path / "back.txt"
    packed.write_bytes(cz.compress(text, model, char_to_idx=char_to_idx, ctx=CPU, lanes=8))
    env = dict(os.environ, OPENBLAS_NUM_THREADS="1", OMP_NUM_THREADS="1", PYTHONPATH=str(ROOT))
    done = subprocess.run([sys.executable, "-m", "d2lrnn", "decompress", "--checkpoint", str(folder),
                           str(packed), str(back)], env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert back.read_text(encoding="utf-8") == text
    blas = cz._numpy_openblas()
    if blas is not None:  # and the thread setting is back as it was
        before = blas[1]()
        cz.compress("abc", model, char_to_idx=char_to_idx, ctx=CPU)
        assert blas[1]() == before


# -- damaged, forged and foreign files --------------------------------------------------------------

def _fails_quickly(data, model, idx_to_char, match=None, case=""):
    """decompress raises one line of CompressError within two seconds; the message."""
    start = time.perf_counter()
    with pytest.raises(cz.CompressError, match=match) as err:
        cz.decompress(data, model, idx_to_char=idx_to_char, ctx=CPU)
    assert time.perf_counter() - start < 2.0, case
    message = str(err.value)
    assert (message and "\n" not in message and len(message) < 400
            and "Traceback" not in message), (case, message)
    return message


def test_crafted_headers_fail_quickly_with_one_line(trained):
    """Headers are untrusted input: every field is bounded before anything acts on it."""
    _, model, char_to_idx, idx_to_char = trained
    data = cz.compress(TINY_TEXT[:400], model, char_to_idx=char_to_idx, ctx=CPU, lanes=4)
    header, start = cz.read_header(data)
    n = header["chars"]
    forged = {
        "a billion lanes": _forge(data, lanes=1_000_000_000),
        "more lanes than characters": _forge(data, lanes=n + 1),
        "lanes over MAX_LANES": _forge(data, chars=10 ** 6, lanes=cz.MAX_LANES + 1),
        "huge chars": _forge(data, chars=10 ** 12),
        "chars at the hard cap": _forge(data, chars=cz.MAX_CHARS),
        "more chars than the payload holds": _forge(data, chars=10 ** 7),
        "more chars than coded": _forge(data, chars=n * 40),
        "fewer chars than coded": _forge(data, chars=n - 7),
        "negative chars": _forge(data, chars=-5),
        "zero lanes": _forge(data, lanes=0),
        "lanes as text": _forge(data, lanes="4"),
        "chars as float": _forge(data, chars=float(n)),
        "lanes as bool": _forge(data, lanes=True),
        "chars as bool": _forge(data, chars=True),
        "version as bool": _forge(data, version=True),
        "vocab as null": _forge(data, vocab=None),
        "huge vocab": _forge(data, vocab=2 ** 40),
        "wrong vocab": _forge(data, vocab=header["vocab"] + 1),
        "digest not hex": _forge(data, model_sha256="z" * 64),
        "digest as list": _forge(data, text_sha256=[1, 2]),
        "probe too long": _forge(data, probe="0" * 17),
        "other probe": _forge(data, probe="0" * 16),
        "unknown arithmetic": _forge(data, arithmetic="float16"),
        "missing field": _forge(data, probe=...),
        "extra field": _forge(data, comment="hello"),
        "old format": _forge(data, version=1),
        "a list": cz.MAGIC + struct.pack("<I", 2) + b"[]" + data[start:],
        "a number": cz.MAGIC + struct.pack("<I", 1) + b"1" + data[start:],
        "nested brackets": cz.MAGIC + struct.pack("<I", 100_000) + b"[" * 100_000,
        "nested brackets within the limit": cz.MAGIC + struct.pack("<I", 4000) + b"[" * 4000 + data[start:],
        "header length past the end": data[:start - 3],
        "header length 4 GB": cz.MAGIC + b"\xff\xff\xff\xff" + data[len(cz.MAGIC) + 4:],
        "not UTF-8": cz.MAGIC + struct.pack("<I", 4) + b"\xff\xfe{}" + data[start:],
        "NaN": _forge(data, chars=float("nan")),
        "truncated payload": data[:-3],
        "payload cut to whole words": data[:start + 8],
        "no payload": data[:start],
        "payload for an empty text": _forge(data, chars=0, lanes=1),
    }
    for case, bad in forged.items():
        _fails_quickly(bad, model, idx_to_char, case=case)
    assert "format 1" in _fails_quickly(forged["old format"], model, idx_to_char)
    other = d2lrnn.build_model("lstm", vocab_size=len(idx_to_char), num_hiddens=32, ctx=CPU)
    _fails_quickly(data, other, idx_to_char, match="another model")
    _fails_quickly(_forge(data, model_sha256=cz.model_digest(other)), other, idx_to_char, match="differently")


def test_read_header_refuses_before_the_model_loads():
    """The command line reads the header before it loads a model: its checks need no model."""
    for bad in (b"", b"D2LRNN-Z", b"PK\x03\x04 a zip file", cz.MAGIC + b"\x05\x00\x00\x00{}"):
        with pytest.raises(cz.CompressError):
            cz.read_header(bad)


def test_damaged_truncated_or_foreign_files_fail_cleanly(trained):
    _, model, char_to_idx, idx_to_char = trained
    data = cz.compress(TINY_TEXT[:400], model, char_to_idx=char_to_idx, ctx=CPU)
    header, start = cz.read_header(data)
    flipped = bytearray(data)
    flipped[start + 5] ^= 0xFF
    cases = {"truncated": data[:-3], "cut to whole words": data[:start + 8], "flipped": bytes(flipped),
             "foreign": b"PK\x03\x04 a zip file", "header only": data[:len(cz.MAGIC) + 2]}
    for case, bad in cases.items():
        _fails_quickly(bad, model, idx_to_char, case=case)


def test_random_bytes_and_garbage_payloads_fail_cleanly(trained):
    """Random bytes, with or without our magic and header in front, are an error, never a text."""
    _, model, char_to_idx, idx_to_char = trained
    data = cz.compress(TINY_TEXT[:300], model, char_to_idx=char_to_idx, ctx=CPU)
    _, start = cz.read_header(data)
    rng = np.random.default_rng(0)
    payload = len(data) - start
    cases = {"random bytes": rng.bytes(400), "magic then random": cz.MAGIC + rng.bytes(400),
             "header then random words": data[:start] + rng.bytes(payload),
             "header then more random words": data[:start] + rng.bytes(4 * payload),
             "header then zeros": data[:start] + bytes(payload), "header only": data[:start], "empty": b""}
    for case, bad in cases.items():
        _fails_quickly(bad, model, idx_to_char, case=case)


def test_damaged_header_fails_cleanly(trained):
    """A flipped bit anywhere in the header is a CompressError."""
    _, model, char_to_idx, idx_to_char = trained
    data = cz.compress(TINY_TEXT[:200], model, char_to_idx=char_to_idx, ctx=CPU)
    _, start = cz.read_header(data)
    for i in range(len(cz.MAGIC), start):
        for bit in (0x01, 0x20):  # 0x20 turns "lanes" into "lanEs"
            bad = bytearray(data)
            bad[i] ^= bit
            with pytest.raises(cz.CompressError):
                cz.decompress(bytes(bad), model, idx_to_char=idx_to_char, ctx=CPU)


def test_an_escape_decoded_into_a_surrogate_fails_cleanly(trained):
    """Damage can decode an escape into a lone surrogate: the checksum still says it is not the text."""
    import constriction

    _, model, char_to_idx, idx_to_char = trained
    data = cz.compress("Ω", model, char_to_idx=char_to_idx, ctx=CPU, lanes=1)  # one escape
    _, start = cz.read_header(data)
    net = cz.numpy_net(model)
    net.start(1)
    weights = cz.quantise(net.step(np.array([cz._start_token(char_to_idx)])))
    encoder = constriction.stream.queue.RangeEncoder()
    encoder.encode(np.array([len(char_to_idx)], dtype=np.int32),
                   constriction.stream.model.Categorical(perfect=False), weights)
    encoder.encode(0xD800, constriction.stream.model.Uniform(cz.CODE_POINTS))
    forged = data[:start] + encoder.get_compressed().astype("<u4").tobytes()
    _fails_quickly(forged, model, idx_to_char, match="checksum")


@pytest.mark.parametrize("nudge", [1e-1, 1e-3, 1e-6])
def test_slightly_different_probabilities_fail_cleanly(trained, nudge):
    """A decoder whose probabilities differ a little (another machine's floating point, simulated by nudging
    one weight and forging the header's model digest) raises CompressError, never garbage."""
    _, model, char_to_idx, idx_to_char = trained
    text = TINY_TEXT[:600]
    data = cz.compress(text, model, char_to_idx=char_to_idx, ctx=CPU)
    header, _ = cz.read_header(data)
    saved = [a.copy() for a in model.param_arrays()]
    try:
        model.param_arrays()[-1][:] += nudge  # the output bias
        forged = _forge(data, model_sha256=cz.model_digest(model))
        try:
            assert cz.decompress(forged, model, idx_to_char=idx_to_char, ctx=CPU) == text  # same after all
        except cz.CompressError:
            pass
    finally:
        for a, s in zip(model.param_arrays(), saved):
            s.copyto(a)
    assert cz.model_digest(model) == header["model_sha256"]


def test_compress_refuses_bad_lanes(trained):
    _, model, char_to_idx, _ = trained
    for lanes in (0, -1, cz.MAX_LANES + 1, True, 2.0, "4"):
        with pytest.raises(cz.CompressError, match="lanes"):
            cz.compress("abc", model, char_to_idx=char_to_idx, ctx=CPU, lanes=lanes)


# -- the command line -------------------------------------------------------------------------------

def test_command_line_round_trip_and_errors(trained, tmp_path, capsys):
    folder = trained[0]
    src, packed, back = tmp_path / "in.txt", tmp_path / "in.d2lz", tmp_path / "back.txt"
    src.write_bytes("Time Traveller, 時間\r\n".encode("utf-8") * 20)
    assert main(["compress", "--checkpoint", str(folder), str(src), str(packed)]) == 0
    assert main(["decompress", "--checkpoint", str(folder), str(packed), str(back)]) == 0
    assert back.read_bytes() == src.read_bytes()
    assert "bits per character" in capsys.readouterr().err
    empty, empty_packed, empty_back = (tmp_path / "empty.txt", tmp_path / "empty.d2lz",
                                       tmp_path / "empty-back.txt")
    empty.write_bytes(b"")
    assert main(["compress", "--checkpoint", str(folder), str(empty), str(empty_packed)]) == 0
    assert main(["decompress", "--checkpoint", str(folder), str(empty_packed), str(empty_back)]) == 0
    assert empty_back.read_bytes() == b""
    capsys.readouterr()
    binary = tmp_path / "bin"
    binary.write_bytes(b"\xff\xfe\x00")
    for argv, message in [(["compress", "--checkpoint", str(folder), str(binary), str(tmp_path / "x")],
                           "not UTF-8"),
                          (["compress", "--checkpoint", str(folder), str(src), str(src)], "also the input"),
                          (["decompress", "--checkpoint", str(folder), str(src), str(tmp_path / "y")],
                           "not a d2lrnn compressed file"),
                          (["decompress", "--checkpoint", str(folder), str(tmp_path / "missing"),
                            str(tmp_path / "z")], "No such file")]:
        assert main(argv) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and err[0].startswith("error:") and message in err[0], err
    assert not (tmp_path / "x").exists() and not (tmp_path / "y").exists()


def test_command_line_refuses_a_forged_header_in_one_line(trained, tmp_path, capsys):
    folder, model, char_to_idx, _ = trained
    data = cz.compress(TINY_TEXT[:200], model, char_to_idx=char_to_idx, ctx=CPU)
    bad = tmp_path / "bad.d2lz"
    bad.write_bytes(_forge(data, lanes=1_000_000_000))
    assert main(["decompress", "--checkpoint", str(folder), str(bad), str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "lanes" in err[0], err
    assert not (tmp_path / "out").exists()


def test_command_line_refuses_another_checkpoint(trained, tmp_path, capsys):
    """decompress with a checkpoint other than the compressing one: one line, exit 2, no output file."""
    folder, _, _, idx_to_char = trained
    other = tmp_path / "other"
    model = d2lrnn.build_model("lstm", vocab_size=len(idx_to_char), num_hiddens=32, ctx=CPU)
    d2lrnn.save_checkpoint(other, model, idx_to_char)
    src, packed, back = tmp_path / "in.txt", tmp_path / "in.d2lz", tmp_path / "back.txt"
    src.write_text(TINY_TEXT[:200], encoding="utf-8")
    assert main(["compress", "--checkpoint", str(folder), str(src), str(packed)]) == 0
    capsys.readouterr()
    assert main(["decompress", "--checkpoint", str(other), str(packed), str(back)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "another model" in err[0], err
    assert not back.exists()


def test_min_bits_per_char_bounds_what_a_payload_holds():
    """The static bound read_header applies: a character never costs less than min_bits_per_char."""
    assert (cz.min_bits_per_char(65) == pytest.approx(-math.log2(cz.MAX_PROBABILITY))
            == pytest.approx(0.005646, 1e-3))
    huge = 2 ** 23
    max_probability = 1 - (huge + cz.ESCAPE_WEIGHT - 1) / 2 ** 24
    assert cz.min_bits_per_char(huge) == pytest.approx(-math.log2(max_probability))
    certain = np.zeros((1, 65), np.float32)
    certain[0, 7] = 100
    w = cz.quantise(certain)
    assert ((w[0, 7] + 1) / 2 ** 24 == cz.MAX_PROBABILITY
            and w[0, -1] > cz.ESCAPE_WEIGHT)  # the excess: to the escape
    assert w.astype(np.int64).sum() == 2 ** 24 - 66
