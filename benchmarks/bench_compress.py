"""Bits per character as file size, and speed: the shipped Tiny Shakespeare LSTM compressing vs gzip, bz2, xz.

Takes the held-out Tiny Shakespeare text exactly as `python -m d2lrnn train --corpus tinyshakespeare
--preprocess raw --val-fraction 0.1` holds it out (the last 10 %, 111,539 characters), which the
shipped model `d2lrnn.pretrained("shakespeare-lstm")` never trained on, and compresses it with

  * the model: d2lrnn.compress (range coding driven by the LSTM's next-character probabilities,
    computed by its NumPy forward step, lanes chosen from the text's length unless --lanes is given),
  * gzip -9, bz2 level 9 and xz/lzma preset 9 from Python's standard library.

Every method is decoded again and compared with the input. Prints a markdown table of the size in
bytes, bits per character (8 * bytes / characters, headers included), encoding and decoding speed
(characters per second, the fastest of --repeats runs), and how many times faster than the model
each other method is, measured in the same run; then the model's cross-entropy (what an ideal coder driven
by the same model and lanes would spend, and read as a single stream) and log2(vocabulary size).

    python benchmarks/bench_compress.py                # the whole held-out text
    python benchmarks/bench_compress.py --chars 5000   # its first 5,000 characters
    python benchmarks/bench_compress.py --big-mb 20    # also a 20 MB text (a speed test, see big_text)

The corpus is found like d2lrnn finds it (set D2LRNN_DATA_DIR to the folder with tinyshakespeare.txt).
Speeds depend on the machine and on what else runs on it: the load average is printed, and the
ratios to gzip, bz2 and xz, timed in the same run, move less than the absolute figures.
Exit status 1 if a round trip fails.
"""
import argparse
import bz2
import gzip
import lzma
import math
import os
import random
import sys
import time

import mxnet as mx

import d2lrnn
from d2lrnn import compress as cz
from d2lrnn.config import TrainConfig


def held_out_text():
    """The held-out text of `train --corpus tinyshakespeare --preprocess raw --val-fraction 0.1`."""
    return TrainConfig(corpus="tinyshakespeare", preprocess="raw", val_fraction=0.1).source().part("val")


def big_text(megabytes, seed=0):
    """`megabytes` million characters: Tiny Shakespeare's speeches, in a new random order in every copy.

    A speed test: there are not 20 MB of other text on an offline machine. Its sizes are not a fair
    comparison: every speech comes back once per copy (1.1 MB apart), which xz's 64 MB window finds
    and gzip's 32 KB window, bz2's 900 KB blocks and the model's state do not; and 90 % of it is text
    the shipped model trained on. The held-out text is the comparison of sizes.
    """
    speeches = TrainConfig(corpus="tinyshakespeare", preprocess="raw").source().part("all").split("\n\n")
    rng, parts, size = random.Random(seed), [], 0
    while size < megabytes * 1_000_000:
        order = speeches[:]
        rng.shuffle(order)
        copy = "\n\n".join(order) + "\n\n"
        parts.append(copy)
        size += len(copy)
    return "".join(parts)[:megabytes * 1_000_000]


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


