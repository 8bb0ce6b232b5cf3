"""Model FLOPs of a teacher-forced training step, and the matmul speed of the shapes behind them.

Counts the multiply-adds of every matmul the model really makes for one batch (2 FLOPs
each): embeddings are lookups and count nothing; element-wise work (gates, tanh, softmax)
is not counted either, which is the usual convention for model FLOPs utilisation (MFU).
A training step costs three forward passes' worth (the backward pass is about twice the
forward). The output projection counts real target tokens only, as the model computes it.

`matmul_ceiling` times `tf.matmul` at a given shape, so that each part of the step can be
compared with what this machine can do at that shape rather than with a large square matmul.
"""

import time

import tensorflow as tf

TRAINING_PASSES = 3  # forward + backward (gradients for inputs and for weights)


def step_flops(config, source_vocab, target_vocab, batch, source_length, target_length, real_tokens):
    """{part: (forward FLOPs, matmul shape)} for one teacher-forced batch.

    A shape is (m, k, n) for one matmul, or (b, m, k, n) for b matmuls in one batched op.

    Args:
        config: the model's `ModelConfig`.
        source_vocab, target_vocab: vocabulary sizes (the source one is a lookup: unused).
        batch, source_length, target_length: the padded batch shape (target without [START]).
        real_tokens: non-padding target tokens in the batch.
    """
    del source_vocab
    if config.architecture == "transformer":
        return _transformer_step_flops(config, target_vocab, batch, source_length, target_length,
                                       real_tokens)
    gates = 3 if config.cell == "gru" else 4
    units, embedding = config.units, config.embedding_dim
    directions = 2 if config.bidirectional else 1
    encoder_units = units // directions
    parts = {}
    width = embedding
    for layer in range(config.num_layers):
        rows = batch * source_length
        parts[f"encoder input projection {layer}"] = (
            2 * directions * rows * width * gates * encoder_units, (rows, width, gates * encoder_units))
        parts[f"encoder recurrence {layer}"] = (
            2 * directions * rows * encoder_units * gates * encoder_units,
            (batch, encoder_units, gates * encoder_units))
        width = units
    width = embedding + (units if config.input_feeding else 0)
    for layer in range(config.num_layers):
        rows = batch * target_length
        parts[f"decoder input projection {layer}"] = (
            2 * rows * width * gates * units, (rows, width, gates * units))
        parts[f"decoder recurrence {layer}"] = (
            2 * rows * units * gates * units, (batch, units, gates * units))
        width = units
    pairs = batch * target_length * source_length
    if config.attention in ("bahdanau", "luong-concat"):
        attention_units = config.attention_units
        parts["attention keys"] = (2 * batch * source_length * units * attention_units,
                                   (batch * source_length, units, attention_units))
        parts["attention queries"] = (2 * batch * target_length * units * attention_units,
                                      (batch * target_length, units, attention_units))
        # v applied to every (t, s) pair: a matrix-vector product.
        parts["attention scores"] = (2 * pairs * attention_units, (pairs, attention_units, 1))
    elif config.attention in ("luong-dot", "luong-general"):
        if config.attention == "luong-general":
            parts["attention keys"] = (2 * batch * source_length * units * units,
                                       (batch * source_length, units, units))
        parts["attention scores"] = (2 * pairs * units, (batch, target_length, units, source_length))
    if config.attention is not None:
        parts["attention context"] = (2 * pairs * units, (batch, target_length, source_length, units))
        parts["attentional state W_c"] = (2 * batch * target_length * 2 * units * units,
                                          (batch * target_length, 2 * units, units))
    parts["output projection W_s"] = (2 * real_tokens * units * target_vocab,
                                      (real_tokens, units, target_vocab))
    return parts


def _transformer_step_flops(config, target_vocab, batch, source_length, target_length, real_tokens):
    """`step_flops` of a Transformer: every layer's projections, its attention products over
    all (query, key) pairs (padding included, as the model computes them), the feed-forward
    network, and the output projection."""
    units, ff_units, heads = config.units, config.ff_units, config.num_heads
    head_units = units // heads
    source_rows, target_rows = batch * source_length, batch * target_length
    parts = {}

    def attention(name, query_rows, key_rows, query_length, key_length):
        parts[f"{name} Q and output projections"] = (
            2 * 2 * query_rows * units * units, (query_rows, units, units))
        parts[f"{name} K and V projections"] = (
            2 * 2 * key_rows * units * units, (key_rows, units, units))
        pairs = batch * heads * query_length * key_length
        parts[f"{name} scores and weighted sum"] = (
            2 * 2 * pairs * head_units, (batch * heads, query_length, head_units, key_length))

    def feed_forward(name, rows):
        parts[name] = (2 * 2 * rows * units * ff_units, (rows, units, ff_units))

    for layer in range(config.num_layers):
        attention(f"encoder self-attention {layer}", source_rows, source_rows,
                  source_length, source_length)
        feed_forward(f"encoder feed-forward {layer}", source_rows)
    for layer in range(config.num_layers):
        attention(f"decoder self-attention {layer}", target_rows, target_rows,
                  target_length, target_length)
        attention(f"decoder cross-attention {layer}", target_rows, source_rows,
                  target_length, source_length)
        feed_forward(f"decoder feed-forward {layer}", target_rows)
    parts["output projection W_s"] = (2 * real_tokens * units * target_vocab,
                                      (real_tokens, units, target_vocab))
    return parts


