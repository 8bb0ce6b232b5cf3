import unicodedata

import pytest
import tensorflow as tf

from keras_s2s.text import (END_ID, SPACE_SYMBOL, SPECIAL_TOKENS, START_ID, UNK_ID,
                            TextProcessor, Tokenizer, Vocabulary)


def strings(tensor):
    return [value.decode("utf-8") for value in tensor.numpy()]


def token_lists(ragged):
    return [[token.decode("utf-8") for token in row] for row in ragged.to_list()]


def test_word_tokenizer_splits_punctuation_and_keeps_hangul_words():
    tokens = Tokenizer("word").split(tf.constant(["Wednesday, March 3rd!", "나는 사과를 먹는다."]))
    assert token_lists(tokens) == [["wednesday", ",", "march", "3rd", "!"],
                                   ["나는", "사과를", "먹는다", "."]]


def test_word_join_undoes_split_spacing():
    tokenizer = Tokenizer("word", lowercase=False)
    texts = ["Hello, world (really)!", "I don't know.", "나는 사과를 먹는다."]
    assert strings(tokenizer.join(tokenizer.split(tf.constant(texts)))) == texts


def test_char_tokenizer_shows_spaces_and_round_trips():
    tokenizer = Tokenizer("char", lowercase=False)
    tokens = tokenizer.split(tf.constant(["Mar 3"]))
    assert token_lists(tokens) == [["M", "a", "r", SPACE_SYMBOL, "3"]]
    assert strings(tokenizer.join(tokens)) == ["Mar 3"]


def test_normalize_case_folds_collapses_spaces_and_repairs_invalid_utf8():
    tokenizer = Tokenizer("word")
    texts = tf.constant([b"  MIXED   Case\t\n", b"caf\xc3\xa9 \xff\xfe ok", "Ｆｕｌｌ".encode(),
                         "a\x0bb\u2028c\u3000d\x00e\x1f".encode()])
    assert strings(tokenizer.normalize(texts)) == ["mixed case", "café \ufffd\ufffd ok", "full",
                                                   "a b c d e"]


def test_every_token_of_odd_whitespace_builds_a_vocabulary():
    # Unicode line and paragraph separators, a vertical tab and NEL are spaces to the
    # tokenizers: no token holds one, so every token can be a line of a vocabulary file.
    texts = ["line\u2028separator", "vertical\x0btab", "next\x85line"]
    assert token_lists(Tokenizer("word").split(tf.constant(texts))) == [
        ["line", "separator"], ["vertical", "tab"], ["next", "line"]]
    for kind in ("word", "char"):
        vocabulary = Vocabulary.build(Tokenizer(kind).split(tf.constant(texts)))
        assert not any(character in token for token in vocabulary.tokens
                       for character in "\u2028\x0b\x85\n")
        assert "line" in vocabulary.tokens if kind == "word" else "l" in vocabulary.tokens


def test_decomposed_normalization_still_outputs_composed_hangul():
    # NFKD splits Hangul syllables into jamo; what the user sees must be syllables again.
    tokenizer = Tokenizer("char", normalization="NFKD")
    tokens = tokenizer.split(tf.constant(["사과를 먹는다"]))
    assert len(tokens[0]) > len("사과를 먹는다")  # jamo inside the model
    text = strings(tokenizer.join(tokens))[0]
    assert text == "사과를 먹는다"
    assert unicodedata.is_normalized("NFC", text)


def test_vocabulary_keeps_most_frequent_tokens_after_special_tokens():
    tokens = Tokenizer("word").split(tf.constant(["b a a", "c a b", "d"]))
    vocabulary = Vocabulary.build(tokens, max_size=7)
    assert vocabulary.tokens == list(SPECIAL_TOKENS) + ["a", "b", "c"]
    assert Vocabulary.build(tokens, max_size=100, min_count=2).tokens[4:] == ["a", "b"]


def test_vocabulary_save_load_round_trip(tmp_path):
    vocabulary = Vocabulary(list(SPECIAL_TOKENS) + ["사과", SPACE_SYMBOL, "x"])
    vocabulary.save(tmp_path / "vocab.txt")
    assert Vocabulary.load(tmp_path / "vocab.txt") == vocabulary


@pytest.mark.parametrize("tokens", [["a", "b"], list(SPECIAL_TOKENS) + ["a", "a"],
                                    list(SPECIAL_TOKENS) + [" "]])
def test_vocabulary_rejects_malformed_token_lists(tokens):
    with pytest.raises(ValueError):
        Vocabulary(tokens)


@pytest.fixture
def processor():
    vocabulary = Vocabulary(list(SPECIAL_TOKENS) + ["i", "eat", "an", "apple"])
    return TextProcessor(Tokenizer("word"), vocabulary, max_length=4)


