"""Translator: the one object that is exported. Raw strings in, translations out, in graph.

The SavedModel it writes needs no Python code of this package to run: tokenisation, the
encoder, the search loop and detokenisation are all in its graph, and the vocabularies
travel as text files in `assets/`. Load it with only TensorFlow and TensorFlow Text:

    import tensorflow as tf, tensorflow_text  # the import registers the text ops
    translator = tf.saved_model.load("saved_models/dates/1")
    translator.signatures["serving_default"](text=tf.constant(["March 3, 2021"]))["text"]
"""

import os
import tempfile

import tensorflow as tf

from keras_s2s import config as config_lib
from keras_s2s.search import greedy_search
from keras_s2s.text import END, END_ID, PAD_ID, START_ID, TextProcessor

# Server contract: one named input, named outputs, batch first on every output.
INPUT_SIGNATURE = [tf.TensorSpec([None], tf.string, name="text")]


class Translator(tf.Module):
    """Greedy translation of a batch of raw strings.

    Args:
        model: a trained `Seq2Seq`; its layers (not its optimizer) are tracked and exported.
        max_length: most output tokens per sentence ([END] included); defaults to the
            model's `max_target_length`.

    Call `translate(text)` with a (batch,) string tensor. It returns a dict of
        text: (batch,) string, the translation (NFC-composed UTF-8);
        score: (batch,) float32, log-probability of the output tokens, [END] included;
        length: (batch,) int32, output tokens, [END] included;
        attention: (batch, t, s) float32, row i of sentence b is where output token i looked;
        source_tokens: (batch, s) string, the source tokens the attention columns refer to;
        target_tokens: (batch, t) string, the output tokens the attention rows refer to.
    """

    def __init__(self, model, max_length=None):
        super().__init__(name="translator")
        self.max_length = int(max_length or model.model_config.max_target_length)
        if self.max_length < 1:
            raise ValueError(f"max_length must be positive; got {max_length}.")
        # The layers are held without tracking: the export tracks the tf.Variables the
        # graph captures (see `save`); tracking the Keras layers too would store every
        # weight twice, once per path.
        object.__setattr__(self, "encoder", model.encoder)
        object.__setattr__(self, "decoder", model.decoder)
        # The vocabularies are written to files so that the lookup tables read them from
        # there; SavedModel then copies the files into `assets/` beside the graph.
        self._asset_directory = tempfile.TemporaryDirectory(prefix="keras_s2s_assets_")
        self.source_text = _file_backed(model.source_text, self._asset_directory.name, "source")
        self.target_text = _file_backed(model.target_text, self._asset_directory.name, "target")
        config_path = os.path.join(self._asset_directory.name, "config.json")
        config_lib.save_json(config_path, model=model.model_config)
        self.config_file = tf.saved_model.Asset(config_path)

    @tf.function(input_signature=INPUT_SIGNATURE)
    def translate(self, text):
        source_tokens = self.source_text.tokenize(text)  # (batch, (s - 1)) string
        source_ids = self.source_text.encode(text).to_tensor()  # (batch, s), [END] last
        # Only an empty batch has s = 0, which the RNN cannot step over; give it one
        # padding column (any real sentence has at least its [END]).
        source_ids = tf.pad(source_ids, [[0, 0], [0, tf.maximum(0, 1 - tf.shape(source_ids)[1])]])
        encoder_outputs, encoder_states = self.encoder(source_ids)  # (batch, s, units)
        source_mask = tf.not_equal(source_ids, PAD_ID)
        keys = self.decoder.compute_keys(encoder_outputs)

        def next_step(tokens, state):
            return self.decoder.step(tokens, state, encoder_outputs, keys, source_mask)

        batch = tf.shape(text)[0]
        result = greedy_search(next_step, self.decoder.initial_state(encoder_states),
                               start_tokens=tf.fill([batch], START_ID), end_id=END_ID,
                               max_length=self.max_length)
        target_tokens = tf.where(tf.equal(result.tokens, PAD_ID), "",
                                 self.target_text.ids_to_tokens(result.tokens))
        source_tokens = tf.concat([source_tokens, tf.fill([batch, 1], END)], axis=1)
        return {
            "text": self.target_text.decode(result.tokens),
            "score": result.scores,
            "length": result.lengths,
            "attention": result.step_outputs,  # (batch, t, s)
            "source_tokens": source_tokens.to_tensor(default_value=""),
            "target_tokens": target_tokens,
        }

    def save(self, path):
        """Writes the SavedModel (signature "serving_default") to `path`; returns `path`."""
        serving = self.translate.get_concrete_function()
        # Keras 3 layers held by a plain tf.Module export variables that session-based
        # loaders (TensorFlow Serving, saved_model_cli run) cannot find unless the module
        # tracks them directly; listing the function's variables does that, and is the
        # only tracking the weights get.
        self.serving_variables = list(serving.variables)
        tf.saved_model.save(self, path, signatures={"serving_default": serving})
        return path


def _file_backed(processor, directory, side):
    """A copy of `processor` whose lookup tables read `<side>_vocab.txt` in `directory`."""
    vocab_file = os.path.join(directory, f"{side}_vocab.txt")
    processor.vocabulary.save(vocab_file)
    return TextProcessor(processor.tokenizer, processor.vocabulary, processor.max_length,
                         vocab_file=vocab_file, name=f"{side}_text")


def load(path):
    """Loads an exported translator; call `.translate(tf.constant([...]))` on the result."""
    if not os.path.exists(os.path.join(path, "saved_model.pb")):
        raise ValueError(f"No SavedModel at model={path!r} (expected {path}/saved_model.pb).")
    import tensorflow_text  # noqa: F401  registers the text ops the graph uses

    return tf.saved_model.load(path)


def translate_in_batches(translator, texts, batch_size=256):
    """Runs `translator.translate` over a list of strings; returns the outputs as lists.

    Works with a `Translator` or a loaded SavedModel. Each output key maps to a list with
    one entry per text (numpy arrays for tensors, str for text).
    """
    results = {}
    for start in range(0, len(texts), batch_size):
        outputs = translator.translate(tf.constant(texts[start:start + batch_size], tf.string))
        for key, value in outputs.items():
            rows = [row.decode("utf-8") for row in value.numpy()] if key == "text" else list(value.numpy())
            results.setdefault(key, []).extend(rows)
    return results
