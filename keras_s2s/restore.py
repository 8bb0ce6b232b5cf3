"""A trained `Seq2Seq` rebuilt from an exported SavedModel alone, without its checkpoint.

An export written by `Translator.save` carries everything the model was built from:

    assets/config.json                 the ModelConfig
    assets/source_vocab.txt, target_vocab.txt   one token a line, in id order
    saved_model.pb                     the graph; a SentencePiece model is an attribute of its
                                       `SentencepieceOp` nodes, not a file
    variables/                         the weights, as `serving_variables/<i>`; the object
                                       graph in saved_model.pb names each by its layer path

So the model is rebuilt from its config and vocabularies, and each weight is given the saved
value of the same path. Nothing here runs the exported graph, so loading needs neither its
functions traced nor TensorFlow Text's ops.
"""

import contextlib
import os

import tensorflow as tf
from google.protobuf.message import DecodeError
from tensorflow.core.protobuf import saved_model_pb2

from keras_s2s import config as config_lib
from keras_s2s.text import Vocabulary


# What reading a damaged SavedModel raises, layer by layer: the file system, the protobuf
# parser, TensorFlow's checkpoint reader, and Python on a file that parsed but holds nothing.
_DAMAGE = (OSError, DecodeError, tf.errors.OpError, IndexError, KeyError)


@contextlib.contextmanager
def damage_reported(path, what="saved_model"):
    """Turns the errors of reading a damaged SavedModel into one ValueError naming `path`."""
    try:
        yield
    except _DAMAGE as error:
        if "Op type not registered" in str(error):  # an install without an op, not a bad file
            raise
        lines = str(error).strip().splitlines()
        reason = f"{type(error).__name__}: {lines[0]}" if lines else type(error).__name__
        raise ValueError(f"{what}={path!r} is not a readable SavedModel ({reason}); a file of "
                         "it is missing, truncated or damaged: export it again.") from error


def _read_proto(path):
    pb_path = os.path.join(path, "saved_model.pb")
    if not os.path.exists(pb_path):
        raise ValueError(f"No SavedModel at saved_model={path!r} (expected {pb_path}).")
    proto = saved_model_pb2.SavedModel()
    with open(pb_path, "rb") as file:
        proto.ParseFromString(file.read())
    return proto


def _relative_name(name):
    """'seq2_seq_3/encoder/layer_0/W_q/kernel:0' -> 'encoder/layer_0/W_q/kernel'.

    The model's own name differs between sessions (Keras numbers repeated names), so it is
    left out of the key.
    """
    return name.split(":")[0].split("/", 1)[-1]


def saved_model_variables(path):
    """The weights of an export: {layer path below the model: NumPy array}."""
    objects = _read_proto(path).meta_graphs[0].object_graph_def
    children = {child.local_name: child.node_id for child in objects.nodes[0].children}
    if "serving_variables" not in children:
        raise ValueError(f"saved_model={path!r} has no serving_variables: it was not "
                         "written by keras_s2s's Translator.save.")
    reader = tf.train.load_checkpoint(os.path.join(path, "variables", "variables"))
    values = {}
    for child in objects.nodes[children["serving_variables"]].children:
        name = objects.nodes[child.node_id].variable.name
        key = f"serving_variables/{child.local_name}/.ATTRIBUTES/VARIABLE_VALUE"
        values[_relative_name(name)] = reader.get_tensor(key)
    return values


def sentencepiece_models(path):
    """Every distinct serialized SentencePiece model held in the export's graph (bytes)."""
    models = set()
    for function in _read_proto(path).meta_graphs[0].graph_def.library.function:
        for node in function.node_def:
            if node.op == "SentencepieceOp":
                models.add(node.attr["model"].s)
    return models


def _vocabulary(vocab_path, kind, models):
    with open(vocab_path, encoding="utf-8") as file:
        tokens = file.read().splitlines()
    if kind != "sentencepiece":
        return Vocabulary(tokens)
    # The graph does not say which side a model belongs to; its pieces do.
    for model in models:
        if Vocabulary.from_sentencepiece(model).tokens == tokens:
            return Vocabulary(tokens, sentencepiece_model=model)
    raise ValueError(f"No SentencePiece model in the graph has the pieces of {vocab_path}.")


def load_model_from_saved_model(path):
    """Rebuilds the `Seq2Seq` an export was made from, with the export's weights.

    Args:
        path: a SavedModel directory written by `Translator.save` (`keras-s2s export`).

    Returns:
        The `Seq2Seq`, ready to translate, score or export again.

    Raises:
        ValueError: if `path` is no keras_s2s export, or its weights do not fit its config.
    """
    from keras_s2s.model import Seq2Seq  # model.py imports TensorFlow's layers; only here

    if not os.path.exists(os.path.join(path, "saved_model.pb")):
        raise ValueError(f"No SavedModel at saved_model={path!r} (expected "
                         f"{os.path.join(path, 'saved_model.pb')}).")
    config_path = os.path.join(path, "assets", "config.json")
    if not os.path.exists(config_path):
        raise ValueError(f"saved_model={path!r} is a SavedModel but not a keras_s2s export "
                         f"(it has no {os.path.join('assets', 'config.json')}).")
    model_config, _ = config_lib.load_json(config_path)
    with damage_reported(path):
        models = sentencepiece_models(path)
        vocabularies = [_vocabulary(os.path.join(path, "assets", f"{side}_vocab.txt"), kind, models)
                        for side, kind in (("source", model_config.source_tokenizer),
                                           ("target", model_config.target_tokenizer))]
        values = saved_model_variables(path)
    model = Seq2Seq(model_config, *vocabularies)
    names = {_relative_name(variable.path): variable for variable in model.weights}
    if set(names) != set(values):
        raise ValueError(f"saved_model={path!r} does not fit its config.json: weights only in "
                         f"the export {sorted(set(values) - set(names))[:5]}, only in the "
                         f"model {sorted(set(names) - set(values))[:5]}.")
    for name, variable in names.items():
        variable.assign(values[name])
    return model
