"""Translator: the one object that is exported. Raw strings in, translations out, in graph.

The SavedModel it writes needs no Python code of this package to run: tokenisation, the
encoder, the search loop and detokenisation are all in its graph, and the vocabularies
travel as text files in `assets/`. Load it with only TensorFlow and TensorFlow Text:

    import tensorflow as tf, tensorflow_text  # the import registers the text ops
    translator = tf.saved_model.load("saved_models/dates/1")
    translator.signatures["serving_default"](text=tf.constant(["March 3, 2021"]))["text"]
"""

import collections
import contextlib
import functools
import numbers
import os
import re
import tempfile

import tensorflow as tf

from keras_s2s import config as config_lib
from keras_s2s.beam_search import beam_search
from keras_s2s.kv_cache import FixedCache, GrowingCache
from keras_s2s.locks import exclusive, write_whole
from keras_s2s.restore import damage_reported
from keras_s2s.search import SearchResult, greedy_search, sample_search
from keras_s2s.source_memory import encode_source
from keras_s2s.startup import is_sentencepiece_info_line, native_lines_hidden
from keras_s2s.text import END, END_ID, PAD_ID, START_ID, TextProcessor, not_padding, texts_tensor

# Server contract: named inputs, named outputs, batch first on every output.
TEXT = tf.TensorSpec([None], tf.string, name="text")
SIGNATURE_NAMES = ("serving_default", "greedy", "beam", "sample")
PROJECTION_DTYPES = ("float32", "bfloat16")
# With jit_compile, greedy batches of up to this many rows take the XLA-compiled path. Beyond
# it, dropping finished rows gains more than fusing ops (benchmarks/README.md, the
# --jit-compile rows, measures where the two cross).
FUSED_MAX_ROWS = 4
# Replayed by the model server on load: an ordinary sentence and the empty string.
WARMUP_TEXTS = ("This is a warm-up request.", "")


