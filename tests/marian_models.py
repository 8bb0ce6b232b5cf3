"""Small random Marian Transformers written in both of their layouts, for the import tests.

`write_marian_model` trains two SentencePiece models on the embedded toy-ko task (Korean
sources, English targets) as OPUS-MT trains its source.spm and target.spm, builds Marian's
joint vocabulary of their pieces, draws every weight at random (so that a weight put in the
wrong place changes the outputs) and writes them as Marian does (model.npz with its
`special:model.yml`, vocab.yml, decoder.yml). `write_hugging_face_mirror` writes the same
weights as Hugging Face mirrors Marian models (config.json, model.safetensors, vocab.json).
"""

import io
import json
import os

import numpy as np
import yaml

from keras_s2s import tasks

SOURCE_SENTENCES, TARGET_SENTENCES = zip(*tasks.generate_pairs("toy-ko", 400, seed=3))
MAX_LENGTH = 16  # pieces a translation may have, on both engines


def _sentencepiece(sentences, vocab_size):
    import sentencepiece

    model = io.BytesIO()
    sentencepiece.SentencePieceTrainer.train(
        sentence_iterator=iter(sentences), model_writer=model, vocab_size=vocab_size,
        model_type="unigram", hard_vocab_limit=False, character_coverage=1.0, minloglevel=2,
        num_threads=1)
    return model.getvalue()


def _pieces(spm):
    import sentencepiece

    processor = sentencepiece.SentencePieceProcessor(model_proto=spm)
    return [processor.id_to_piece(index) for index in range(processor.get_piece_size())
            if not (processor.is_control(index) or processor.is_unknown(index))]


def marian_options(units=16, layers=2, heads=2, ff_units=32, activation="swish", pre_norm=False,
                   vocab_size=0, **other):
    """A Marian Transformer's `special:model.yml` options, as Marian writes them."""
    return {
        "type": "transformer", "enc-depth": layers, "dec-depth": layers, "dim-emb": units,
        "dim-vocabs": [vocab_size, vocab_size], "transformer-heads": heads,
        "transformer-dim-ffn": ff_units, "transformer-ffn-depth": 2,
        "transformer-ffn-activation": activation,
        "transformer-preprocess": "n" if pre_norm else "",
        "transformer-postprocess": "da" if pre_norm else "dan",
        "transformer-postprocess-top": "n" if pre_norm else "",
        "transformer-postprocess-emb": "d", "transformer-decoder-autoreg": "self-attention",
        "transformer-no-projection": False, "transformer-guided-alignment-layer": "last",
        "tied-embeddings-all": True, "transformer-dropout": 0.1, **other}


def random_weights(options, vocab_size, seed=0):
    """Every weight a Marian Transformer with `options` has, drawn at random."""
    rng = np.random.default_rng(seed)
    units, ff_units = options["dim-emb"], options["transformer-dim-ffn"]
    suffix = "_pre" if options["transformer-preprocess"] == "n" else ""

    def normal(*shape, scale=0.3):
        return rng.normal(0, scale, shape).astype(np.float32)

    weights = {"Wemb": normal(vocab_size, units), "decoder_ff_logit_out_b": normal(1, vocab_size)}

    def norm(prefix):
        weights[f"{prefix}_scale{suffix}"] = 1 + normal(1, units, scale=0.1)
        weights[f"{prefix}_bias{suffix}"] = normal(1, units, scale=0.1)

    for side in ("encoder", "decoder"):
        for number in range(1, options["enc-depth"] + 1):
            prefix = f"{side}_l{number}_"
            for block in ("self", "context") if side == "decoder" else ("self",):
                for letter in "qkvo":
                    weights[f"{prefix}{block}_W{letter}"] = normal(units, units)
                    weights[f"{prefix}{block}_b{letter}"] = normal(1, units, scale=0.1)
                norm(f"{prefix}{block}_Wo_ln")
            weights[f"{prefix}ffn_W1"] = normal(units, ff_units)
            weights[f"{prefix}ffn_b1"] = normal(1, ff_units, scale=0.1)
            weights[f"{prefix}ffn_W2"] = normal(ff_units, units)
            weights[f"{prefix}ffn_b2"] = normal(1, units, scale=0.1)
            norm(f"{prefix}ffn_ffn_ln")
        if suffix:
            weights[f"{side}_top_ln_scale"] = 1 + normal(1, units, scale=0.1)
            weights[f"{side}_top_ln_bias"] = normal(1, units, scale=0.1)
    return weights


