"""A trained Transformer as a CTranslate2 model directory, through CTranslate2's converter API.

CTranslate2 (https://github.com/OpenNMT/CTranslate2) runs standard Transformers in C++ on
CPUs and GPUs, with int8 weights if asked. Its documented way to add a model is a
`ctranslate2.converters.Converter` whose `_load` returns a `TransformerSpec` filled with
NumPy arrays; `convert` then validates, optionally quantizes, and writes the directory.
The mapping from this package's layers:

    keras_s2s                               TransformerSpec
    Embedding E (vocab, units) × √units     embeddings.weight; scale_embeddings=True
    the position table PE (any kind)        position_encodings.encodings (written out)
    decoder_start="zeros"                   decoder.start_from_zero_embedding
    self-attention W_q, W_k, W_v            self_attention.linear[0] = [W_q | W_k | W_v]ᵀ
    cross-attention W_q; W_k, W_v           attention.linear[0] = W_qᵀ, linear[1] = [W_k | W_v]ᵀ
    W_o                                     the attention's last linear
    feed-forward W_1, W_2                   ffn.linear_0, ffn.linear_1
    LayerNormalization (γ, β, ε)            layer_norm gamma, beta; config.layer_norm_epsilon
    final_norm (pre-norm stacks only)       encoder.layer_norm, decoder.layer_norm
    feed-forward nonlinearity               from_config(activation=...)
    W_s, or E (and the logits' bias) tied   decoder.projection

A Keras Dense kernel is (in, out) and a CTranslate2 linear weight (out, in), so every
kernel is transposed. CTranslate2 splits a fused projection's output into equal parts and
each part into heads of `units / heads` consecutive columns, as `split_heads` does. Its
own sinusoidal table puts all sines before all cosines, where ours interleaves them
(`positional_encoding.py`), so the table is always written into the spec; a sinusoidal one
is extended to `MIN_SINUSOIDAL_POSITIONS`, since its formula holds for any position.

The special tokens keep their names: CTranslate2 is told that [UNK], [START] and [END] are
its unknown, start and end tokens, that the decoder starts from [START], and that [END]
closes every source, as `TextProcessor.encode` does. Beside CTranslate2's own files the
directory gets `keras_s2s_config.json` (the ModelConfig: normalisation, case, lengths)
and, for SentencePiece vocabularies, `source.spm` and `target.spm`, so that the pieces can
be made with the `sentencepiece` package alone (serving/README.md shows how).
"""

import os

import numpy as np

from keras_s2s import config as config_lib
from keras_s2s.positional_encoding import sinusoidal_table
from keras_s2s.text import END, START, UNK

EXTRA = "ctranslate2"
MIN_SINUSOIDAL_POSITIONS = 1024  # CTranslate2's default max_input_length
# ModelConfig.ff_activation -> the name of CTranslate2's `specs.Activation` member.
CTRANSLATE2_ACTIVATIONS = {"relu": "RELU", "gelu": "GELU", "gelu-sigmoid": "GELUSigmoid",
                           "swish": "SWISH"}
QUANTIZATIONS = ("float32", "int8", "int8_float32", "int8_float16", "int8_bfloat16", "int16",
                 "float16", "bfloat16")


def import_ctranslate2():
    """The `ctranslate2` module, or an ImportError that names the extra to install."""
    try:
        import ctranslate2
    except ImportError as error:
        raise ImportError("Converting to CTranslate2 needs the ctranslate2 package: "
                          f"pip install 'keras_s2s[{EXTRA}]'.") from error
    return ctranslate2


def check_convertible(model):
    """Raises ValueError naming the option when `model` uses what CTranslate2 cannot express."""
    model_config = model.model_config
    if model_config.architecture != "transformer":
        raise ValueError(f"architecture={model_config.architecture!r} cannot be converted: "
                         "CTranslate2's TransformerSpec holds architecture='transformer' only.")
    stacks = (model.encoder, model.decoder)
    norms = [norm for stack in stacks for norm in _layer_norms(stack)]
    epsilons = {float(norm.epsilon) for norm in norms}
    if len(epsilons) != 1:
        raise ValueError(f"layer norm epsilon must be one value for CTranslate2; got {sorted(epsilons)}.")
    if not all(norm.center and norm.scale for norm in norms):
        raise ValueError("layer norms without center or scale have no CTranslate2 form.")
    if model_config.ff_activation not in CTRANSLATE2_ACTIVATIONS:
        raise ValueError(f"ff_activation={model_config.ff_activation!r} has no CTranslate2 form; "
                         f"{sorted(CTRANSLATE2_ACTIVATIONS)} convert.")