class Translator(tf.Module):
    """Translation of a batch of raw strings, with four exported signatures.

    Args:
        model: a trained `Seq2Seq`; its layers' variables (not its optimizer) are exported.
        max_length: most output tokens per sentence ([END] included); defaults to the
            model's `max_target_length`.
        projection_dtype: "float32" (exact), or "bfloat16": the output projection W_s, the
            largest matmul of a decoding step, is stored and multiplied in bfloat16 and
            accumulated back to float32 logits (`keras_s2s.fast.projection`). Faster on
            CPUs with bfloat16 instructions (AVX512-BF16, AMX), slower on others; it can
            change a near-tie between two tokens (benchmarks/README.md says what it changed
            on spa-en).
        jit_compile: greedy decoding of batches of 1 to `FUSED_MAX_ROWS` rows runs as one
            XLA program (encoder and whole search loop; `keras_s2s.fast.fused_greedy`),
            which cuts batch-1 latency; so does beam search with `default_beam_size` (the
            model's, which `translate` uses; `keras_s2s.fast.fused_beam`). Same
            translations. XLA compiles once per batch size
            and source length bucket, on first use. TensorFlow Serving runs such a model
            only with `--xla_cpu_compilation_enabled=true`.
        shards: split a batch of at least `MIN_ROWS_PER_SHARD` rows per shard into this
            many shards, each encoded and searched by its own graph loop, which TensorFlow
            runs at the same time (`keras_s2s.fast.shards`). With one thread per op
            (`tf.config.threading.set_intra_op_parallelism_threads(1)`, TensorFlow
            Serving's `--tensorflow_intra_op_parallelism=1`) one request then uses a core
            per shard: set it to the cores a request may use. Same translations. With
            `jit_compile`, greedy batches of up to `FUSED_MAX_ROWS` take the XLA path
            instead, unsplit.

    Methods (each a `tf.function`, each a signature of the SavedModel):
        translate(text): the model's configured decoding (`ModelConfig.beam_size`,
            `length_penalty`); the "serving_default" signature.
        greedy(text): the most likely token at every step.
        beam(text, beam_size): beam search; adds `nbest` (batch, k) string and
            `nbest_scores` (batch, k) float32, best first. `beam_size` is clamped to
            [1, `config.MAX_BEAM_SIZE`].
        sample(text, temperature, top_k, top_p, seed): a random translation; the same text
            with the same seed always gives the same output, whatever else is in the batch.

    One more function is exported, not as a signature (a server has no use for it):
        forced_attention(text, target): where the model looks while it is made to write
            `target` (teacher forcing): `attention` (batch, t, s) as above, `heads`
            (batch, layers, heads, t, s) every layer's and head's cross-attention (one layer
            and one head for the RNN), `source_tokens` and `target_tokens`. On a
            translation the model wrote itself it gives the attention its search recorded;
            on the other n-best entries, or a reference, theirs (`keras_s2s.attention_view`).

    Every method returns a dict with
        text: (batch,) string, the translation (NFC-composed UTF-8);
        score: (batch,) float32, log-probability of the output ([END] included); for beam
            search, divided by the length penalty, as the hypotheses were ranked;
        length: (batch,) int32, output tokens, [END] included;
        attention: (batch, t, s) float32, row i is where output token i looked;
        source_tokens: (batch, s) string, the tokens the attention columns refer to;
        target_tokens: (batch, t) string, the tokens the attention rows refer to.
    """

    def __init__(self, model, max_length=None, projection_dtype="float32", jit_compile=False,
                 shards=1):
        super().__init__(name="translator")
        self.max_length = int(model.model_config.max_target_length if max_length is None else max_length)
        if self.max_length < 1:
            raise ValueError(f"max_length must be positive; got {max_length}.")
        if projection_dtype not in PROJECTION_DTYPES:
            raise ValueError(f"projection_dtype must be one of {PROJECTION_DTYPES}; "
                             f"got {projection_dtype!r}.")
        if projection_dtype != "float32" and model.model_config.architecture != "rnn":
            raise ValueError(f"projection_dtype={projection_dtype!r} is an option of the RNN "
                             "decoder's projection; a Transformer exports with 'float32'.")
        self.projection_dtype = projection_dtype
        self.jit_compile = bool(jit_compile)
        if not isinstance(shards, numbers.Integral) or isinstance(shards, bool) or shards < 1:
            raise ValueError(f"shards must be a positive integer; got {shards!r}.")
        self.shards = int(shards)
        self.default_beam_size = model.model_config.beam_size
        self.length_penalty = model.model_config.length_penalty
        # The layers are held without tracking: the export tracks the tf.Variables the
        # graph captures (see `save`); tracking the Keras layers too would store every
        # weight twice, once per path.
        object.__setattr__(self, "encoder", model.encoder)
        object.__setattr__(self, "decoder", model.decoder)
        # Each option picks its strategy here, once, so that the decoding methods below read
        # the same whatever the options: the decoder step the searches call, the greedy
        # search, and the splitter that hands a batch to one graph loop or to several.
        # The step the searches call, with the `SourceMemory` of the rows still decoding (for
        # beam search, one copy per hypothesis): float32 logits from the decoder's own W_s.
        self._decoder_step = model.decoder.step
        if projection_dtype == "bfloat16":
            from keras_s2s.fast.projection import BFloat16Projection

            self.projection = BFloat16Projection(model.decoder.output_projection)
            self._decoder_step = self.projection.decoder_step(model.decoder)
        self._greedy = self._fused_or_graph_greedy if self.jit_compile else self._graph_greedy
        self._beam = self._fused_or_graph_beam if self.jit_compile else self._graph_beam
        self._splitter = _whole_batch
        if self.shards > 1:
            from keras_s2s.fast.shards import search_in_shards_or_whole

            self._splitter = functools.partial(search_in_shards_or_whole, shards=self.shards)
        # The vocabularies are written to files so that the lookup tables read them from
        # there; SavedModel then copies the files into `assets/` beside the graph.
        self._asset_directory = tempfile.TemporaryDirectory(prefix="keras_s2s_assets_")
        self.source_text = _file_backed(model.source_text, self._asset_directory.name, "source")
        self.target_text = _file_backed(model.target_text, self._asset_directory.name, "target")
        config_path = os.path.join(self._asset_directory.name, "config.json")
        config_lib.save_json(config_path, model=model.model_config)
        self.config_file = tf.saved_model.Asset(config_path)

    @tf.function(input_signature=[TEXT])
    def translate(self, text):
        # Calling the other signatures' functions (not re-tracing them) stores their
        # graphs once in the SavedModel.
        if self.default_beam_size > 1:
            return self.beam(text, tf.constant(self.default_beam_size))
        return self.greedy(text)

    @tf.function(input_signature=[TEXT])
    def greedy(self, text):
        return self._greedy(text)

    @tf.function(input_signature=[TEXT, tf.TensorSpec([], tf.int32, name="beam_size")])
    def beam(self, text, beam_size):
        # A server cannot raise a Python error to its client: sizes out of range are clamped.
        return self._beam(text, tf.clip_by_value(beam_size, 1, config_lib.MAX_BEAM_SIZE))

    @tf.function(input_signature=[TEXT, tf.TensorSpec([], tf.float32, name="temperature"),
                                  tf.TensorSpec([], tf.int32, name="top_k"),
                                  tf.TensorSpec([], tf.float32, name="top_p"),
                                  tf.TensorSpec([], tf.int64, name="seed")])
    def sample(self, text, temperature, top_k, top_p, seed):
        # One key per row from its text and the seed: the draw never depends on the batch.
        row_keys = tf.bitwise.bitwise_xor(tf.strings.to_hash_bucket_fast(text, 2 ** 62), seed)

        def search(source, rows):
            return sample_search(self._decoder_step, source.state, _start_tokens(rows), END_ID,
                                 self.max_length, tf.gather(row_keys, rows), temperature,
                                 top_k, top_p, row_inputs=source.memory)

        return self._outputs(*self._search(text, search))

    @tf.function(input_signature=[TEXT, tf.TensorSpec([None], tf.string, name="target")])
    def forced_attention(self, text, target):
        tf.debugging.assert_equal(tf.shape(text)[0], tf.shape(target)[0], message=(
            "forced_attention needs one target per text"))
        source_ids, source_tokens = self._source_ids(text)
        pieces = self.target_text.tokenize(target)  # (batch, (t - 1)) string
        batch = tf.shape(target)[0]
        target_tokens = tf.concat([pieces, tf.fill([batch, 1], END)], axis=1).to_tensor(default_value="")
        target_ids = self.target_text.ids_from_tokens(pieces).to_tensor()  # (batch, t), [END] last
        target_ids = tf.pad(target_ids, [[0, 0], [0, tf.shape(target_tokens)[1] - tf.shape(target_ids)[1]]])
        heads = self.forced_heads(source_ids, target_ids)  # (batch, layers, heads, t, s)
        return {"attention": tf.reduce_mean(heads[:, -1], axis=1),  # last layer, mean over heads
                "heads": heads, "source_tokens": source_tokens, "target_tokens": target_tokens}

    def forced_heads(self, source_ids, target_ids):
        """Every layer's and head's cross-attention (batch, layers, heads, t, s) float32 while
        the decoder is made to write `target_ids` (batch, t) ([END] last, then padding);
        rows after a target's [END] read padding and are zeros, as the searches leave them."""
        batch = tf.shape(target_ids)[0]
        # The decoder reads [START] and each target token but the last, as in training.
        decoder_inputs = tf.concat([tf.fill([batch, 1], START_ID), target_ids[:, :-1]], axis=1)
        memory = encode_source(self.encoder, self.decoder, source_ids, packed=True)  # as the searches
        heads = self.decoder.cross_attention_weights(decoder_inputs, memory)
        is_real = not_padding(target_ids)[:, tf.newaxis, tf.newaxis, :, tf.newaxis]
        return tf.where(is_real, tf.cast(heads, tf.float32), 0.0)

    def _fused_or_graph_greedy(self, text):
        """The greedy search with `jit_compile`: the XLA program for small batches."""
        batch = tf.shape(text)[0]
        return tf.cond(tf.logical_and(batch >= 1, batch <= FUSED_MAX_ROWS),
                       lambda: self._fused_greedy(text), lambda: self._graph_greedy(text))

    def _graph_greedy(self, text):
        def search(source, rows):
            return greedy_search(self._decoder_step, source.state, _start_tokens(rows), END_ID,
                                 self.max_length, row_inputs=source.memory)

        return self._outputs(*self._search(text, search))

    def _fused_greedy(self, text):
        from keras_s2s.fast.fused_greedy import bucketed_source_ids

        source_ids, source_tokens = self._source_ids(text)
        steps, result = self._fused_decode(bucketed_source_ids(source_ids))
        batch, length = tf.shape(source_ids)[0], tf.shape(source_ids)[1]
        # Back from the buckets' shapes: the real rows, the steps taken, the real positions.
        tokens = result.tokens[:batch, :steps]  # (batch', max_length) -> (batch, t)
        attention = result.step_outputs[:batch, :steps, :length]  # (batch, t, s)
        result = SearchResult(tokens, result.lengths[:batch], result.scores[:batch], attention)
        return self._outputs(source_tokens, result)

    @tf.function(jit_compile=True)
    def _fused_decode(self, source_ids):
        """Encoder and greedy search as one XLA program: steps and a `SearchResult` of
        `max_length` steps (see `fixed_shape_greedy_search`)."""
        from keras_s2s.fast.fused_greedy import fixed_shape_greedy_search

        state, start_tokens, row_inputs = self._fixed_shape_start(source_ids)
        return fixed_shape_greedy_search(self._decoder_step, state, start_tokens, END_ID,
                                         self.max_length, row_inputs)

    def _fixed_shape_start(self, source_ids):
        """What an XLA-compiled search starts from: the decoder's state with the fixed
        key/value buffer (an XLA program keeps every shape for the whole loop), the [START]
        tokens and the memory every step reads."""
        # Keras' masked RNNs, not the packed encoder: packing changes shapes at every step.
        memory = encode_source(self.encoder, self.decoder, source_ids)  # (batch, s, units) ...
        state = self.decoder.search_state(memory, self.max_length, FixedCache)
        return state, tf.fill([tf.shape(source_ids)[0]], START_ID), memory.for_steps()

    def _fused_or_graph_beam(self, text, beam_size):
        """Beam search with `jit_compile`: the XLA program for small batches searched with
        the model's own beam size (the default signature's); the graph loop otherwise."""
        batch = tf.shape(text)[0]
        fused = tf.logical_and(tf.logical_and(batch >= 1, batch <= FUSED_MAX_ROWS),
                               tf.equal(beam_size, self.default_beam_size))
        return tf.cond(fused, lambda: self._fused_beam(text),
                       lambda: self._graph_beam(text, beam_size))

    def _fused_beam(self, text):
        from keras_s2s.fast.fused_beam import first_steps
        from keras_s2s.fast.fused_greedy import bucketed_source_ids

        source_ids, source_tokens = self._source_ids(text)
        steps, result = self._fused_beam_decode(bucketed_source_ids(source_ids))
        result = first_steps(result, steps, tf.shape(source_ids)[0], tf.shape(source_ids)[1])
        return self._beam_outputs(source_tokens, result, self.default_beam_size)

    @tf.function(jit_compile=True)
    def _fused_beam_decode(self, source_ids):
        """Encoder and beam search (the model's beam size) as one XLA program: steps and a
        `BeamResult` of `max_length` steps (see `fixed_shape_beam_search`)."""
        from keras_s2s.fast.fused_beam import fixed_shape_beam_search

        state, start_tokens, row_inputs = self._fixed_shape_start(source_ids)
        return fixed_shape_beam_search(self._decoder_step, state, start_tokens, END_ID,
                                       self.max_length, self.default_beam_size,
                                       self.length_penalty, row_inputs)

    def _graph_beam(self, text, beam_size):
        def search(source, rows):
            return beam_search(self._decoder_step, source.state, _start_tokens(rows), END_ID,
                               self.max_length, beam_size, self.length_penalty,
                               row_inputs=source.memory)

        return self._beam_outputs(*self._search(text, search), beam_size)

    def _beam_outputs(self, source_tokens, result, beam_size):
        """The output dict of a beam search's `BeamResult`: the best hypothesis, and the
        n-best texts and scores."""
        best = [field[:, 0] for field in (result.tokens, result.lengths, result.scores)]
        outputs = self._outputs(source_tokens, SearchResult(*best, result.step_outputs[:, 0]))
        batch, width = tf.shape(result.tokens)[0], tf.shape(result.tokens)[2]
        flat_tokens = tf.reshape(result.tokens, [-1, width])  # (batch * beam, t)
        outputs["nbest"] = tf.reshape(self.target_text.decode(flat_tokens), [batch, beam_size])
        outputs["nbest_scores"] = result.scores  # (batch, beam)
        return outputs

    def _search(self, text, search):
        """Tokenises `text` and runs `search(source, rows)` over its sentences; returns the
        source tokens (batch, s) and the search's result for the whole batch, in order.

        `source` is the `_Source` of the sentences at batch positions `rows` (rows,). The
        splitter hands it the whole batch, or with `shards` > 1 and enough rows, each shard
        (`keras_s2s.fast.shards`).
        """
        source_ids, source_tokens = self._source_ids(text)

        def encode_and_search(ids, rows):
            return search(self._encode(ids), rows)

        return source_tokens, self._splitter(source_ids, encode_and_search)

    @tf.function(input_signature=[tf.TensorSpec([None, None], tf.int32)])
    def _encode_ids(self, source_ids):
        """Source ids (batch, s) -> the decoder's state before [START] and the `SourceMemory`
        every step reads; one function, stored once in the SavedModel, for every signature
        and shard."""
        memory = encode_source(self.encoder, self.decoder, source_ids, packed=True)
        # The searches' graph loops take a cache that grows (its shape invariants say so);
        # the XLA path (`_fused_decode`) keeps the fixed buffer.
        return self.decoder.search_state(memory, self.max_length, GrowingCache), memory.for_steps()

    def _source_ids(self, text):
        """(batch,) string -> source ids (batch, s), [END] last, and their tokens (batch, s)."""
        tokens = self.source_text.tokenize(text)  # (batch, (s - 1)) string, tokenised once
        batch = tf.shape(text)[0]
        # Labels come from the text, not the ids: ids turn unknown words into [UNK].
        source_tokens = tf.concat([tokens, tf.fill([batch, 1], END)], axis=1).to_tensor(default_value="")
        source_ids = self.source_text.ids_from_tokens(tokens).to_tensor()  # (batch, s), [END] last
        # Only an empty batch has s = 0, which the RNN cannot step over; give it one
        # padding column (any real sentence has at least its [END]).
        source_ids = tf.pad(source_ids, [[0, 0], [0, tf.maximum(0, 1 - tf.shape(source_ids)[1])]])
        return source_ids, source_tokens

    def _encode(self, source_ids):
        """Source side, once per sentence: the decoder's initial state and the memory every
        step reads."""
        return _Source(*self._encode_ids(source_ids))

    def _outputs(self, source_tokens, result):
        """The output dict shared by every decoding, from the source tokens (batch, s) that
        label the attention columns and a `SearchResult` (batch first)."""
        tokens = result.tokens  # (batch, t)
        target_tokens = tf.where(tf.equal(tokens, PAD_ID), "", self.target_text.ids_to_tokens(tokens))
        return {
            "text": self.target_text.decode(tokens),
            "score": result.scores,
            "length": result.lengths,
            "attention": result.step_outputs,  # (batch, t, s)
            "source_tokens": source_tokens,
            "target_tokens": target_tokens,
        }

    def save(self, path, warmup_texts=WARMUP_TEXTS):
        """Writes the SavedModel with all four signatures to `path`; returns `path`.

        `path` must not exist or be empty: no export is ever overwritten. The SavedModel is
        written beside it and renamed into place (`locks.write_whole`), so a model server
        watching the folder never loads half of it. `assets.extra/tf_serving_warmup_requests`
        gets one request per signature with `warmup_texts`, which TensorFlow Serving replays
        when it loads the model.
        """
        return write_whole(path, functools.partial(self._write, warmup_texts=warmup_texts), "path")

    def _write(self, path, warmup_texts):
        signatures = {"serving_default": self.translate.get_concrete_function(),
                      "greedy": self.greedy.get_concrete_function(),
                      "beam": self.beam.get_concrete_function(),
                      "sample": self.sample.get_concrete_function()}
        # Keras 3 layers held by a plain tf.Module export variables that session-based
        # loaders (TensorFlow Serving, saved_model_cli run) cannot find unless the module
        # tracks them directly; listing the functions' variables does that, and is the
        # only tracking the weights get.
        variables = {id(variable): variable for function in signatures.values()
                     for variable in function.variables}
        # In name order, not capture order: the same weights then give the same variables
        # file whatever the graph, so a re-export with a new graph stores no new weights.
        self.serving_variables = sorted(variables.values(), key=lambda variable: variable.name)
        tf.saved_model.save(self, path, signatures=signatures)
        if warmup_texts:
            from keras_s2s.serving import write_warmup_requests

            write_warmup_requests(path, list(warmup_texts), os.path.basename(os.path.dirname(path)))


