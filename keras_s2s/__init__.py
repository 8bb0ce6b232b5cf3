"""keras_s2s: sequence-to-sequence learning with attention, in Keras, from raw text to a served model.

Each public name is imported from its module on first use (PEP 562), so `import keras_s2s`
and `keras-s2s --help` start without loading TensorFlow; the first use loads it without its
start-up log lines (`keras_s2s.startup`). The package's Keras classes are registered as soon
as Keras is loaded (`keras_s2s.registration`), so `keras.saving.load_model` finds them after
`import keras_s2s` alone.
"""

import importlib

from keras_s2s import registration

__version__ = "0.1.0"

# Each public name and the module that defines it.
_EXPORTS = {
    "BahdanauAttention": "attention",
    "LuongAttention": "attention",
    "ModelConfig": "config",
    "TrainConfig": "config",
    "preset": "config",
    "make_dataset": "data",
    "read_tsv_pairs": "data",
    "split_pairs": "data",
    "Decoder": "decoder",
    "Encoder": "encoder",
    "exact_match": "metrics",
    "Seq2Seq": "model",
    "greedy_search": "search",
    "SourceMemory": "source_memory",
    "scan_corpus": "streaming",
    "stream_dataset": "streaming",
    "encode_source": "source_memory",
    "load_task": "tasks",
    "TextProcessor": "text",
    "Tokenizer": "text",
    "Vocabulary": "text",
    "load_trained_model": "training",
    "make_optimizer": "training",
    "train": "training",
    "Translator": "translator",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name):
    if name not in _EXPORTS:
        raise AttributeError(f"module 'keras_s2s' has no attribute {name!r}")
    from keras_s2s.startup import import_tensorflow_quietly

    import_tensorflow_quietly()
    value = getattr(importlib.import_module(f"keras_s2s.{_EXPORTS[name]}"), name)
    globals()[name] = value  # later uses skip this function
    return value


registration.install()


def __dir__():
    return sorted(set(globals()) | set(__all__))
