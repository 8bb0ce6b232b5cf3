"""Learning word vectors: skip-gram word2vec on text tokenised as a model tokenises it.

The vectors of `keras_s2s.word_vectors` can come from anywhere; learned here, from the
monolingual text of the languages a model translates, they share its tokens exactly: the
same Unicode normalisation and case folding, the same split into words (or into the
model's own SentencePiece pieces). What is written is a word2vec text file (the format of
fastText's .vec) or a binary one, which `keras-s2s train --source-vectors` reads.

Reference:
    Mikolov, Chen, Corrado, Dean. Efficient Estimation of Word Representations in Vector
    Space. 2013. https://arxiv.org/abs/1301.3781
"""

import os
import zlib

from keras_s2s.word_vectors import require_gensim


def learn_word_vectors(texts, tokenizer, output_path, dim=128, window=5, min_count=1, epochs=5,
                       seed=0, workers=1):
    """Trains skip-gram word2vec on `texts` and writes the vectors to `output_path`.

    Args:
        texts: a list of sentences.
        tokenizer: the `keras_s2s.text.Tokenizer` the model will use (its normalisation,
            case folding and splitting, or its SentencePiece pieces).
        output_path: a .vec (word2vec text, as fastText writes) or .bin (binary) file.
        dim, window, min_count, epochs: word2vec's vector size, context window, the
            fewest occurrences a kept word needs, passes over the text.
        seed, workers: with one worker and the same seed, the same vectors every time.

    Returns:
        gensim `KeyedVectors` (what was written).

    Raises:
        ImportError: gensim is not installed (the `embeddings` extra).
    """
    import tensorflow as tf

    require_gensim()
    from gensim.models import Word2Vec

    if not texts:
        raise ValueError("texts is empty: word2vec needs at least one sentence.")
    sentences = []
    for start in range(0, len(texts), 4096):
        tokens = tokenizer.split(tf.constant(texts[start:start + 4096])).to_list()
        sentences += [[token.decode("utf-8") for token in line] for line in tokens if line]
    model = Word2Vec(sentences, vector_size=dim, window=window, min_count=min_count, sg=1,
                     epochs=epochs, seed=seed, workers=workers, hashfxn=_stable_hash)
    if not len(model.wv):
        raise ValueError(f"No word occurs min_count={min_count} times in the {len(texts)} texts.")
    model.wv.save_word2vec_format(str(output_path), binary=str(output_path).endswith(".bin"))
    return model.wv


def learn_from_files(paths, output_path, side=None, columns=(0, 1), tokenizer="word",
                     vocabulary=None, lowercase=True, normalization="NFKC", **word2vec):
    """`learn_word_vectors` on text files, or on one side of TSV pair files (`keras-s2s embeddings`).

    Args:
        paths: files (plain or .gz): one sentence a line, or with `side` TSV pairs.
        output_path: the .vec or .bin file to write.
        side: None (whole lines), "source" or "target": `columns[0]` or `columns[1]`.
        tokenizer: "word" or "char", as the model's `ModelConfig` says.
        vocabulary: a saved `Vocabulary` file; with a SentencePiece model beside it, the
            text is cut into that model's pieces, so every piece can get a vector.
        lowercase, normalization: as the model's `ModelConfig`.
        **word2vec: dim, window, min_count, epochs, seed (`learn_word_vectors`).
    """
    from keras_s2s.data import read_lines, read_tsv_pairs
    from keras_s2s.text import Tokenizer, Vocabulary

    texts = []
    for path in paths:
        if not os.path.isfile(path):
            raise ValueError(f"Input file {path!r} does not exist.")
        if side is None:
            texts += [line for line in read_lines(path) if line.strip()]
        else:
            pair_file = read_tsv_pairs(path, *columns)
            print(pair_file.summary())
            texts += [pair[0 if side == "source" else 1] for pair in pair_file.pairs]
    model = None
    if vocabulary:
        if not os.path.isfile(vocabulary):
            raise ValueError(f"Vocabulary file {vocabulary!r} does not exist.")
        model = Vocabulary.load(vocabulary).sentencepiece_model
        if model is None:
            raise ValueError(f"vocabulary={vocabulary!r} has no SentencePiece model beside it "
                             "(.spm); word and char vocabularies need only --tokenizer.")
        tokenizer = "sentencepiece"
    return learn_word_vectors(texts, Tokenizer(tokenizer, lowercase, normalization, model),
                              output_path, **word2vec)


def _stable_hash(text):
    # gensim seeds each word's initial vector with this hash; Python's own changes between
    # processes (PYTHONHASHSEED), a CRC does not.
    return zlib.crc32(text.encode("utf-8"))
