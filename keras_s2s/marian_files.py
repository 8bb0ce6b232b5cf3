"""A pretrained Marian Transformer's files, read into one form whichever layout holds them.

OPUS-MT releases its models (https://github.com/Helsinki-NLP/Opus-MT) in Marian's own layout,
and the same weights are mirrored in the Hugging Face layout:

    Marian                                   Hugging Face
    *.npz: weights by Marian's names, its    model.safetensors: the same weights under
        options as YAML (`special:model.yml`)    PyTorch names, (out, in) matrices
    *.vocab.yml: piece -> id                 vocab.json: piece -> id, with <pad> added
    decoder.yml: which files go together     config.json: the options
    source.spm, target.spm                   source.spm, target.spm

`read_marian(directory)` returns a `MarianFiles` in Marian's terms either way: its options
by Marian's names, its weights by Marian's names and shapes (W (in, out), biases (1, out)),
its pieces in id order, and the two SentencePiece models. `keras_s2s.pretrained` builds a
`Seq2Seq` from that. Files that are missing, damaged or truncated raise `ValueError` naming
the file; nothing here reads anything but local files.
"""

import json
import os
import zipfile
from typing import NamedTuple

import numpy as np

HUGGING_FACE_PAD = "<pad>"


class MarianFiles(NamedTuple):
    """One Marian model, as `read_marian` returns it."""

    options: dict  # Marian's option names (enc-depth, transformer-heads, ...) -> values
    weights: dict  # Marian's weight names -> float32 arrays, W (in, out) and b (1, out)
    pieces: list  # the vocabulary in id order: "</s>", "<unk>", then SentencePiece pieces
    source_spm: bytes  # the SentencePiece model that cuts source text
    target_spm: bytes  # the one that cuts target text (and joins the output's pieces)
    layout: str  # "marian" or "hugging-face"


def read_marian(directory):
    """Reads the Marian model in `directory`, in either layout (see the module docstring).

    Raises:
        ValueError: no model, several candidates, or a file that cannot be read; the message
            names the file and what was expected.
    """
    if not os.path.isdir(directory):
        raise ValueError(f"marian={directory!r} is not a directory.")
    spm = [_read_bytes(os.path.join(directory, name), "the SentencePiece model")
           for name in ("source.spm", "target.spm")]
    if os.path.exists(os.path.join(directory, "config.json")):
        options, weights, pieces = _read_hugging_face(directory)
        return MarianFiles(options, weights, pieces, *spm, "hugging-face")
    npz_path, vocab_path = marian_paths(directory)
    options, weights = read_npz(npz_path)
    return MarianFiles(options, weights, read_vocabulary_yaml(vocab_path), *spm, "marian")


def _read_bytes(path, what):
    if not os.path.isfile(path):
        raise ValueError(f"{path} is missing: a Marian model directory holds {what} there "
                         "(a model cut into pieces some other way is not supported).")
    with open(path, "rb") as file:
        return file.read()


def marian_paths(directory):
    """(model .npz, vocabulary .yml): from decoder.yml when there is one, else the only ones."""
    decoder_yml = os.path.join(directory, "decoder.yml")
    if os.path.isfile(decoder_yml):
        decoder = _load_yaml(_read_bytes(decoder_yml, "decoder.yml"), decoder_yml)
        models, vocabs = decoder.get("models") or [], decoder.get("vocabs") or []
        if len(models) != 1 or not vocabs or len(set(vocabs)) != 1:
            raise ValueError(f"{decoder_yml} names models {models} and vocabularies {vocabs}; "
                             "one model with one vocabulary shared by both sides is supported.")
        return os.path.join(directory, models[0]), os.path.join(directory, vocabs[0])
    found = {extension: sorted(name for name in os.listdir(directory) if name.endswith(extension))
             for extension in (".npz", ".vocab.yml")}
    for extension, names in found.items():
        if len(names) != 1:
            raise ValueError(f"{directory} holds {len(names)} {extension} files ({names}) and no "
                             "decoder.yml to say which is the model's; expected exactly one.")
    return tuple(os.path.join(directory, names[0]) for names in found.values())