def training_flops(parts):
    """Forward FLOPs of `step_flops` -> the FLOPs of a training step."""
    return TRAINING_PASSES * sum(flops for flops, _ in parts.values())


def matmul_ceiling(*shape, repeats=20, seconds=0.3):
    """Measured float32 GFLOP/s of (m, k) @ (k, n), or of b of them batched (shape (b, m, k, n)),
    on this machine.

    The matmul runs `repeats` times in a graph loop, one after the other, as an RNN's
    recurrence does, so the figure includes the per-op cost a loop pays but not the cost of
    calling a function from Python. Best of repeated runs.
    """
    *batch, m, k, n = shape
    left = tf.random.normal([*batch, m, k])
    right = tf.random.normal([*batch, k, n])

    @tf.function
    def chain(left, right):
        def body(index, total):
            # Each product depends on the previous one, so they cannot run in parallel.
            return index + 1, total + tf.reduce_sum(tf.matmul(left + total * 0.0, right)[..., :1, :1])

        return tf.while_loop(lambda index, total: index < repeats, body,
                             (tf.constant(0), tf.constant(0.0)))[1]

    chain(left, right).numpy()
    best, deadline = float("inf"), time.perf_counter() + seconds
    while time.perf_counter() < deadline:
        start = time.perf_counter()
        chain(left, right).numpy()
        best = min(best, time.perf_counter() - start)
    return 2 * (batch[0] if batch else 1) * m * k * n * repeats / best / 1e9


def decoding_matmul_shapes(config, target_vocab, rows):
    """The (m, k, n) matmuls of decoding: (one decoder step, one encoder position) for `rows`
    rows (sentences, or hypotheses in a beam).

    Attention keys and the encoder's per-position work are counted per source position;
    the element-wise work (gates, tanh, softmax, argmax) is left out, so the time of these
    matmuls is a floor under what any implementation with these kernels can reach.
    """
    gates = 3 if config["cell"] == "gru" else 4
    units, embedding = config["units"], config["embedding_dim"]
    directions = 2 if config["bidirectional"] else 1
    encoder_units = units // directions
    encoder, decoder = [], []
    width = embedding
    for _ in range(config["num_layers"]):
        encoder += [(rows, width, gates * encoder_units),
                    (rows, encoder_units, gates * encoder_units)] * directions
        width = units
    width = embedding + (units if config["input_feeding"] else 0)
    for _ in range(config["num_layers"]):
        decoder += [(rows, width, gates * units), (rows, units, gates * units)]
        width = units
    attention = config["attention"]
    if attention in ("bahdanau", "luong-concat"):
        encoder.append((rows, units, config["attention_units"]))  # keys W1 h̄_s
        decoder.append((rows, units, config["attention_units"]))  # query W2 h_t
    elif attention == "luong-general":
        encoder.append((rows, units, units))
    if attention is not None:
        decoder.append((rows, 2 * units, units))  # W_c [c_t; h_t]
    decoder.append((rows, units, target_vocab))  # W_s
    return decoder, encoder


def matmul_chain_seconds(shapes, repeats=100, seconds=0.5):
    """Seconds for one pass over `shapes` ((m, k, n) each), the matmuls run one after another
    in a graph loop, as a decoding step runs them. Best of repeated runs."""
    lefts = [tf.random.normal([m, k]) for m, k, _ in shapes]
    rights = [tf.random.normal([k, n]) * 0.01 for _, k, n in shapes]

    @tf.function
    def chain():
        def body(index, total):
            for left, right in zip(lefts, rights):
                # Each product waits for the previous one, like the layers of a step.
                total = total + tf.reduce_sum(tf.matmul(left + total * 0.0, right)[:1, :1])
            return index + 1, total

        return tf.while_loop(lambda index, total: index < repeats, body,
                             (tf.constant(0), tf.constant(0.0)))[1]

    chain().numpy()
    best, deadline = float("inf"), time.perf_counter() + seconds
    while time.perf_counter() < deadline:
        start = time.perf_counter()
        chain().numpy()
        best = min(best, time.perf_counter() - start)
    return best / repeats