def write_marian_model(directory, seed=0, pairs=None, **option_changes):
    """Writes a random Marian model (model.npz, vocab.yml, decoder.yml, source.spm,
    target.spm) into `directory`, its SentencePiece models learned from `pairs` (by default
    400 toy-ko pairs); returns (options, weights, pieces)."""
    os.makedirs(directory, exist_ok=True)
    sources, targets = zip(*pairs) if pairs else (SOURCE_SENTENCES, TARGET_SENTENCES)
    source_spm = _sentencepiece(sources, 200)
    target_spm = _sentencepiece(targets, 200)
    pieces = ["</s>", "<unk>"] + sorted(set(_pieces(source_spm)) | set(_pieces(target_spm)))
    options = marian_options(vocab_size=len(pieces), **option_changes)
    weights = random_weights(options, len(pieces), seed)
    model_yml = yaml.safe_dump(options, sort_keys=False).encode("utf-8") + b"\0"
    np.savez(os.path.join(directory, "model.npz"), **weights,
             **{"special:model.yml": np.frombuffer(model_yml, np.int8)})
    with open(os.path.join(directory, "vocab.yml"), "w", encoding="utf-8") as file:
        yaml.safe_dump({piece: index for index, piece in enumerate(pieces)}, file,
                       allow_unicode=True, sort_keys=False, width=1000)
    with open(os.path.join(directory, "decoder.yml"), "w", encoding="utf-8") as file:
        yaml.safe_dump({"models": ["model.npz"], "vocabs": ["vocab.yml", "vocab.yml"],
                        "beam-size": 4, "normalize": 0.6}, file)
    for name, spm in (("source.spm", source_spm), ("target.spm", target_spm)):
        with open(os.path.join(directory, name), "wb") as file:
            file.write(spm)
    return options, weights, pieces


_HF_NAMES = {"self": "self_attn", "context": "encoder_attn"}


