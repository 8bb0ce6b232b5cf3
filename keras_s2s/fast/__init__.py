"""Optional fast paths for decoding, each off unless an export asks for it. A first reading
can skip this folder: a plain export (`model.export(path)`) uses none of it, and
`translator.py` imports each module only where its option is used.

The textbook forms live in the package above: `search.greedy_search` and
`beam_search.beam_search` run one graph loop over the whole batch, and `Decoder.step`
projects h̃ onto the vocabulary with the float32 W_s. Each module here computes the same
thing another way, the translator picks it when asked, and a test shows it gives what the
textbook form gives. What each is worth on this project's machines is in
`benchmarks/README.md`. (The packed encoder, which every export does use, is
`keras_s2s/packed_rnn.py`, beside the encoder.)

fused_greedy.py   Fixed-shape greedy search that XLA compiles with the encoder into one program
                  (`Translator(jit_compile=True)`, `keras-s2s export --jit-compile`). Buys: lower
                  latency for batches of a few sentences, where per-op overhead, not arithmetic,
                  sets the time. Safe: the same step and the same argmax; finished rows stay in
                  the batch but write padding and add nothing to the score. Tests:
                  tests/test_fused_greedy.py (`test_jit_compiled_translator_translates_like_the_graph_loop`).
fused_beam.py     The same for beam search with the model's own beam size (the default
                  signature's), under the same option. Safe: the graph loop's step functions
                  (`extend_beams`, `follow_parents`, `ranked`) in the same order; finished
                  sentences stay in the batch, their hypotheses frozen as in the graph loop.
                  Tests: tests/test_fused_beam.py.
shards.py         A batch dealt into shards, each encoded and searched by its own graph loop,
                  which TensorFlow runs at the same time (`Translator(shards=N)`,
                  `keras-s2s export --shards N`). Buys: one request can keep several cores
                  busy when each op gets one thread. Safe: every search result is per row, so
                  the rows put back in batch order are what one loop gives. Tests:
                  tests/test_shards.py (`test_shards_translate_like_one_loop`).
projection.py     W_s stored and multiplied in bfloat16, accumulated into float32 logits
                  (`Translator(projection_dtype="bfloat16")`, `--projection-dtype bfloat16`).
                  Buys: a faster largest matmul on CPUs with bfloat16 instructions. Not exact:
                  a near-tie between two tokens can go the other way, which is why it is off by
                  default. Test: `test_bfloat16_projection_export_is_smaller_and_translates_alike`
                  (tests/test_translator.py).
"""