def test_encode_maps_unknown_tokens_appends_end_and_clips(processor):
    ids = processor.encode(tf.constant(["I eat 🍎", "", "i eat an apple i eat"])).to_list()
    assert ids[0] == [4, 5, UNK_ID, END_ID]
    assert ids[1] == [END_ID]  # an empty string is one [END], never an empty sequence
    assert ids[2] == [4, 5, 6, END_ID]  # clipped to max_length, [END] included
    with_start = processor.encode(tf.constant(["i"]), add_start=True).to_list()
    assert with_start == [[START_ID, 4, END_ID]]


def test_decode_stops_at_end_and_skips_padding(processor):
    ids = tf.constant([[START_ID, 4, 5, END_ID, 7, 0], [6, 7, 0, 0, 0, 0], [END_ID, 4, 0, 0, 0, 0]])
    assert strings(processor.decode(ids)) == ["i eat", "an apple", ""]


def test_file_backed_tables_match_in_memory_tables(processor, tmp_path):
    processor.vocabulary.save(tmp_path / "vocab.txt")
    from_file = TextProcessor(processor.tokenizer, processor.vocabulary, 4,
                              vocab_file=str(tmp_path / "vocab.txt"))
    texts = tf.constant(["i eat an apple", "unknown words here"])
    assert from_file.encode(texts).to_list() == processor.encode(texts).to_list()
    ids = tf.constant([[4, 5, 6, 7, END_ID]])
    assert strings(from_file.decode(ids)) == strings(processor.decode(ids))


def test_vocab_file_that_disagrees_is_refused(processor, tmp_path):
    Vocabulary(list(SPECIAL_TOKENS) + ["other"]).save(tmp_path / "vocab.txt")
    with pytest.raises(ValueError, match="vocab_file"):
        TextProcessor(processor.tokenizer, processor.vocabulary, 4, vocab_file=str(tmp_path / "vocab.txt"))


def test_sentencepiece_tokenizers_survive_the_seed_call_that_drops_cached_kernels(tmp_path):
    """`keras.utils.set_random_seed` clears TensorFlow's kernel cache; a tokenizer built before
    it, a function traced before it and a SavedModel loaded before it all still tokenise."""
    import keras

    from keras_s2s import tasks
    from keras_s2s.text import learn_sentencepiece

    pairs, _ = tasks.load_task("toy-ko", 200, 10)
    normalizer = Tokenizer("word")
    model = learn_sentencepiece(strings(normalizer.normalize(tf.constant([s for s, _ in pairs]))), 80)
    tokenizer = Tokenizer("sentencepiece", sentencepiece_model=model)
    tokenizer.split_text = tf.function(tokenizer.split, input_signature=[tf.TensorSpec([None], tf.string)])
    texts = tf.constant([pairs[0][0], "an unseen zebra", ""])
    expected = token_lists(tokenizer.split(texts))
    assert expected[0] and expected[2] == []
    tf.saved_model.save(tokenizer, str(tmp_path / "tokenizer"))
    loaded = tf.saved_model.load(str(tmp_path / "tokenizer"))
    traced = token_lists(tokenizer.split_text(texts))

    keras.utils.set_random_seed(0)

    assert token_lists(tokenizer.split(texts)) == expected
    assert token_lists(tokenizer.split_text(texts)) == traced == expected
    assert token_lists(loaded.split_text(texts)) == expected
    # A second tokenizer of the same model shares the resource; it tokenises the same.
    assert token_lists(Tokenizer("sentencepiece", sentencepiece_model=model).split(texts)) == expected


def test_sentencepiece_models_load_without_a_log_line(capfd):
    """SentencePiece's C++ code logs "LOG(INFO) precompiled_charsmap is empty" on file
    descriptor 2 for every model it loads; the tokenizer keeps it out of the user's output and
    lets everything else through."""
    import os

    from tensorflow_text.python.ops.sentencepiece_tokenizer import gen_sentencepiece_tokenizer

    from keras_s2s import tasks
    from keras_s2s.startup import is_sentencepiece_info_line, native_lines_hidden
    from keras_s2s.text import learn_sentencepiece

    pairs, _ = tasks.load_task("toy-ko", 200, 10)
    model = learn_sentencepiece([source.lower() for source, _ in pairs], 60)
    capfd.readouterr()
    gen_sentencepiece_tokenizer.sentencepiece_op(model=model)  # the op alone does log it
    assert "LOG(INFO)" in capfd.readouterr().err
    tokenizer = Tokenizer("sentencepiece", sentencepiece_model=model)
    assert token_lists(tokenizer.split(tf.constant(["a book"])))[0]
    assert "LOG(INFO)" not in capfd.readouterr().err

    with native_lines_hidden(is_sentencepiece_info_line):  # native code writes to the descriptor
        os.write(2, b"normalizer.cc(51) LOG(INFO) hidden\n")
        os.write(2, b"a warning that must still show\n")
    assert capfd.readouterr().err == "a warning that must still show\n"
