"""Compression driven by a model: lossless round trips on any text, size equal to the model's
cross-entropy, and clean failures for damaged, truncated or foreign files."""
import numpy as np
import pytest

pytest.importorskip("constriction", reason="needs constriction (pip install -e '.[compress]', Python >= 3.10)")

import mxnet as mx  # noqa: E402

import d2lrnn  # noqa: E402
from d2lrnn import compress as cz  # noqa: E402
from d2lrnn.cli import main  # noqa: E402
from conftest import TINY_TEXT  # noqa: E402

CPU = mx.cpu()


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A small character LSTM trained briefly on raw text, saved as a checkpoint."""
    d2lrnn.set_seed(0)
    corpus, char_to_idx, idx_to_char, vocab = d2lrnn.corpus_from_text(TINY_TEXT, None, preprocess_style="raw")
    model = d2lrnn.build_model("lstm", vocab_size=vocab, num_hiddens=32, ctx=CPU)
    d2lrnn.train(model, corpus, ctx=CPU, num_epochs=8, num_steps=10, batch_size=4, lr=0.01, optimizer="adam",
                 clipping_theta=1.0)
    folder = tmp_path_factory.mktemp("model") / "checkpoint"
    d2lrnn.save_checkpoint(folder, model, idx_to_char)
    return folder, model, char_to_idx, idx_to_char


def _round_trip(trained, text, lanes=4):
    _, model, char_to_idx, idx_to_char = trained
    data = cz.compress(text, model, char_to_idx=char_to_idx, ctx=CPU, lanes=lanes)
    assert cz.decompress(data, model, idx_to_char=idx_to_char, ctx=CPU) == text
    return data


@pytest.mark.parametrize("text", ["", "T", "The", "Time Traveller\r\n\ttabs and CRLF\r\n", "Ünïcødé 中文 🙂 ж\x00",
                                  TINY_TEXT[:500]], ids=["empty", "one", "three", "controls", "unicode", "book"])
@pytest.mark.parametrize("lanes", [1, 3, 16])
def test_lossless_on_any_text(trained, text, lanes):
    _round_trip(trained, text, lanes)


def test_size_is_the_models_cross_entropy(trained):
    _, model, char_to_idx, _ = trained
    text = TINY_TEXT[:300] + "Ωμέγα" + TINY_TEXT[300:600]  # mostly known characters, a few escapes
    data = _round_trip(trained, text)
    header, start = cz.read_header(data)
    bits = cz.cross_entropy_bits(model, text, char_to_idx=char_to_idx, ctx=CPU, lanes=4)
    assert 0.99 * bits <= 8 * (len(data) - start) <= 1.01 * bits + 64  # the coder's flush: two words at most
    assert header["chars"] == len(text) and header["lanes"] == 4


def test_a_better_model_compresses_better(trained):
    _, model, char_to_idx, idx_to_char = trained
    untrained = d2lrnn.build_model("lstm", vocab_size=len(idx_to_char), num_hiddens=32, ctx=CPU)
    text = TINY_TEXT[:400]

    def payload(m):
        data = cz.compress(text, m, char_to_idx=char_to_idx, ctx=CPU)
        return len(data) - cz.read_header(data)[1]

    assert payload(model) < 0.85 * payload(untrained)


def test_damaged_truncated_or_foreign_files_fail_cleanly(trained):
    _, model, char_to_idx, idx_to_char = trained
    data = cz.compress(TINY_TEXT[:400], model, char_to_idx=char_to_idx, ctx=CPU)
    header, start = cz.read_header(data)
    flipped = bytearray(data)
    flipped[start + 5] ^= 0xFF
    cases = {"truncated": data[:-3], "cut to whole words": data[:start + 8], "flipped": bytes(flipped),
             "foreign": b"PK\x03\x04 a zip file", "header only": data[:len(cz.MAGIC) + 2]}
    for name, bad in cases.items():
        with pytest.raises(cz.CompressError):
            cz.decompress(bad, model, idx_to_char=idx_to_char, ctx=CPU)
    other = d2lrnn.build_model("lstm", vocab_size=len(idx_to_char), num_hiddens=32, ctx=CPU)
    with pytest.raises(cz.CompressError, match="another model"):
        cz.decompress(data, other, idx_to_char=idx_to_char, ctx=CPU)


def test_command_line_round_trip_and_errors(trained, tmp_path, capsys):
    folder = trained[0]
    src, packed, back = tmp_path / "in.txt", tmp_path / "in.d2lz", tmp_path / "back.txt"
    src.write_bytes("Time Traveller, 時間\r\n".encode("utf-8") * 20)
    assert main(["compress", "--checkpoint", str(folder), str(src), str(packed)]) == 0
    assert main(["decompress", "--checkpoint", str(folder), str(packed), str(back)]) == 0
    assert back.read_bytes() == src.read_bytes()
    assert "bits per character" in capsys.readouterr().err
    binary = tmp_path / "bin"
    binary.write_bytes(b"\xff\xfe\x00")
    for argv, message in [(["compress", "--checkpoint", str(folder), str(binary), str(tmp_path / "x")], "not UTF-8"),
                          (["compress", "--checkpoint", str(folder), str(src), str(src)], "also the input"),
                          (["decompress", "--checkpoint", str(folder), str(src), str(tmp_path / "y")],
                           "not a d2lrnn compressed file"),
                          (["decompress", "--checkpoint", str(folder), str(tmp_path / "missing"), str(tmp_path / "z")],
                           "No such file")]:
        assert main(argv) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and err[0].startswith("error:") and message in err[0], err
    assert not (tmp_path / "x").exists() and not (tmp_path / "y").exists()


def test_random_bytes_and_garbage_payloads_fail_cleanly(trained):
    """Random bytes, with or without our magic and header in front, are an error, never a text."""
    _, model, char_to_idx, idx_to_char = trained
    data = cz.compress(TINY_TEXT[:300], model, char_to_idx=char_to_idx, ctx=CPU)
    _, start = cz.read_header(data)
    rng = np.random.default_rng(0)
    payload = len(data) - start
    cases = {"random bytes": rng.bytes(400), "magic then random": cz.MAGIC + rng.bytes(400),
             "header then random words": data[:start] + rng.bytes(payload),
             "header then zeros": data[:start] + bytes(payload), "header only": data[:start],
             "empty": b""}
    for name, bad in cases.items():
        with pytest.raises(cz.CompressError):
            cz.decompress(bad, model, idx_to_char=idx_to_char, ctx=CPU)


def test_damaged_header_fails_cleanly(trained):
    """A flipped bit anywhere in the header, or a header missing fields, is a CompressError."""
    import json
    import struct

    _, model, char_to_idx, idx_to_char = trained
    data = cz.compress(TINY_TEXT[:200], model, char_to_idx=char_to_idx, ctx=CPU)
    _, start = cz.read_header(data)
    for i in range(len(cz.MAGIC), start):
        for bit in (0x01, 0x20):  # 0x20 turns "lanes" into "lanEs"
            bad = bytearray(data)
            bad[i] ^= bit
            with pytest.raises(cz.CompressError):
                cz.decompress(bytes(bad), model, idx_to_char=idx_to_char, ctx=CPU)
    good = json.loads(data[len(cz.MAGIC) + 4:start])
    for header in ([], 1, {"version": 1}, dict(good, lanes=0), dict(good, chars=-5), dict(good, lanes="4"),
                   dict(good, model_sha256=None)):
        raw = json.dumps(header).encode()
        bad = cz.MAGIC + struct.pack("<I", len(raw)) + raw + data[start:]
        with pytest.raises(cz.CompressError):
            cz.decompress(bad, model, idx_to_char=idx_to_char, ctx=CPU)


def test_an_escape_decoded_into_a_surrogate_fails_cleanly(trained):
    """Damage can decode an escape into a lone surrogate (not UTF-8): still a CompressError."""
    import constriction

    _, model, char_to_idx, idx_to_char = trained
    data = cz.compress("Ω", model, char_to_idx=char_to_idx, ctx=CPU, lanes=1)  # one escape
    _, start = cz.read_header(data)
    stepper = cz._Stepper(model, 1, CPU, cz._start_token(char_to_idx))
    encoder = constriction.stream.queue.RangeEncoder()
    encoder.encode(np.array([len(char_to_idx)], dtype=np.int32), constriction.stream.model.Categorical(perfect=False),
                   stepper.probabilities())
    encoder.encode(0xD800, constriction.stream.model.Uniform(cz.CODE_POINTS))
    forged = data[:start] + encoder.get_compressed().astype("<u4").tobytes()
    with pytest.raises(cz.CompressError):
        cz.decompress(forged, model, idx_to_char=idx_to_char, ctx=CPU)


def test_command_line_refuses_another_checkpoint(trained, tmp_path, capsys):
    """decompress with a checkpoint other than the compressing one: one line, exit 2, no output file."""
    folder, _, _, idx_to_char = trained
    other = tmp_path / "other"
    d2lrnn.save_checkpoint(other, d2lrnn.build_model("lstm", vocab_size=len(idx_to_char), num_hiddens=32, ctx=CPU),
                           idx_to_char)
    src, packed, back = tmp_path / "in.txt", tmp_path / "in.d2lz", tmp_path / "back.txt"
    src.write_text(TINY_TEXT[:200], encoding="utf-8")
    assert main(["compress", "--checkpoint", str(folder), str(src), str(packed)]) == 0
    capsys.readouterr()
    assert main(["decompress", "--checkpoint", str(other), str(packed), str(back)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "another model" in err[0], err
    assert not back.exists()


@pytest.mark.parametrize("nudge", [1e-1, 1e-2, 1e-3, 1e-4, 1e-5, 1e-6])
def test_slightly_different_probabilities_fail_cleanly(trained, nudge):
    """A decoder whose probabilities differ a little (another machine's floating point, simulated by
    nudging one weight and forging the header's model digest) raises CompressError, never garbage."""
    import json
    import struct

    _, model, char_to_idx, idx_to_char = trained
    text = TINY_TEXT[:600]
    data = cz.compress(text, model, char_to_idx=char_to_idx, ctx=CPU)
    header, start = cz.read_header(data)
    saved = [a.copy() for a in model.param_arrays()]
    try:
        model.param_arrays()[-1][:] += nudge  # the output bias
        raw = json.dumps(dict(header, model_sha256=cz.model_digest(model))).encode()
        forged = cz.MAGIC + struct.pack("<I", len(raw)) + raw + data[start:]
        try:
            assert cz.decompress(forged, model, idx_to_char=idx_to_char, ctx=CPU) == text  # the same after all
        except cz.CompressError:
            pass
    finally:
        for a, s in zip(model.param_arrays(), saved):
            s.copyto(a)
    assert cz.model_digest(model) == header["model_sha256"]
