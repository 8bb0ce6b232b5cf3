"""`check_layer`: the checks every Keras layer of keras_s2s passes, in one call.

A layer test states what is particular to its layer (equations, masks, shapes) and then calls

    check_layer(Decoder, {"vocab_size": 40, "embedding_dim": 8, "units": 16},
                {"target_ids": ..., "memory": SourceMemory(...)},
                step=decode_one_token_at_a_time)

which checks, on those inputs:

1. Config: every `__init__` argument is in `get_config()` (but one that holds a layer, which
   is saved with its owner), `from_config(get_config())`
   gives the same config, and so does `keras.saving`'s serialize / deserialize round trip
   (Keras' own `run_class_serialization_test`).
   Where every input is a plain float or int tensor, Keras' `run_layer_test` also builds the
   layer from shapes and calls it on symbolic inputs (what a functional model does).
2. `.keras` files: a functional `keras.Model` around the layer, saved and loaded back (safe
   mode, as the package always loads), gives exactly the same outputs.
3. Step equals call: for a layer that decodes one token at a time, `step(layer, inputs)`
   (written by the test, running the layer's `step` over every position) gives the outputs
   of one `call` on the whole sequence.
4. Mixed precision: the same layer built under the "mixed_float16" policy keeps float32
   weights, computes in float16, and with the float32 layer's weights gives its outputs to
   float16 precision (and its steps its call). The policy is set only for this check and the
   previous one restored, so nothing leaks into other tests.

Keras' harness calls a layer with its first input positional and builds it from input shapes
alone; the decoder's nested state and the boolean masks do not fit that, so the checks that
need more than shapes are written here.
"""

import inspect
import tempfile
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf
from keras.src.testing import TestCase

from keras_s2s.precision import building_under

# float16 keeps 11 bits of mantissa; a few stacked matmuls and RNN steps stay within this.
MIXED_PRECISION_TOLERANCE = 3e-2
_HARNESS_DTYPES = ("float32", "int32", "int64")


def check_layer(layer_class, init_kwargs, inputs, step=None, tolerance=1e-5):
    """Runs the config, `.keras`, step and mixed-precision checks on one layer configuration.

    Args:
        layer_class: the layer's class, e.g. `BahdanauAttention`.
        init_kwargs: dict of constructor arguments (the layer is built several times from it).
        inputs: dict of call arguments by name: tensors, or (nested) tuples of tensors such as
            a decoder's `SourceMemory`. Batch first, float32 for float inputs.
        step: optional function (layer, inputs) -> the outputs of `layer(**inputs)` computed
            one step at a time with the layer's `step`, in the same structure as the call's.
        tolerance: rtol and atol of the float32 comparisons (step against call).

    Returns:
        The float32 layer, built, for further checks by the caller.
    """
    inputs = tf.nest.map_structure(tf.convert_to_tensor, inputs)
    _check_config(layer_class, init_kwargs, inputs)

    layer = layer_class(**init_kwargs)
    outputs = layer(**inputs)
    assert all(weight.dtype == "float32" for weight in layer.weights)
    _check_keras_file(layer, inputs, outputs)
    if step is not None:
        _assert_close(step(layer, inputs), outputs, tolerance, "step by step against call")
    _check_mixed_precision(layer_class, init_kwargs, inputs, layer, outputs, step)
    return layer


