"""Pretrained Marian translators (OPUS-MT) as a `Seq2Seq`: translate, fine-tune, export.

A Marian Transformer is this package's Transformer with a few options set
(`ModelConfig`): post-norm (or pre-norm) blocks, a swish, GELU or ReLU feed-forward, one
vocabulary and one embedding matrix for source, target and output, a bias on the logits, a
position table that puts every sine before every cosine (imported as a fixed table,
`positional="stored"`), and a decoder that starts from a zero vector instead of a start
token (`decoder_start="zeros"`). Its weights map one to one:

    Marian (W (in, out), b (1, out))          keras_s2s
    Wemb (pieces, units)                      shared_embedding rows, re-ordered (below)
    {side}_l{i}_self_W{q,k,v,o}, _b{...}      layer_{i-1}.self_attention W_{q,k,v,o}
    decoder_l{i}_context_W{q,k,v,o}, ...      layer_{i-1}.cross_attention
    ..._Wo_ln_scale/_bias[_pre]               self/cross_attention_norm γ, β
    {side}_l{i}_ffn_W1, _b1, _W2, _b2         feed_forward W_1, W_2
    ..._ffn_ffn_ln_scale/_bias[_pre]          feed_forward_norm
    {side}_top_ln_scale/_bias (pre-norm)      final_norm
    decoder_ff_logit_out_b                    decoder logits_bias

Marian numbers its pieces "</s>" 0, "<unk>" 1, then the SentencePiece pieces; this package
puts [PAD] [UNK] [START] [END] first. The import re-orders the embedding rows and biases
accordingly: "</s>" becomes [END], "<unk>" [UNK], and [PAD] and [START], which Marian does not
have, get zero rows and a logit bias of `NEVER_PREDICTED`, so that no search picks them and
every other token's probability is Marian's. Each side keeps its own SentencePiece model
(source.spm, target.spm); both cut text into pieces of the one vocabulary.

Reference:
    Junczys-Dowmunt et al. Marian: Fast Neural Machine Translation in C++. ACL 2018.
    Tiedemann and Thottingal. OPUS-MT: Building open translation services for the World.
    EAMT 2020.
"""

import os

import numpy as np

from keras_s2s.config import ModelConfig
from keras_s2s.marian_files import read_marian
from keras_s2s.model import Seq2Seq
from keras_s2s.text import END, PAD, SPECIAL_TOKENS, START, UNK, Vocabulary

# Marian's own names of its end and unknown pieces.
MARIAN_END, MARIAN_UNK = "</s>", "<unk>"
# The logit bias of [PAD] and [START]: low enough that their probability is below float32's
# smallest step next to any real token's, and not so low that label smoothing, which gives
# every token a share of the target, turns it into a large loss when fine-tuning.
NEVER_PREDICTED = -100.0
# Marian's activation names -> ModelConfig.ff_activation ("gelu-exact" is what Hugging
# Face's mirrors of Marian models compute for "gelu").
_ACTIVATIONS = {"relu": "relu", "swish": "swish", "gelu": "gelu-sigmoid", "gelu-exact": "gelu"}


def load_marian(directory, max_length=256, beam_size=4, length_penalty=0.6):
    """A `Seq2Seq` holding the Marian model in `directory` (either layout, `marian_files`).

    Args:
        directory: a Marian model directory (model .npz, *.vocab.yml, source.spm,
            target.spm) or its Hugging Face mirror (config.json, model.safetensors, vocab.json,
            source.spm, target.spm). Only local files are read.
        max_length: the most pieces a source is cut to and a translation may have.
        beam_size, length_penalty: the model's default decoding.

    Returns:
        A `Seq2Seq` that translates as the Marian model does; `fit` continues training it.

    Raises:
        ValueError: an option this package's Transformer cannot express (named), or a
            missing, damaged or truncated file (named).
    """
    files = read_marian(directory)
    options = files.options
    _check_expressible(options, files.weights)
    tokens, marian_ids = _vocabulary_order(files.pieces)
    units = int(options["dim-emb"])
    config = ModelConfig(
        source_tokenizer="sentencepiece", target_tokenizer="sentencepiece", lowercase=False,
        max_source_vocab=len(tokens), max_target_vocab=len(tokens),
        max_source_length=max_length, max_target_length=max_length, architecture="transformer",
        units=units, num_layers=int(options["enc-depth"]),
        num_heads=int(options["transformer-heads"]), ff_units=int(options["transformer-dim-ffn"]),
        norm_first=_is_pre_norm(options), positional="stored",
        ff_activation=_ACTIVATIONS[_activation(options)],
        dropout=float(options.get("transformer-dropout", 0.1)),
        attention_dropout=float(options.get("transformer-dropout-attention", 0.0)),
        share_embeddings=True, output_bias=True, decoder_start="zeros", beam_size=beam_size,
        length_penalty=length_penalty)
    model = Seq2Seq(config, Vocabulary(tokens, files.source_spm),
                    Vocabulary(tokens, files.target_spm))
    _assign(model, files.weights, marian_ids)
    return model