def read_npz(path):
    """(options, weights) of a Marian model .npz; a damaged file is a ValueError naming it."""
    if not os.path.isfile(path):
        raise ValueError(f"{path} is missing.")
    try:
        with np.load(path, allow_pickle=False) as archive:
            arrays = {name: archive[name] for name in archive.files}
    except (zipfile.BadZipFile, ValueError, OSError, EOFError, KeyError) as error:
        raise ValueError(f"{path} is not a readable .npz (damaged or truncated?): {error}") from error
    if "special:model.yml" not in arrays:
        raise ValueError(f"{path} has no 'special:model.yml' entry: it is not a Marian model "
                         "(or was saved without its options).")
    options = _load_yaml(arrays.pop("special:model.yml").tobytes().rstrip(b"\0"), path)
    return options, {name: array.astype(np.float32) for name, array in arrays.items()}


def _load_yaml(text, path):
    import yaml

    try:
        loaded = yaml.safe_load(text)
    except yaml.YAMLError as error:
        raise ValueError(f"{path} holds YAML that cannot be parsed: {error}") from error
    if not isinstance(loaded, dict):
        raise ValueError(f"{path} holds no YAML mapping.")
    return loaded


def read_vocabulary_yaml(path):
    """Marian's vocabulary (piece: id lines) as the list of pieces in id order.

    Read with YAML's base loader, which keeps every key a string: the safe loader would
    turn pieces such as `no`, `on` or `null` into booleans and None, and lose some of them.
    """
    import yaml

    text = _read_bytes(path, "the vocabulary").decode("utf-8", errors="strict")
    try:
        entries = yaml.load(text, Loader=getattr(yaml, "CBaseLoader", yaml.BaseLoader))
    except yaml.YAMLError as error:
        raise ValueError(f"{path} holds YAML that cannot be parsed: {error}") from error
    if not isinstance(entries, dict):
        raise ValueError(f"{path} is not a piece: id mapping.")
    return _pieces_in_order(entries, path)


def _pieces_in_order(entries, path):
    """{piece: id} -> [piece by id], refusing gaps and repeated ids."""
    try:
        by_id = {int(index): piece for piece, index in entries.items()}
    except (TypeError, ValueError) as error:
        raise ValueError(f"{path} maps a piece to something other than an integer id.") from error
    if len(by_id) != len(entries) or sorted(by_id) != list(range(len(by_id))):
        raise ValueError(f"{path} does not number its {len(entries)} pieces 0..{len(entries) - 1} "
                         "once each.")
    return [by_id[index] for index in range(len(by_id))]


# Hugging Face's Marian layout -> Marian's names (per layer; `{side}` is encoder or decoder).
_HF_ATTENTIONS = {"self_attn": "self", "encoder_attn": "context"}
_HF_PROJECTIONS = {"q_proj": "q", "k_proj": "k", "v_proj": "v", "out_proj": "o"}


def _read_hugging_face(directory):
    config_path = os.path.join(directory, "config.json")
    try:
        with open(config_path, encoding="utf-8") as file:
            config = json.load(file)
        with open(os.path.join(directory, "vocab.json"), encoding="utf-8") as file:
            vocabulary = json.load(file)
    except FileNotFoundError as error:
        raise ValueError(f"{error.filename} is missing: a Hugging Face Marian directory holds "
                         "config.json, vocab.json, model.safetensors, source.spm, target.spm.") from error
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise ValueError(f"{directory} holds a config.json or vocab.json that is not JSON: "
                         f"{error}") from error
    if config.get("model_type") != "marian":
        raise ValueError(f"{config_path} has model_type={config.get('model_type')!r}; only "
                         "'marian' models are read.")
    pieces = _pieces_in_order(vocabulary, os.path.join(directory, "vocab.json"))
    pad_id = config.get("pad_token_id")
    if pad_id != len(pieces) - 1 or pieces[-1] != HUGGING_FACE_PAD:
        raise ValueError(f"config.json's pad_token_id={pad_id} is not vocab.json's last piece "
                         f"{HUGGING_FACE_PAD!r}; Marian models mirrored by Hugging Face add it last.")
    options = _hugging_face_options(config)
    weights = _marian_weights(_read_safetensors(directory), options, pad_id)
    return options, weights, pieces[:pad_id]