def _layer_norms(stack):
    norms = [stack.final_norm] if stack.final_norm is not None else []
    for layer in stack.layers_in_order:
        norms += [layer.self_attention_norm, layer.feed_forward_norm]
        norms += [layer.cross_attention_norm] if hasattr(layer, "cross_attention_norm") else []
    return norms


def _set_linear(spec, *denses):
    """Fills a LinearSpec with Dense layers fused along their outputs."""
    spec.weight = np.concatenate([dense.kernel.numpy().T for dense in denses])  # (Σ out, in)
    spec.bias = np.concatenate([dense.bias.numpy() for dense in denses])  # (Σ out,)


def _set_norm(spec, norm):
    spec.gamma, spec.beta = norm.gamma.numpy(), norm.beta.numpy()  # (units,) each


def _set_attention(spec, attention, is_self_attention):
    projections = (attention.query_projection, attention.key_projection, attention.value_projection)
    if is_self_attention:
        _set_linear(spec.linear[0], *projections)  # (3 units, units)
    else:
        _set_linear(spec.linear[0], projections[0])  # (units, units)
        _set_linear(spec.linear[1], *projections[1:])  # (2 units, units)
    _set_linear(spec.linear[-1], attention.output_projection)


def _position_table(embedding):
    if embedding.positional in ("learned", "stored"):
        return embedding.position_table.numpy()  # (max_length, units)
    return sinusoidal_table(max(embedding.max_length, MIN_SINUSOIDAL_POSITIONS), embedding.units)


def _set_stack(spec, stack, is_decoder):
    embeddings = stack.embedding.embeddings.numpy()  # (vocab, units)
    (spec.embeddings if is_decoder else spec.embeddings[0]).weight = embeddings
    spec.scale_embeddings = True  # PositionalEmbedding multiplies by √units
    spec.position_encodings.encodings = _position_table(stack.embedding)
    if stack.final_norm is not None:
        _set_norm(spec.layer_norm, stack.final_norm)
    for layer_spec, layer in zip(spec.layer, stack.layers_in_order):
        _set_attention(layer_spec.self_attention, layer.self_attention, True)
        _set_norm(layer_spec.self_attention.layer_norm, layer.self_attention_norm)
        if is_decoder:
            _set_attention(layer_spec.attention, layer.cross_attention, False)
            _set_norm(layer_spec.attention.layer_norm, layer.cross_attention_norm)
        _set_linear(layer_spec.ffn.linear_0, layer.feed_forward.inner)  # (ff_units, units)
        _set_linear(layer_spec.ffn.linear_1, layer.feed_forward.outer)  # (units, ff_units)
        _set_norm(layer_spec.ffn.layer_norm, layer.feed_forward_norm)
    if is_decoder:
        spec.start_from_zero_embedding = stack.zero_start
        if stack.output_projection is None:  # tied: logits = y Eᵀ (+ b)
            spec.projection.weight = embeddings  # (vocab, units)
            if stack.logits_bias is not None:
                spec.projection.bias = stack.logits_bias.numpy()  # (vocab,)
        else:
            _set_linear(spec.projection, stack.output_projection)  # (vocab, units)


def transformer_spec(model):
    """A filled `ctranslate2.specs.TransformerSpec` of a trained Transformer `Seq2Seq`."""
    ctranslate2 = import_ctranslate2()
    check_convertible(model)
    model_config = model.model_config
    spec = ctranslate2.specs.TransformerSpec.from_config(
        model_config.num_layers, model_config.num_heads, pre_norm=model_config.norm_first,
        activation=getattr(ctranslate2.specs.Activation,
                           CTRANSLATE2_ACTIVATIONS[model_config.ff_activation]))
    _set_stack(spec.encoder, model.encoder, is_decoder=False)
    _set_stack(spec.decoder, model.decoder, is_decoder=True)
    spec.config.unk_token, spec.config.bos_token, spec.config.eos_token = UNK, START, END
    spec.config.decoder_start_token = START
    spec.config.add_source_eos = True  # every source ends in [END], as in training
    spec.config.layer_norm_epsilon = float(model.encoder.layers_in_order[0].self_attention_norm.epsilon)
    spec.register_source_vocabulary(list(model.source_text.vocabulary.tokens))
    spec.register_target_vocabulary(list(model.target_text.vocabulary.tokens))
    return spec