def _check_config(layer_class, init_kwargs, inputs):
    harness = TestCase()
    layer = layer_class(**init_kwargs)
    # An argument that holds a layer (one passed in to be shared, say) is saved with the layer
    # that owns it, not in this one's config.
    arguments = [name for name, parameter in inspect.signature(layer_class.__init__).parameters.items()
                 if name != "self" and parameter.kind is not parameter.VAR_KEYWORD
                 and not isinstance(getattr(layer, name, None), keras.layers.Layer)]
    missing = sorted(set(arguments) - set(layer.get_config()))
    assert not missing, f"{layer_class.__name__}.get_config() leaves out {missing}"
    harness.run_class_serialization_test(layer)
    assert layer_class.from_config(layer.get_config()).get_config() == layer.get_config()
    if all(isinstance(value, tf.Tensor) and value.dtype.name in _HARNESS_DTYPES
           for value in inputs.values()):
        expected_shapes = tf.nest.map_structure(lambda tensor: tuple(tensor.shape),
                                                layer_class(**init_kwargs)(**inputs))
        harness.run_layer_test(
            layer_class, init_kwargs,
            input_shape={f"{name}_shape": tuple(value.shape) for name, value in inputs.items()},
            input_dtype={f"{name}_shape": value.dtype.name for name, value in inputs.items()},
            expected_output_shape=expected_shapes,
            # Its training step passes all inputs as one positional argument, and its
            # mixed-precision step sets the policy on the outer layer only; check 4 below
            # covers mixed precision as the package uses it (a global policy).
            run_training_check=False, run_mixed_precision_check=False)


def _check_keras_file(layer, inputs, outputs):
    # A functional model records nested inputs as lists (a `SourceMemory` too) and warns when
    # called with another structure, so it is built and called with lists.
    inputs = _as_lists(inputs)
    symbolic = tf.nest.pack_sequence_as(inputs, [
        keras.Input(batch_shape=tuple(tensor.shape), dtype=tensor.dtype.name,
                    name="_".join(map(str, path))) for path, tensor in keras.tree.flatten_with_path(inputs)])
    model = keras.Model(symbolic, layer(**symbolic))
    with tempfile.TemporaryDirectory() as directory:
        path = Path(directory) / "layer.keras"
        model.save(path)
        loaded = keras.saving.load_model(path)
    assert loaded.layers[-1].get_config() == layer.get_config()
    _assert_close(loaded(inputs), outputs, 0.0, ".keras save and load")
    _assert_close(model(inputs), outputs, 0.0, "the layer inside a functional model")


def _as_lists(nest):
    """`nest` with every tuple (named or not) as a list, dicts kept."""
    if isinstance(nest, dict):
        return {key: _as_lists(value) for key, value in nest.items()}
    if isinstance(nest, (list, tuple)):
        return [_as_lists(value) for value in nest]
    return nest


def _check_mixed_precision(layer_class, init_kwargs, inputs, float32_layer, float32_outputs, step):
    with building_under("mixed_float16"):
        layer = layer_class(**init_kwargs)
        layer(**inputs)  # builds it
        layer.set_weights(float32_layer.get_weights())
        outputs = layer(**inputs)
        assert layer.compute_dtype == "float16" and layer.variable_dtype == "float32"
        assert all(weight.dtype == "float32" for weight in layer.weights)
        assert any(tensor.dtype == tf.float16 for tensor in tf.nest.flatten(outputs)), (
            "no output was computed in float16")
        _assert_close(outputs, float32_outputs, MIXED_PRECISION_TOLERANCE, "mixed_float16 call")
        if step is not None:
            # Keras casts a call's float inputs to the compute dtype; a step is called directly.
            cast = tf.nest.map_structure(
                lambda tensor: tf.cast(tensor, tf.float16) if tensor.dtype.is_floating else tensor,
                inputs)
            _assert_close(step(layer, cast), outputs, MIXED_PRECISION_TOLERANCE,
                          "mixed_float16 step by step against call")


def _assert_close(found, expected, tolerance, what):
    tf.nest.assert_same_structure(found, expected, check_types=False)
    for got, want in zip(tf.nest.flatten(found), tf.nest.flatten(expected), strict=True):
        got, want = np.asarray(got, np.float32), np.asarray(want, np.float32)
        assert got.shape == want.shape, f"{what}: shape {got.shape}, expected {want.shape}"
        np.testing.assert_allclose(got, want, rtol=tolerance, atol=tolerance, err_msg=what)