def _read_safetensors(directory):
    path = os.path.join(directory, "model.safetensors")
    if not os.path.isfile(path):
        other = [name for name in ("pytorch_model.bin", "tf_model.h5")
                 if os.path.exists(os.path.join(directory, name))]
        raise ValueError(f"{path} is missing{' (there is only ' + ', '.join(other) + ')' if other else ''}: "
                         "the weights are read from model.safetensors, which needs no PyTorch.")
    from safetensors import SafetensorError
    from safetensors.numpy import load_file

    try:
        return load_file(path)
    except (SafetensorError, OSError, ValueError) as error:
        raise ValueError(f"{path} cannot be read (damaged or truncated?): {error}") from error


def _hugging_face_options(config):
    """config.json's fields under the Marian option names they come from."""
    if not config.get("scale_embedding", False) or config.get("normalize_embedding", False):
        raise ValueError("config.json has scale_embedding=False or normalize_embedding=True; "
                         "Marian Transformers scale their embeddings and do not normalise them.")
    if config.get("share_encoder_decoder_embeddings", True) is False:
        raise ValueError("config.json has share_encoder_decoder_embeddings=False; only models "
                         "with one vocabulary for both sides (tied-embeddings-all) are read.")
    return {
        "type": "transformer", "enc-depth": config["encoder_layers"],
        "dec-depth": config["decoder_layers"], "dim-emb": config["d_model"],
        "transformer-heads": config["encoder_attention_heads"],
        "decoder-heads": config["decoder_attention_heads"],
        "transformer-dim-ffn": config["encoder_ffn_dim"],
        "decoder-dim-ffn": config["decoder_ffn_dim"],
        # Hugging Face's "gelu" is the exact GELU, which its Marian models then compute.
        "transformer-ffn-activation": {"gelu": "gelu-exact"}.get(
            config["activation_function"], config["activation_function"]),
        "transformer-preprocess": "", "transformer-postprocess": "dan",
        "transformer-postprocess-emb": "d", "tied-embeddings-all": True,
        "transformer-dropout": config.get("dropout", 0.1),
        "transformer-dropout-attention": config.get("attention_dropout", 0.0),
        "max-length": config.get("max_position_embeddings", 512),
    }


def _marian_weights(tensors, options, pad_id):
    """Hugging Face tensors -> Marian's names and shapes (the pad row and bias dropped)."""
    tensors = {name.removeprefix("model."): np.asarray(value, np.float32)
               for name, value in tensors.items()}
    weights = {}

    def take(name):
        if name not in tensors:
            raise ValueError(f"model.safetensors has no tensor {name!r}.")
        return tensors[name]

    weights["Wemb"] = take("shared.weight")[:pad_id]  # (vocab, units)
    weights["decoder_ff_logit_out_b"] = take("final_logits_bias")[:, :pad_id]  # (1, vocab)
    for side, depth in (("encoder", options["enc-depth"]), ("decoder", options["dec-depth"])):
        for index in range(depth):
            hf, marian = f"{side}.layers.{index}.", f"{side}_l{index + 1}_"
            for attention, name in _HF_ATTENTIONS.items():
                if side == "encoder" and attention == "encoder_attn":
                    continue
                for projection, suffix in _HF_PROJECTIONS.items():
                    weights[f"{marian}{name}_W{suffix}"] = take(f"{hf}{attention}.{projection}.weight").T
                    weights[f"{marian}{name}_b{suffix}"] = take(f"{hf}{attention}.{projection}.bias")[None]
                weights[f"{marian}{name}_Wo_ln_scale"] = take(f"{hf}{attention}_layer_norm.weight")[None]
                weights[f"{marian}{name}_Wo_ln_bias"] = take(f"{hf}{attention}_layer_norm.bias")[None]
            for number in (1, 2):
                weights[f"{marian}ffn_W{number}"] = take(f"{hf}fc{number}.weight").T
                weights[f"{marian}ffn_b{number}"] = take(f"{hf}fc{number}.bias")[None]
            weights[f"{marian}ffn_ffn_ln_scale"] = take(f"{hf}final_layer_norm.weight")[None]
            weights[f"{marian}ffn_ffn_ln_bias"] = take(f"{hf}final_layer_norm.bias")[None]
    return weights
