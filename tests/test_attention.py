import numpy as np
import pytest
import tensorflow as tf

from keras_s2s.attention import BahdanauAttention, LuongAttention

from .layer_checks import check_layer

rng = np.random.default_rng(0)
QUERY = rng.normal(size=(2, 3, 4)).astype("float32")  # (batch, t, units)
VALUES = rng.normal(size=(2, 5, 4)).astype("float32")  # (batch, s, units)
MASK = np.array([[True] * 5, [True, True, True, False, False]])


def softmax(scores, mask):
    scores = np.where(mask[:, None, :], scores, -np.inf)
    exp = np.exp(scores - scores.max(-1, keepdims=True))
    return exp / exp.sum(-1, keepdims=True)


def check_against(layer, expected_scores):
    context, weights = layer(QUERY, VALUES, source_mask=MASK)
    expected_weights = softmax(expected_scores, MASK)
    np.testing.assert_allclose(weights, expected_weights, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(context, expected_weights @ VALUES, rtol=1e-5, atol=1e-6)


def test_bahdanau_is_v_tanh_w1_h_plus_w2_s():
    layer = BahdanauAttention(units=6)
    layer(QUERY, VALUES)
    w1, w2, v = (layer.key_projection.kernel.numpy(), layer.query_projection.kernel.numpy(),
                 layer.score_vector.kernel.numpy())
    hidden = np.tanh((VALUES @ w1)[:, None, :, :] + (QUERY @ w2)[:, :, None, :])  # (b, t, s, u)
    check_against(layer, (hidden @ v)[..., 0])


def test_luong_dot_general_and_concat_scores():
    dot = LuongAttention("dot")
    check_against(dot, QUERY @ VALUES.transpose(0, 2, 1))

    general = LuongAttention("general")
    general(QUERY, VALUES)
    w_a = general.key_projection.kernel.numpy()
    check_against(general, QUERY @ (VALUES @ w_a).transpose(0, 2, 1))

    concat = LuongAttention("concat", units=6)
    concat(QUERY, VALUES)
    w_values, w_query, v = (concat.key_projection.kernel.numpy(),
                            concat.query_projection.kernel.numpy(), concat.score_vector.kernel.numpy())
    hidden = np.tanh((VALUES @ w_values)[:, None] + (QUERY @ w_query)[:, :, None])
    check_against(concat, (hidden @ v)[..., 0])


@pytest.mark.parametrize("layer", [BahdanauAttention(6), LuongAttention("general")])
def test_padding_gets_no_weight_and_rows_sum_to_one(layer):
    _, weights = layer(QUERY, VALUES, source_mask=MASK)
    assert np.all(weights.numpy()[1, :, 3:] == 0.0)
    np.testing.assert_allclose(weights.numpy().sum(-1), 1.0, rtol=1e-6)


def test_precomputed_keys_give_the_same_result():
    layer = BahdanauAttention(6)
    plain = layer(QUERY, VALUES, source_mask=MASK)
    with_keys = layer(QUERY, VALUES, keys=layer.compute_keys(VALUES), source_mask=MASK)
    np.testing.assert_allclose(plain[0], with_keys[0])


@pytest.mark.parametrize("layer", [BahdanauAttention(6), LuongAttention("dot"),
                                   LuongAttention("general"), LuongAttention("concat", units=3)])
@pytest.mark.parametrize("mask", [MASK, None])
def test_one_step_equals_each_position_of_the_sequence_call(layer, mask):
    context, weights = layer(QUERY, VALUES, source_mask=mask)
    keys = layer.compute_keys(VALUES)
    for position in range(QUERY.shape[1]):
        step_context, step_weights = layer.step(QUERY[:, position], VALUES, keys, mask)
        assert tuple(step_context.shape) == (2, 4) and tuple(step_weights.shape) == (2, 5)
        np.testing.assert_allclose(step_context, context[:, position], rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(step_weights, weights[:, position], rtol=1e-5, atol=1e-6)
    if mask is not None:
        assert np.all(step_weights.numpy()[1, 3:] == 0.0)


def test_dot_score_needs_equal_widths():
    with pytest.raises(ValueError, match="same width"):
        LuongAttention("dot")(QUERY, tf.zeros([2, 5, 7]))


def test_unknown_luong_score_is_refused():
    with pytest.raises(ValueError, match="score"):
        LuongAttention("cosine")


@pytest.mark.parametrize("layer", [BahdanauAttention(6), LuongAttention("concat", units=3)])
def test_get_config_rebuilds_an_equivalent_layer(layer):
    layer(QUERY, VALUES)
    clone = type(layer).from_config(layer.get_config())
    clone(QUERY, VALUES)
    clone.set_weights(layer.get_weights())
    np.testing.assert_allclose(clone(QUERY, VALUES)[1], layer(QUERY, VALUES)[1])


@pytest.mark.parametrize("layer", [BahdanauAttention(6), LuongAttention("general")])
def test_one_step_agrees_with_the_sequence_call_on_a_large_batch(layer):
    # 64 rows × 12 positions: large enough for the step's batched-matmul form of the
    # weighted sum (small batches use a multiply and a sum).
    rng = np.random.default_rng(3)
    query = rng.normal(size=(64, 1, 4)).astype("float32")
    values = rng.normal(size=(64, 12, 4)).astype("float32")
    mask = np.arange(12)[np.newaxis, :] < rng.integers(1, 13, size=(64, 1))
    context, weights = layer(query, values, source_mask=mask)
    step_context, step_weights = layer.step(query[:, 0], values, layer.compute_keys(values), mask)
    np.testing.assert_allclose(step_context, context[:, 0], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(step_weights, weights[:, 0], rtol=1e-5, atol=1e-6)


def attention_steps(layer, inputs):
    """The attention of every query position, one `step` at a time, stacked like `call`'s."""
    keys = layer.compute_keys(inputs["values"])
    steps = [layer.step(inputs["query"][:, position], inputs["values"], keys,
                        inputs.get("source_mask")) for position in range(inputs["query"].shape[1])]
    return tuple(tf.stack(parts, axis=1) for parts in zip(*steps))  # (batch, t, units), (batch, t, s)


@pytest.mark.parametrize("layer_class, init_kwargs", [
    (BahdanauAttention, {"units": 6}), (LuongAttention, {"score": "dot"}),
    (LuongAttention, {"score": "general"}), (LuongAttention, {"score": "concat", "units": 3})],
    ids=["bahdanau", "luong-dot", "luong-general", "luong-concat"])
@pytest.mark.parametrize("masked", [True, False], ids=["masked", "unmasked"])
def test_attention_layers_pass_the_layer_checks(layer_class, init_kwargs, masked):
    inputs = {"query": QUERY, "values": VALUES}
    if masked:
        inputs["source_mask"] = MASK
    check_layer(layer_class, init_kwargs, inputs, step=attention_steps)
