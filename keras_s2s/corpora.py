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

from keras_s2s.data import read_csv_pairs, read_parallel_files, read_tsv_pairs, split_pairs

Splits = collections.namedtuple("Splits", ["train", "validation", "test"])


def _multi30k(source, target):
    def load(data_dir, seed):
        folder = os.path.join(data_dir, "multi30k")
        return Splits(*(read_parallel_files(os.path.join(folder, f"{split}.{source}.gz"),
                                            os.path.join(folder, f"{split}.{target}.gz")).pairs
                        for split in ("train", "val", "test_2016_flickr")))
    return load


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
    return load


def _chatbot(data_dir, seed):
    pairs = read_csv_pairs(os.path.join(data_dir, "ko-chatbot", "ChatbotData.csv"), "Q", "A").pairs
    return _held_out(pairs, 500, 500, seed)


CORPORA = {
    "multi30k-de-en": _multi30k("de", "en"),
    "multi30k-en-de": _multi30k("en", "de"),
    "anki-spa-eng": _anki("spa-eng.txt.gz", to_english=True, validation=1000, test=2000),
    "anki-eng-spa": _anki("spa-eng.txt.gz", to_english=False, validation=1000, test=2000),
    "anki-kor-eng": _anki("kor-eng.txt.gz", to_english=True, validation=300, test=500),
    "anki-eng-kor": _anki("kor-eng.txt.gz", to_english=False, validation=300, test=500),
    "ko-chatbot": _chatbot,
}


def load_corpus(name, data_dir, seed=0):
    """(train, validation, test) pair lists of the corpus called `name`."""
    if name not in CORPORA:
        raise ValueError(f"Unknown corpus {name!r}; choose one of {sorted(CORPORA)}.")
    if not data_dir or not os.path.isdir(data_dir):
        raise ValueError(f"data_dir={data_dir!r} is not a folder; it should hold the corpora "
                         "(multi30k/, anki/, ko-chatbot/).")
    return CORPORA[name](data_dir, seed)