_Source = collections.namedtuple("_Source", ["state", "memory"])


def _whole_batch(source_ids, search):
    """The textbook splitter: `search(source_ids, rows)` over the whole batch, in one loop."""
    return search(source_ids, tf.range(tf.shape(source_ids)[0]))


def _start_tokens(rows):
    """(rows,) batch positions -> (rows,) [START] tokens."""
    return tf.fill(tf.shape(rows), START_ID)


def _file_backed(processor, directory, side):
    """A copy of `processor` whose lookup tables read `<side>_vocab.txt` in `directory`."""
    vocab_file = os.path.join(directory, f"{side}_vocab.txt")
    processor.vocabulary.save(vocab_file)
    file_backed = TextProcessor(processor.tokenizer, processor.vocabulary, processor.max_length,
                                vocab_file=vocab_file, name=f"{side}_text")
    return file_backed


def next_version_path(base_dir, name):
    """`base_dir/name/<n>` for the next unused integer version (1 for a new name).

    TensorFlow Serving reads `<model>/<version>/` folders and serves the highest version;
    writing a new number, never an existing one, keeps earlier exports intact. Only names of
    ASCII digits are versions, as for the server ("²" is a digit to Python, not to it).
    """
    if not name or os.sep in name or name in (".", ".."):
        raise ValueError(f"name must be a plain folder name; got {name!r}.")
    folder = os.path.join(base_dir, name)
    entries = os.listdir(folder) if os.path.isdir(folder) else []
    versions = [int(entry) for entry in entries if re.fullmatch(r"[0-9]+", entry)]
    return os.path.join(folder, str(max(versions, default=0) + 1))


