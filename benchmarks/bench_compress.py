"""Bits per character as file size: the shipped Tiny Shakespeare LSTM as a compressor vs gzip, bz2, xz.

Takes the held-out Tiny Shakespeare text exactly as `python -m d2lrnn train --corpus tinyshakespeare
--preprocess raw --val-fraction 0.1` holds it out (the last 10 %, about 111,500 characters), which the
shipped model `d2lrnn.checkpoint.pretrained("shakespeare-lstm")` never trained on, and compresses it with

  * the model: d2lrnn.compress (range coding driven by the LSTM's next-character probabilities),
  * gzip -9, bz2 level 9 and xz/lzma preset 9 from Python's standard library.

Every method is decoded again and compared with the input. Prints a markdown table of the size in
bytes, bits per character (8 * bytes / characters, headers included), encoding and decoding speed
(characters per second), then the model's cross-entropy in bits per character (what an ideal coder
driven by the same model and lanes would spend) and the uniform-guess bound log2(vocabulary size).

    python benchmarks/bench_compress.py               # the whole held-out text
    python benchmarks/bench_compress.py --chars 5000  # its first 5,000 characters

The corpus is found like d2lrnn finds it (set D2LRNN_DATA_DIR to the folder with tinyshakespeare.txt).
Speeds depend on the machine and on what else runs on it. Exit status 1 if a round trip fails.
"""
import argparse
import bz2
import gzip
import lzma
import math
import os
import sys
import time

import mxnet as mx

import d2lrnn
from d2lrnn import compress as cz
from d2lrnn.cli import TrainConfig
from d2lrnn.data import get_corpus_path, preprocess, read_text, split_text


def held_out_text():
    """The held-out text of `train --corpus tinyshakespeare --preprocess raw --val-fraction 0.1`."""
    cfg = TrainConfig(corpus="tinyshakespeare", preprocess="raw", val_fraction=0.1)
    style, num_chars = cfg.data_settings()  # as cli.load_data does
    text = preprocess(read_text(get_corpus_path(corpus=cfg.corpus)), style)
    _, val_text = split_text(text, num_chars=num_chars, val_chars=cfg.val_chars, val_fraction=cfg.val_fraction)
    return val_text


def timed(fn, repeats):
    """(result, fastest of `repeats` wall-clock seconds)."""
    best, result = math.inf, None
    for _ in range(repeats):
        start = time.perf_counter()
        result = fn()
        best = min(best, time.perf_counter() - start)
    return result, best


def stdlib_methods():
    """name -> (compress bytes, decompress bytes) for the standard library's compressors."""
    return {
        "gzip -9": (lambda b: gzip.compress(b, compresslevel=9, mtime=0), gzip.decompress),
        "bz2 -9": (lambda b: bz2.compress(b, compresslevel=9), bz2.decompress),
        "xz -9 (lzma)": (lambda b: lzma.compress(b, preset=9), lzma.decompress),
    }


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--chars", type=int, default=None, help="compress only the first N held-out characters")
    parser.add_argument("--lanes", type=int, default=16, help="pieces the model codes side by side (as the CLI)")
    parser.add_argument("--repeats", type=int, default=3, help="timing runs of the stdlib methods (fastest kept)")
    args = parser.parse_args(argv)
    text = held_out_text()
    if args.chars is not None:
        if args.chars < 1:
            parser.error(f"--chars must be at least 1, got {args.chars}")
        text = text[:args.chars]
    raw, n = text.encode("utf-8"), len(text)
    ctx = mx.cpu()
    ckpt = d2lrnn.load_checkpoint(d2lrnn.pretrained("shakespeare-lstm"), ctx)
    outside = sum(c not in ckpt.char_to_idx for c in text)
    print(f"held-out Tiny Shakespeare: {n:,} characters ({len(raw):,} bytes UTF-8), {outside} outside the model's "
          f"{len(ckpt.idx_to_char)}-character vocabulary; {os.cpu_count()} CPUs, load average "
          f"{os.getloadavg()[0]:.2f} (speeds depend on what else runs)")

    rows, ok = [], True
    data, enc = timed(lambda: cz.compress(text, ckpt.model, char_to_idx=ckpt.char_to_idx, ctx=ctx,
                                          lanes=args.lanes), 1)
    back, dec = timed(lambda: cz.decompress(data, ckpt.model, idx_to_char=ckpt.idx_to_char, ctx=ctx), 1)
    header = cz.read_header(data)[1]
    rows.append((f"LSTM + range coder ({header} header bytes)", len(data), enc, dec, back == text))
    for name, (pack, unpack) in stdlib_methods().items():
        packed, enc = timed(lambda: pack(raw), args.repeats)
        unpacked, dec = timed(lambda: unpack(packed), args.repeats)
        rows.append((name, len(packed), enc, dec, unpacked == raw))
    bits, seconds = timed(lambda: cz.cross_entropy_bits(ckpt.model, text, char_to_idx=ckpt.char_to_idx, ctx=ctx,
                                                        lanes=args.lanes), 1)

    print(f"\n{n:,} held-out characters of Tiny Shakespeare "
          f"(`--corpus tinyshakespeare --preprocess raw --val-fraction 0.1`)\n")
    print("| method | bytes | bits per character | encode (chars/s) | decode (chars/s) | round trip |")
    print("|---|---:|---:|---:|---:|---|")
    print(f"| UTF-8, uncompressed | {len(raw):,} | {8 * len(raw) / n:.3f} | | | |")
    for name, size, enc, dec, same in rows:
        ok &= same
        print(f"| {name} | {size:,} | {8 * size / n:.3f} | {n / enc:,.0f} | {n / dec:,.0f} | "
              f"{'ok' if same else 'FAILED'} |")
    print(f"\nmodel cross-entropy: {bits / n:.4f} bits per character = {bits / 8:,.0f} bytes "
          f"(perplexity {2 ** (bits / n):.3f}; computed in {seconds:.1f} s); the coded payload is "
          f"{8 * (rows[0][1] - header) / bits - 1:+.3%} from it")
    print(f"uniform guess over the {len(ckpt.idx_to_char)} characters: log2({len(ckpt.idx_to_char)}) = "
          f"{math.log2(len(ckpt.idx_to_char)):.4f} bits per character")
    print(f"round trip: {'all methods restored the text exactly' if ok else 'FAILED'}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