def write_hugging_face_mirror(marian_directory, directory):
    """Writes the Marian model in `marian_directory` as Hugging Face mirrors it (post-norm)."""
    from safetensors.numpy import save_file

    from keras_s2s.marian_files import read_npz, read_vocabulary_yaml

    options, weights = read_npz(os.path.join(marian_directory, "model.npz"))
    pieces = read_vocabulary_yaml(os.path.join(marian_directory, "vocab.yml")) + ["<pad>"]
    pad = len(pieces) - 1
    units = options["dim-emb"]
    tensors = {
        "model.shared.weight": np.concatenate([weights["Wemb"], np.zeros((1, units), np.float32)]),
        "final_logits_bias": np.concatenate([weights["decoder_ff_logit_out_b"],
                                             np.zeros((1, 1), np.float32)], axis=1)}
    for side in ("encoder", "decoder"):
        for index in range(options["enc-depth"]):
            marian, hf = f"{side}_l{index + 1}_", f"model.{side}.layers.{index}."
            for block in ("self", "context") if side == "decoder" else ("self",):
                name = _HF_NAMES[block]
                for letter, projection in zip("qkvo", ("q_proj", "k_proj", "v_proj", "out_proj")):
                    kernel, bias = (weights[f"{marian}{block}_{kind}{letter}"] for kind in "Wb")
                    tensors[f"{hf}{name}.{projection}.weight"] = kernel.T.copy()  # (out, in)
                    tensors[f"{hf}{name}.{projection}.bias"] = bias[0]
                tensors[f"{hf}{name}_layer_norm.weight"] = weights[f"{marian}{block}_Wo_ln_scale"][0]
                tensors[f"{hf}{name}_layer_norm.bias"] = weights[f"{marian}{block}_Wo_ln_bias"][0]
            for number in (1, 2):
                tensors[f"{hf}fc{number}.weight"] = weights[f"{marian}ffn_W{number}"].T.copy()
                tensors[f"{hf}fc{number}.bias"] = weights[f"{marian}ffn_b{number}"][0]
            tensors[f"{hf}final_layer_norm.weight"] = weights[f"{marian}ffn_ffn_ln_scale"][0]
            tensors[f"{hf}final_layer_norm.bias"] = weights[f"{marian}ffn_ffn_ln_bias"][0]
    os.makedirs(directory, exist_ok=True)
    save_file(tensors, os.path.join(directory, "model.safetensors"))
    config = {
        "model_type": "marian", "d_model": units, "encoder_layers": options["enc-depth"],
        "decoder_layers": options["dec-depth"], "encoder_attention_heads": options["transformer-heads"],
        "decoder_attention_heads": options["transformer-heads"],
        "encoder_ffn_dim": options["transformer-dim-ffn"],
        "decoder_ffn_dim": options["transformer-dim-ffn"],
        "activation_function": options["transformer-ffn-activation"], "scale_embedding": True,
        "share_encoder_decoder_embeddings": True, "vocab_size": len(pieces), "pad_token_id": pad,
        "eos_token_id": 0, "decoder_start_token_id": pad, "max_position_embeddings": 512}
    with open(os.path.join(directory, "config.json"), "w", encoding="utf-8") as file:
        json.dump(config, file, indent=2)
    with open(os.path.join(directory, "vocab.json"), "w", encoding="utf-8") as file:
        json.dump({piece: index for index, piece in enumerate(pieces)}, file, ensure_ascii=False)
    for name in ("source.spm", "target.spm"):
        with open(os.path.join(marian_directory, name), "rb") as source:
            with open(os.path.join(directory, name), "wb") as target:
                target.write(source.read())


def source_pieces(directory, sentences):
    import sentencepiece

    processor = sentencepiece.SentencePieceProcessor(
        model_file=os.path.join(directory, "source.spm"))
    return [processor.encode(sentence, out_type=str) for sentence in sentences]


def agreement_with_ctranslate2(directory, tmp_path, sentences):
    """Greedy pieces (ours, CTranslate2's) and the log-probability of each token of
    CTranslate2's outputs, [END] included (ours, CTranslate2's), for the Marian model in
    `directory`, translated by keras_s2s's import and by CTranslate2's own converter."""
    import ctranslate2
    import tensorflow as tf

    from keras_s2s import ctranslate2_export
    from keras_s2s.pretrained import MARIAN_UNK, load_marian
    from keras_s2s.text import END, UNK

    model = load_marian(directory, max_length=64)  # room for every source; outputs stop at MAX_LENGTH
    converted = str(tmp_path / "ctranslate2")
    ctranslate2.converters.MarianConverter(os.path.join(directory, "model.npz"),
                                           [os.path.join(directory, "vocab.yml")]).convert(converted)
    translator = ctranslate2.Translator(converted)
    pieces = source_pieces(directory, sentences)
    theirs = [result.hypotheses[0] for result in translator.translate_batch(
        pieces, beam_size=1, max_decoding_length=MAX_LENGTH)]
    outputs = model.translator(max_length=MAX_LENGTH).greedy(tf.constant(sentences))
    ours = [[piece.decode() for piece in row if piece]
            for row in outputs["target_tokens"].numpy().tolist()]
    ours = [row[:row.index(END)] if END in row else row for row in ours]
    # The unknown piece is Marian's <unk> there and [UNK] here (a random model emits it).
    ours = [[MARIAN_UNK if piece == UNK else piece for piece in row] for row in ours]
    their_scores = [np.array(result.log_probs) for result in
                    translator.score_batch(pieces, theirs)]
    our_scores = ctranslate2_export.token_log_probabilities(model, pieces, theirs)
    return ours, theirs, np.concatenate(our_scores), np.concatenate(their_scores)
