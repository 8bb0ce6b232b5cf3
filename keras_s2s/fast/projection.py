"""The output projection W_s in bfloat16, for decoding only.

W_s (units -> vocab) is the largest matmul of a decoding step. Here a copy of it is stored in
bfloat16 and multiplied in bfloat16, and the products are accumulated back into float32
logits, so the searches still rank in float32. A CPU with bfloat16 instructions (AVX512-BF16,
AMX) multiplies it faster; one without them is slower, which is why it is an option
(`Translator(projection_dtype="bfloat16")`, `keras-s2s export --projection-dtype bfloat16`).

bfloat16 keeps 8 bits of mantissa, so a logit moves a little and a near-tie between two
tokens can go the other way; elsewhere the translations are the float32 ones.
"""

import tensorflow as tf


class BFloat16Projection(tf.Module):
    """h̃ (rows, units) -> float32 logits (rows, vocab), with W_s stored and multiplied in bfloat16.

    Args:
        output_projection: the decoder's trained W_s, a built `keras.layers.Dense` with a
            bias; its weights are copied once, here, not cast at every step.

    Example:
        >>> import keras
        >>> dense = keras.layers.Dense(5)
        >>> dense.build((None, 3))
        >>> tuple(BFloat16Projection(dense)(tf.ones([2, 3])).shape)
        (2, 5)
    """

    def __init__(self, output_projection):
        super().__init__(name="bfloat16_projection")
        # Copies, not views of the layer's variables: an export then stores these only.
        self.kernel = tf.Variable(tf.cast(output_projection.kernel, tf.bfloat16),
                                  trainable=False, name="W_s_bfloat16")
        self.bias = tf.Variable(tf.cast(output_projection.bias, tf.float32),
                                trainable=False, name="W_s_bias")

    def __call__(self, attentional):
        attentional = tf.cast(attentional, tf.bfloat16)  # h̃ (rows, units)
        logits = tf.matmul(attentional, self.kernel)  # (rows, vocab) bfloat16
        return tf.cast(logits, tf.float32) + self.bias

    def decoder_step(self, decoder):
        """`decoder.step` with this projection in place of the decoder's own W_s: a function
        (tokens, state, memory) -> (logits, state, weights)."""
        def step(tokens, state, memory):
            attentional, state, weights = decoder.attentional_step(tokens, state, memory)
            return self(attentional), state, weights

        return step
