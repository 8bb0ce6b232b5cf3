"""The real corpora beside the project, by name, with fixed train/validation/test splits.

Each corpus is read with the same readers a user runs on a file of their own; `data_dir`
is the folder that holds them (`../shared/data` here, or wherever you downloaded them):

    multi30k/{train,val,test_2016_flickr}.{de,en}.gz    Multi30k task 1
    anki/spa-eng.txt.gz, anki/kor-eng.txt.gz             Tatoeba pairs via manythings.org/anki
    ko-chatbot/ChatbotData.csv                           Korean chatbot Q/A (Q,A,label)

Corpora without an official split get a seeded one (`split_pairs`), so figures are
comparable between runs.
"""

import collections
import os

from keras_s2s.data import (read_csv_pairs, read_lines, read_parallel_files, read_tsv_pairs,
                            split_pairs)

Splits = collections.namedtuple("Splits", ["train", "validation", "test"])


MULTI30K_SPLITS = ("train", "val", "test_2016_flickr")


def _multi30k(source, target):
    def load(data_dir, seed):
        folder = os.path.join(data_dir, "multi30k")
        return Splits(*(read_parallel_files(os.path.join(folder, f"{split}.{source}.gz"),
                                            os.path.join(folder, f"{split}.{target}.gz")).pairs
                        for split in MULTI30K_SPLITS))
    files = [f"multi30k/{split}.{language}.gz" for split in MULTI30K_SPLITS
             for language in (source, target)]
    return Corpus(files, load)


def _held_out(pairs, validation, test, seed):
    """Seeded split into (train, validation, test) with fixed held-out sizes."""
    if len(pairs) <= validation + test:
        raise ValueError(f"The corpus has {len(pairs)} usable pairs, too few for its "
                         f"{validation} validation and {test} test pairs plus training.")
    rest, test_pairs = split_pairs(pairs, test / len(pairs), seed=seed)
    train_pairs, validation_pairs = split_pairs(rest, validation / len(rest), seed=seed + 1)
    return Splits(train_pairs, validation_pairs, test_pairs)


def _anki(file_name, to_english, validation, test):
    # Anki lines are english<TAB>other<TAB>attribution.
    columns = (1, 0) if to_english else (0, 1)

    def load(data_dir, seed):
        pairs = read_tsv_pairs(os.path.join(data_dir, "anki", file_name), *columns).pairs
        return _held_out(pairs, validation, test, seed)
    return Corpus([f"anki/{file_name}"], load)


def _chatbot(data_dir, seed):
    pairs = read_csv_pairs(os.path.join(data_dir, "ko-chatbot", "ChatbotData.csv"), "Q", "A").pairs
    return _held_out(pairs, 500, 500, seed)


# What each corpus reads: its files (relative to data_dir) and the function that reads them.
Corpus = collections.namedtuple("Corpus", ["files", "load"])
CORPORA = {
    "multi30k-de-en": _multi30k("de", "en"),
    "multi30k-en-de": _multi30k("en", "de"),
    "anki-spa-eng": _anki("spa-eng.txt.gz", to_english=True, validation=1000, test=2000),
    "anki-eng-spa": _anki("spa-eng.txt.gz", to_english=False, validation=1000, test=2000),
    "anki-kor-eng": _anki("kor-eng.txt.gz", to_english=True, validation=300, test=500),
    "anki-eng-kor": _anki("kor-eng.txt.gz", to_english=False, validation=300, test=500),
    "ko-chatbot": Corpus(["ko-chatbot/ChatbotData.csv"], _chatbot),
}


def _check(name, data_dir):
    if name not in CORPORA:
        raise ValueError(f"Unknown corpus {name!r}; choose one of {sorted(CORPORA)}.")
    if not data_dir or not os.path.isdir(data_dir):
        raise ValueError(f"data_dir={data_dir!r} is not a folder; it should hold the corpora "
                         "(multi30k/, anki/, ko-chatbot/).")


def load_corpus(name, data_dir, seed=0):
    """(train, validation, test) pair lists of the corpus called `name`."""
    _check(name, data_dir)
    return CORPORA[name].load(data_dir, seed)


def corpus_files(name, data_dir):
    """The paths of the files the corpus called `name` is read from."""
    _check(name, data_dir)
    return [os.path.join(data_dir, *relative.split("/")) for relative in CORPORA[name].files]


def monolingual_text(data_dir, held_out_corpora=("anki-kor-eng", "anki-eng-kor"), seed=0):
    """(sentences, {source name: counts}): every English and Korean sentence beside the
    project, for learning word vectors, minus the validation and test sentences of
    `held_out_corpora` wherever they appear (Tatoeba repeats English sentences across its
    language pairs), so that vectors never saw what a model is scored on.

    The sources: Multi30k English (every split), the English side of Anki spa-eng, both
    sides of the Anki kor-eng training split, the Korean chatbot's questions and answers.
    """
    held_out = set()
    for corpus in held_out_corpora:
        splits = load_corpus(corpus, data_dir, seed=seed)
        held_out |= {text.strip() for pairs in (splits.validation, splits.test)
                     for pair in pairs for text in pair}
    korean_english = load_corpus("anki-kor-eng", data_dir, seed=seed).train
    multi30k = os.path.join(data_dir, "multi30k")
    sources = {
        "multi30k English": [line for split in ("train", "val", "test_2016_flickr")
                             for line in read_lines(os.path.join(multi30k, f"{split}.en.gz"))],
        "Anki spa-eng English": [english for english, _ in read_tsv_pairs(
            os.path.join(data_dir, "anki", "spa-eng.txt.gz"), 0, 1).pairs],
        "Anki kor-eng training Korean": [korean for korean, _ in korean_english],
        "Anki kor-eng training English": [english for _, english in korean_english],
        "chatbot questions and answers": [text for pair in read_csv_pairs(
            os.path.join(data_dir, "ko-chatbot", "ChatbotData.csv"), "Q", "A").pairs
            for text in pair],
    }
    texts, counts = [], {}
    for name, lines in sources.items():
        kept = [line for line in lines if line.strip() and line.strip() not in held_out]
        counts[name] = {"sentences": len(kept),
                        "held_out_left_out": sum(line.strip() in held_out for line in lines)}
        texts += kept
    return texts, counts