def compare(text, title, ckpt, *, lanes, repeats, model_repeats, entropy):
    """Compress `text` every way, print the table; True if every method restored it."""
    raw, n, ctx = text.encode("utf-8"), len(text), mx.cpu()
    outside = sum(c not in ckpt.char_to_idx for c in set(text))
    print(f"\n## {title}: {n:,} characters ({len(raw):,} bytes UTF-8), {outside} distinct ones outside the "
          f"model's {len(ckpt.idx_to_char)}-character vocabulary; load average {os.getloadavg()[0]:.2f} on "
          f"{os.cpu_count()} CPUs\n", flush=True)
    data, enc = timed(lambda: cz.compress(text, ckpt.model, char_to_idx=ckpt.char_to_idx, ctx=ctx,
                                          lanes=lanes), model_repeats)
    back, dec = timed(lambda: cz.decompress(data, ckpt.model, idx_to_char=ckpt.idx_to_char, ctx=ctx),
                      model_repeats)
    header, start = cz.read_header(data)
    rows = [(f"LSTM + range coder, {header['lanes']} lanes ({start} header bytes)", len(data), enc, dec,
             back == text)]
    for name, (pack, unpack) in stdlib_methods().items():
        packed, enc = timed(lambda pack=pack: pack(raw), repeats)
        unpacked, dec = timed(lambda unpack=unpack, packed=packed: unpack(packed), repeats)
        rows.append((name, len(packed), enc, dec, unpacked == raw))
    print("| method | bytes | bits per character | encode (chars/s) | decode (chars/s) | round trip |")
    print("|---|---:|---:|---:|---:|---|")
    print(f"| UTF-8, uncompressed | {len(raw):,} | {8 * len(raw) / n:.3f} | | | |")
    ok = True
    for name, size, enc, dec, same in rows:
        ok &= same
        print(f"| {name} | {size:,} | {8 * size / n:.3f} | {n / enc:,.0f} | {n / dec:,.0f} | "
              f"{'ok' if same else 'FAILED'} |")
    _, _, model_enc, model_dec, _ = rows[0]
    print("\nhow many times faster than the model each method is (same run): "
          + "; ".join(f"{name} encodes {model_enc / enc:,.0f}x, decodes {model_dec / dec:,.0f}x"
                      for name, _, enc, dec, _ in rows[1:]))
    payload = 8 * (len(data) - start)
    if entropy:
        kwargs = dict(char_to_idx=ckpt.char_to_idx, ctx=ctx)
        same = cz.cross_entropy_bits(ckpt.model, text, lanes=header["lanes"], **kwargs)
        exact = cz.cross_entropy_bits(ckpt.model, text, lanes=header["lanes"], quantised=True, **kwargs)
        single = cz.cross_entropy_bits(ckpt.model, text, lanes=16, **kwargs)
        print(f"model cross-entropy in the same {header['lanes']} lanes: {same / n:.4f} bits per character "
              f"(perplexity {2 ** (same / n):.3f}); with the coder's whole-number probabilities "
              f"{exact / n:.4f}; the payload is {payload / same - 1:+.3%} from the first, "
              f"{payload - exact:.0f} bits above the second")
        print(f"model cross-entropy read as 16 long lanes (as good as one stream): {single / n:.4f} bits per "
              f"character; the payload is {payload / single - 1:+.3%} from it (the lanes' fresh starts and "
              "rounding)")
    print(f"uniform guess over the {len(ckpt.idx_to_char)} characters: log2({len(ckpt.idx_to_char)}) = "
          f"{math.log2(len(ckpt.idx_to_char)):.4f} bits per character")
    print(f"round trip: {'all methods restored the text exactly' if ok else 'FAILED'}", flush=True)
    return ok


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--chars", type=int, default=None, help="compress only the first N held-out "
                                                                "characters")
    parser.add_argument("--lanes", type=int, default=None,
                        help=f"pieces the model codes side by side (default: chosen from the text's length, "
                             f"1 to {cz.DEFAULT_MAX_LANES}, as the command line does)")
    parser.add_argument("--repeats", type=int, default=3, help="timing runs of every method on the held-out "
                                                               "text, the fastest kept (default %(default)s)")
    parser.add_argument("--big-mb", type=int, default=0, help="also compress a text of this many million "
                                                              "characters (big_text), each method timed once")
    args = parser.parse_args(argv)
    for flag, value, low in (("--chars", args.chars, 1), ("--lanes", args.lanes, 1),
                             ("--repeats", args.repeats, 1), ("--big-mb", args.big_mb, 0)):
        if value is not None and value < low:
            parser.error(f"{flag} must be at least {low}, got {value}")
    if args.lanes is not None and args.lanes > cz.MAX_LANES:
        parser.error(f"--lanes must be at most {cz.MAX_LANES}")
    ckpt = d2lrnn.load_checkpoint(d2lrnn.pretrained("shakespeare-lstm"), mx.cpu())
    blas = cz._numpy_openblas()
    print(f"shipped model: {ckpt.config['model']}, {ckpt.config['hidden']} hidden units; arithmetic: "
          f"{cz.numpy_net(ckpt.model).arithmetic}, {blas[2] if blas else 'unknown BLAS'}, 1 thread")
    text = held_out_text()[:args.chars]
    ok = compare(text, "held-out Tiny Shakespeare (`--corpus tinyshakespeare --preprocess raw --val-fraction "
                       "0.1`)",
                 ckpt, lanes=args.lanes, repeats=args.repeats, model_repeats=args.repeats, entropy=True)
    if args.big_mb:
        ok &= compare(big_text(args.big_mb), f"{args.big_mb} MB: Tiny Shakespeare's speeches reshuffled in "
                                             "every copy",
                      ckpt, lanes=args.lanes, repeats=1, model_repeats=1, entropy=False)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