@contextlib.contextmanager
def next_version(base_dir, name):
    """Holds `base_dir/name` while the block writes the next version, whose path it yields;
    a second export to the same name meanwhile fails at once (`locks.FolderInUseError`)."""
    next_version_path(base_dir, name)  # checks the name before a folder is made for it
    with exclusive(os.path.join(base_dir, name), "name", lock_name=".next-version.lock",
                   remove_after=True):
        yield next_version_path(base_dir, name)


def load(path):
    """Loads an exported translator; call `.translate(tf.constant([...]))` on the result.

    Raises:
        ValueError: `path` holds no SavedModel, a damaged one (missing or truncated files),
            or one that is not a keras_s2s export; the message says which.
    """
    if not os.path.exists(os.path.join(path, "saved_model.pb")):
        raise ValueError(f"No SavedModel at model={path!r} (expected {path}/saved_model.pb).")
    import tensorflow_text  # noqa: F401  registers the text ops the graph uses

    with damage_reported(path, "model"), native_lines_hidden(is_sentencepiece_info_line):
        translator = tf.saved_model.load(path)
    missing = [name for name in SIGNATURE_NAMES if name not in translator.signatures]
    if missing or not callable(getattr(translator, "translate", None)):
        raise ValueError(f"model={path!r} is a SavedModel but not a keras_s2s export (it has "
                         f"no {', '.join(missing) or 'translate'} signature).")
    return translator


def translate_in_batches(translator, texts, batch_size=256, beam_size=None):
    """Translates a list of strings in batches; returns the outputs as lists.

    Works with a `Translator` or a loaded SavedModel. Uses the configured decoding, or beam
    search with `beam_size` hypotheses when given. Each output key maps to a list with one
    entry per text (numpy arrays for tensors, str for text).
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be positive; got {batch_size}.")
    if beam_size is not None:
        config_lib.check_beam_size(beam_size)
    results = {}
    for start in range(0, len(texts), batch_size):
        batch = texts_tensor(texts[start:start + batch_size])
        if beam_size is None:
            outputs = translator.translate(batch)
        else:
            outputs = translator.beam(batch, tf.constant(beam_size, tf.int32))
        for key, value in outputs.items():
            rows = [row.decode("utf-8") for row in value.numpy()] if key == "text" else list(value.numpy())
            results.setdefault(key, []).extend(rows)
    return results
