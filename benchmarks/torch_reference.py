"""The PyTorch CPU reference for bench_scale.py and bench_shakespeare.py: the same recurrent model, trained
the same way, timed the same way. Run with a Python that has torch (a separate venv, never a dependency of
d2lrnn: `python3.11 -m venv ../.venv-torch && ../.venv-torch/bin/pip install torch==2.13.0 'numpy<2'`).

    python torch_reference.py TEXT_FILE CELL LAYERS HIDDEN STEPS BATCH CHARS THREADS OPTIMIZER LR CLIP

Trains one pass over the first CHARS characters of TEXT_FILE (sequential minibatches, the state carried
and detached, one-hot input, mean cross-entropy, global-norm clipping) with torch.nn.RNN/GRU/LSTM and
prints one line `RESULT {json}` with characters per second after a warm-up of 10 minibatches.
"""
import json
import sys
import time

import numpy as np
import torch


def main(path, cell, layers, hidden, steps, batch, chars, threads, optimizer, lr, clip):
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    text = open(path, encoding="utf-8").read()
    text = (text * (chars // len(text) + 1))[:chars]
    vocab = sorted(set(text))
    index = {c: i for i, c in enumerate(vocab)}
    corpus = np.array([index[c] for c in text], dtype=np.int64)
    V = len(vocab)
    layer = {"rnn": torch.nn.RNN, "gru": torch.nn.GRU, "lstm": torch.nn.LSTM}[cell](V, hidden, layers)
    head = torch.nn.Linear(hidden, V)
    params = list(layer.parameters()) + list(head.parameters())
    opt = torch.optim.SGD(params, lr=lr) if optimizer == "sgd" else torch.optim.Adam(params, lr=lr)
    length = len(corpus) // batch
    streams = torch.from_numpy(corpus[:batch * length].reshape(batch, length))  # (batch, length)
    batches = (length - 1) // steps
    state, start, losses = None, None, []
    begin = time.perf_counter()
    for i in range(batches):
        if i == 10:
            start = time.perf_counter()
        X = streams[:, i * steps:(i + 1) * steps].T                # (steps, batch)
        Y = streams[:, i * steps + 1:(i + 1) * steps + 1].T
        inputs = torch.nn.functional.one_hot(X, V).float()          # (steps, batch, vocab)
        if state is not None:
            state = tuple(s.detach() for s in state) if isinstance(state, tuple) else state.detach()
        out, state = layer(inputs, state)                           # (steps, batch, hidden)
        loss = torch.nn.functional.cross_entropy(head(out).reshape(-1, V), Y.reshape(-1))
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, clip)
        opt.step()
        losses.append(loss.item() if i % 50 == 0 else None)
    end = time.perf_counter()
    print("RESULT " + json.dumps(dict(
        chars_per_s=(batches - 10) * batch * steps / (end - start), seconds=end - begin, threads=threads,
        torch=torch.__version__, last_loss=next(x for x in reversed(losses) if x is not None))))


if __name__ == "__main__":
    a = sys.argv[1:]
    main(a[0], a[1], int(a[2]), int(a[3]), int(a[4]), int(a[5]), int(a[6]), int(a[7]), a[8], float(a[9]),
         float(a[10]))