def load_pretrained(directory):
    """The model to fine-tune from `directory`: a Marian model (`load_marian`), or the
    directory of a `keras-s2s train` or `keras-s2s import --checkpoint-dir` run."""
    import tensorflow as tf

    from keras_s2s.training import load_trained_model

    if os.path.isdir(directory) and tf.train.get_checkpoint_state(directory) is not None:
        return load_trained_model(directory)
    return load_marian(directory)


def save_as_run(model, directory):
    """Writes `model` as a run directory (config.json, vocabularies, checkpoint ckpt-0) that
    `load_trained_model`, `keras-s2s evaluate/translate/export --checkpoint-dir` and
    `keras-s2s train --from-pretrained` read."""
    import tensorflow as tf

    model.save_spec(directory)
    manager = tf.train.CheckpointManager(tf.train.Checkpoint(model=model), directory, max_to_keep=1)
    return manager.save(checkpoint_number=0)


def _activation(options):
    return options.get("transformer-ffn-activation", "swish")  # Marian's default


def _is_pre_norm(options):
    return "n" in options.get("transformer-preprocess", "")


def _check_expressible(options, weights):
    """Raises ValueError naming the first Marian option this package cannot express."""
    def refuse(option, value, reason):
        raise ValueError(f"This Marian model has {option}={value!r}: {reason}")

    model_type = options.get("type")
    if model_type != "transformer":
        refuse("type", model_type, "only Transformers are imported (an RNN-type Marian model "
               "is not a Transformer).")
    for option in ("enc-depth", "dec-depth", "dim-emb", "transformer-heads", "transformer-dim-ffn"):
        if option not in options:
            raise ValueError(f"This Marian model's options lack {option!r}.")
    if options["enc-depth"] != options["dec-depth"]:
        refuse("dec-depth", options["dec-depth"], f"the decoder must have as many layers as the "
               f"encoder ({options['enc-depth']}) here.")
    for option, same_as in (("decoder-heads", "transformer-heads"),
                            ("decoder-dim-ffn", "transformer-dim-ffn")):
        if options.get(option, options[same_as]) != options[same_as]:
            refuse(option, options[option], f"it must equal {same_as} ({options[same_as]}).")
    activation = _activation(options)
    if activation not in _ACTIVATIONS:
        refuse("transformer-ffn-activation", activation, "relu, swish or gelu is needed.")
    layout = (options.get("transformer-preprocess", ""), options.get("transformer-postprocess", "dan"),
              options.get("transformer-postprocess-top", ""))
    if layout not in (("", "dan", ""), ("n", "da", "n")):
        refuse("transformer-preprocess/postprocess/postprocess-top", "/".join(layout),
               "post-norm (''/dan/'') and pre-norm (n/da/n) are the layouts imported.")
    expected = {
        "transformer-postprocess-emb": ("d", "", "normalising the embeddings is not a layer "
                                        "this package's Transformer has."),
        "transformer-decoder-autoreg": ("self-attention", None, "the decoder must read its "
                                        "earlier outputs by self-attention."),
        "transformer-ffn-depth": (2, None, "the feed-forward networks must have two layers."),
        "transformer-no-projection": (False, None, "the attention output projection is needed."),
        "transformer-tied-layers": ([], None, "layers that share weights are not imported."),
        "tied-embeddings-all": (True, None, "one vocabulary and one embedding matrix for "
                                "source, target and output is what is imported."),
        "factors-combine": ("sum", None, "factored vocabularies are not imported."),
    }
    for option, (default, also_allowed, reason) in expected.items():
        value = options.get(option, default)
        if value != default and value != also_allowed:
            refuse(option, value, reason)
    if any("factor" in name for name in weights):
        raise ValueError("This Marian model has factor embeddings: factored vocabularies are "
                         "not imported.")
    # Guided alignment (OPUS-MT's "transformer-align" models) only adds a training loss on
    # one cross-attention head; the layers that translate are the same, so it is imported.


def _vocabulary_order(pieces):
    """(this package's tokens, the Marian id of each; None for [PAD] and [START])."""
    for piece in (MARIAN_END, MARIAN_UNK):
        if piece not in pieces:
            raise ValueError(f"The Marian vocabulary has no {piece!r} piece.")
    clashes = sorted(set(pieces) & set(SPECIAL_TOKENS))
    if clashes:
        raise ValueError(f"The Marian vocabulary holds {clashes}, this package's special tokens.")
    marian_id = {piece: index for index, piece in enumerate(pieces)}
    special_ids = {PAD: None, UNK: marian_id[MARIAN_UNK], START: None, END: marian_id[MARIAN_END]}
    ordinary = [piece for piece in pieces if piece not in (MARIAN_END, MARIAN_UNK)]
    return (list(SPECIAL_TOKENS) + ordinary,
            [special_ids[token] for token in SPECIAL_TOKENS] + [marian_id[piece] for piece in ordinary])