def convert_model(model, output_dir, quantization=None):
    """Writes a trained Transformer `Seq2Seq` as a CTranslate2 model directory.

    Args:
        model: the `Seq2Seq` (e.g. `load_trained_model(checkpoint_dir)`, or
            `keras_s2s.restore.load_model_from_saved_model(path)`).
        output_dir: the directory to write; must not exist or be empty.
        quantization: None (float32 weights) or one of `QUANTIZATIONS`. A float32 model
            can still be loaded as int8 (`ctranslate2.Translator(..., compute_type="int8")`).

    Returns:
        `output_dir`.

    Raises:
        ValueError: an option CTranslate2 cannot express, a bad `quantization`, or an
            `output_dir` that holds files.
        ImportError: ctranslate2 is not installed (the `[ctranslate2]` extra).
    """
    ctranslate2 = import_ctranslate2()
    if quantization is not None and quantization not in QUANTIZATIONS:
        raise ValueError(f"quantization must be one of {QUANTIZATIONS}; got {quantization!r}.")
    if os.path.exists(output_dir) and os.listdir(output_dir):
        raise ValueError(f"output={output_dir!r} exists and is not empty; choose a new "
                         "directory so that no model is overwritten.")
    check_convertible(model)

    class KerasS2SConverter(ctranslate2.converters.Converter):
        def _load(self):
            return transformer_spec(model)

    KerasS2SConverter().convert(output_dir, quantization=quantization, force=True)
    config_lib.save_json(os.path.join(output_dir, "keras_s2s_config.json"), model=model.model_config)
    for side, text in (("source", model.source_text), ("target", model.target_text)):
        if text.vocabulary.sentencepiece_model is not None:
            with open(os.path.join(output_dir, f"{side}.spm"), "wb") as file:
                file.write(text.vocabulary.sentencepiece_model)
    return output_dir


def convert_saved_model(saved_model, output_dir, quantization=None):
    """`convert_model` for an exported SavedModel alone (its variables and assets/)."""
    import_ctranslate2()  # before minutes of rebuilding, not after
    from keras_s2s.restore import load_model_from_saved_model

    return convert_model(load_model_from_saved_model(saved_model), output_dir, quantization)


def token_log_probabilities(model, source_pieces, target_pieces):
    """Our model's teacher-forced log-probability of each target token, [END] included: one
    array of len(target) + 1 per sentence.

    What `ctranslate2.Translator.score_batch` gives (its `log_probs`) for the same pieces, so
    the two engines' scores of one output can be set side by side.

    Args:
        model: a `Seq2Seq`.
        source_pieces, target_pieces: one list of tokens per sentence ([END] left out).
    """
    import tensorflow as tf  # the converter itself needs only NumPy

    model_config = model.model_config
    # A source keeps a place for [END]; a target's [START] and [END] fit beside its tokens.
    for side, pieces, limit, room in (
            ("source", source_pieces, model_config.max_source_length, model_config.max_source_length - 1),
            ("target", target_pieces, model_config.max_target_length, model_config.max_target_length)):
        longest = max((len(tokens) for tokens in pieces), default=0)
        if longest > room:
            raise ValueError(f"A {side} of {longest} tokens is longer than the model takes "
                             f"({room}, from max_{side}_length={limit}).")
    ragged = tf.ragged.constant
    source_ids = model.source_text.ids_from_tokens(ragged(source_pieces, tf.string)).to_tensor()
    target_ids = model.target_text.ids_from_tokens(ragged(target_pieces, tf.string),
                                                   add_start=True).to_tensor()  # (batch, t + 1)
    logits, _ = model.forward(source_ids, target_ids[:, :-1])  # (batch, t, vocab)
    labels = target_ids[:, 1:]  # (batch, t)
    chosen = tf.gather(tf.nn.log_softmax(logits), labels, batch_dims=2).numpy()  # (batch, t)
    return [row[:len(target) + 1] for row, target in zip(chosen, target_pieces)]


def log_probabilities(model, source_pieces, target_pieces):
    """The sum of `token_log_probabilities` per sentence: (batch,)."""
    return np.array([scores.sum() for scores in
                     token_log_probabilities(model, source_pieces, target_pieces)])
