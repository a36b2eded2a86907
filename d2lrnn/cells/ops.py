"""Small array helpers every cell shares: the lecture's initialisation, products, slices, element-wise ops."""
from mxnet import nd

INIT_SCALE = 0.01  # the lecture's weights are drawn from N(0, 0.01); biases start at zero


def normal(shape, ctx):
    """N(0, INIT_SCALE) weights on ctx, the lecture's initialisation."""
    return nd.random.normal(scale=INIT_SCALE, shape=shape, ctx=ctx)


def with_grads(params):
    """Attach a gradient buffer to every array and return the list."""
    for p in params:
        p.attach_grad()
    return params


def gate_params(num_inputs, num_hiddens, ctx):
    """One gate's [W_x, W_h, b]: input weights, hidden weights and a zero bias, on ctx."""
    return [normal((num_inputs, num_hiddens), ctx),   # W_x: (inputs, hidden)
            normal((num_hiddens, num_hiddens), ctx),  # W_h: (hidden, hidden)
            nd.zeros(num_hiddens, ctx=ctx)]           # b:   (hidden,)


def output_params(num_hiddens, vocab_size, ctx):
    """The output layer [W_hq, b_q]."""
    return [normal((num_hiddens, vocab_size), ctx),   # W_hq: (hidden, vocab)
            nd.zeros(vocab_size, ctx=ctx)]            # b_q:  (vocab,)


def linear(X, W_T, b=None, out=None):
    """X W + b, with W given transposed as (out, in): nd.FullyConnected beats nd.dot on a CPU."""
    return nd.FullyConnected(X, W_T, b, no_bias=b is None, num_hidden=W_T.shape[0], out=out)


def split_steps(Y, num_steps):
    """(num_steps * batch, n) -> a list of num_steps arrays of (batch, n)."""
    parts = nd.split(Y, num_outputs=num_steps, axis=0)
    return [parts] if num_steps == 1 else list(parts)  # split returns a bare array for one part


# Same-shape + and *: `a + b` on NDArrays goes through broadcast_add, whose backward sums over
# (absent) broadcast axes and costs several times more under autograd.
add, mul, sub = nd.elemwise_add, nd.elemwise_mul, nd.elemwise_sub


def cols(A, begin, end):
    """Columns begin:end of A (slice_axis is several times cheaper than split on a CPU)."""
    return nd.slice_axis(A, axis=1, begin=begin, end=end)


def rows(A, size):
    """A (k * size, n) as k views of (size, n) each: one step's rows of an array that stacks all steps."""
    return [A[k * size:(k + 1) * size] for k in range(A.shape[0] // size)]


def tanh_grad(dY, Y, out=None):
    """dY * (1 - Y^2), the gradient through Y = tanh(.), in one operator (MXNet's own derivative of tanh)."""
    return nd._internal._backward_tanh(dY, Y, out=out)


def sigmoid_grad(dY, Y, out=None):
    """dY * Y * (1 - Y), the gradient through Y = sigmoid(.), in one operator (MXNet's own)."""
    return nd._internal._backward_sigmoid(dY, Y, out=out)


def outer(A, B, out=None):
    """A^T B for A (rows, a) and B (rows, b): all rows' outer products summed, e.g. a weight's gradient over
    every step of every sequence in one product (oneDNN's FullyConnected, twice BLAS's speed here)."""
    return nd.FullyConnected(A.T, B.T, no_bias=True, num_hidden=B.shape[1], out=out)  # (a, b)


def column_sums(A, out=None):
    """A.sum(axis=0) as a product with a row of ones: BLAS does it far faster than MXNet's reduce; (n,)."""
    ones = nd.ones((1, A.shape[0]), ctx=A.context)
    return nd.dot(ones, A, out=None if out is None else out.reshape((1, -1))).reshape((-1,))


def scatter_rows(tokens, values, vocab_size, out=None):
    """Sum of the rows of `values` grouped by token, (vocab, width): one_hot(tokens)^T values.

    A dense product: MXNet's sparse one-hot would need a host sync per minibatch to size its result.
    """
    return outer(nd.one_hot(tokens, vocab_size), values, out=out)


def dropout_mask(shape, p, ctx):
    """Inverted dropout: 0 with probability p, else 1 / (1 - p), so the expected value is unchanged."""
    return (nd.random.uniform(shape=shape, ctx=ctx) >= p) / (1 - p)