def marian_position_table(length, units):
    """The (length, units) sinusoidal table with every sine before every cosine.

    PE[i, k] = sin(i / 10000^(2k / units)) and PE[i, units/2 + k] = cos(...) for k < units/2:
    the table CTranslate2 and Hugging Face give Marian models, where
    `positional_encoding.sinusoidal_table` interleaves the same columns.
    """
    positions = np.arange(length)[:, np.newaxis]  # (length, 1)
    frequencies = 1.0 / np.power(10000.0, np.arange(0, units, 2) / units)  # (units / 2,)
    angles = positions * frequencies  # (length, units / 2)
    return np.concatenate([np.sin(angles), np.cos(angles)], axis=1).astype(np.float32)


def _rows(matrix, marian_ids, fill):
    """Rows (or columns of a (1, n) bias) in this package's order; `fill` where Marian has none."""
    matrix = np.asarray(matrix, np.float32)
    if matrix.ndim == 2 and matrix.shape[0] == 1:  # a (1, pieces) bias
        return np.array([matrix[0, index] if index is not None else fill
                         for index in marian_ids], np.float32)
    ordered = np.zeros((len(marian_ids), matrix.shape[1]), np.float32)
    for row, index in enumerate(marian_ids):
        if index is not None:
            ordered[row] = matrix[index]
    return ordered


def _assign(model, weights, marian_ids):
    """Sets every weight of `model` from Marian's, checking each name and shape."""
    used = set()

    def take(name, shape):
        if name not in weights:
            raise ValueError(f"The Marian model has no weight {name!r}.")
        value = weights[name]
        if value.size != np.prod(shape):
            raise ValueError(f"The Marian weight {name!r} has shape {value.shape}; {shape} "
                             "was expected.")
        used.add(name)
        return value.reshape(shape)

    embedding = model.encoder.embedding
    units = embedding.units
    pieces = len([index for index in marian_ids if index is not None])
    embedding.embedding.embeddings.assign(_rows(take("Wemb", (pieces, units)), marian_ids, 0.0))
    table = weights.get("Wpos")
    embedding.position_table.assign(
        table[:embedding.max_length] if table is not None
        else marian_position_table(embedding.max_length, units))
    used.add("Wpos")
    model.decoder.logits_bias.assign(_rows(take("decoder_ff_logit_out_b", (1, pieces)),
                                           marian_ids, NEVER_PREDICTED))
    suffix = "_pre" if model.model_config.norm_first else ""
    for side, stack in (("encoder", model.encoder), ("decoder", model.decoder)):
        for number, layer in enumerate(stack.layers_in_order, start=1):
            prefix = f"{side}_l{number}_"
            blocks = [("self", layer.self_attention, layer.self_attention_norm)]
            if side == "decoder":
                blocks.append(("context", layer.cross_attention, layer.cross_attention_norm))
            for name, attention, norm in blocks:
                for letter, dense in (("q", attention.query_projection), ("k", attention.key_projection),
                                      ("v", attention.value_projection), ("o", attention.output_projection)):
                    dense.kernel.assign(take(f"{prefix}{name}_W{letter}", (units, units)))
                    dense.bias.assign(take(f"{prefix}{name}_b{letter}", (units,)))
                _assign_norm(norm, take, f"{prefix}{name}_Wo_ln", suffix, units)
            feed_forward = layer.feed_forward
            ff_units = feed_forward.ff_units
            feed_forward.inner.kernel.assign(take(f"{prefix}ffn_W1", (units, ff_units)))
            feed_forward.inner.bias.assign(take(f"{prefix}ffn_b1", (ff_units,)))
            feed_forward.outer.kernel.assign(take(f"{prefix}ffn_W2", (ff_units, units)))
            feed_forward.outer.bias.assign(take(f"{prefix}ffn_b2", (units,)))
            _assign_norm(layer.feed_forward_norm, take, f"{prefix}ffn_ffn_ln", suffix, units)
        if stack.final_norm is not None:
            _assign_norm(stack.final_norm, take, f"{side}_top_ln", "", units)
    left = sorted(name for name in weights if name not in used and not name.startswith("special:"))
    if left:
        raise ValueError(f"The Marian model holds weights this import has no place for: {left[:5]}")


def _assign_norm(norm, take, prefix, suffix, units):
    norm.gamma.assign(take(f"{prefix}_scale{suffix}", (units,)))
    norm.beta.assign(take(f"{prefix}_bias{suffix}", (units,)))
