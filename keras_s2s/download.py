"""Fetching a corpus the way the TensorFlow NMT tutorial does, safely and verifiably.

`download_anki_spa_eng()` gets the tutorial's Spanish-English archive over HTTPS (cached by
`keras.utils.get_file`), checks its size and SHA-256, extracts it without letting any member
escape the target folder, and returns the path of `spa.txt` (`english<TAB>spanish` lines,
read with `read_tsv_pairs(path, 1, 0)` for spa->eng).

The publisher gives no checksum for that archive, and no copy of it lies beside the project
to take one from, so no digest can be pinned in this code. The first download is therefore
trusted on first use: its SHA-256 is recorded beside the file, the message says so, and every
later use is checked against that record. Pass `sha256=` (a digest you obtained another way)
to check the very first download too; a mismatch is refused with both digests.
"""

import dataclasses
import os
import zipfile

import keras

from keras_s2s.data import sha256_of


@dataclasses.dataclass(frozen=True)
class Archive:
    url: str
    file_name: str
    size: int  # bytes, as published
    member: str  # the file inside the archive that holds the pairs


ANKI_SPA_ENG = Archive(
    url="https://storage.googleapis.com/download.tensorflow.org/data/spa-eng.zip",
    file_name="spa-eng.zip", size=2638744, member="spa-eng/spa.txt")


def download(archive, cache_dir=None, sha256=None):
    """Downloads `archive` (or finds it cached), verifies it and returns its local path.

    Args:
        archive: what to fetch (`Archive`).
        cache_dir: the cache folder (default: Keras' own, ~/.keras).
        sha256: the digest the file must have; without it, the digest recorded at the first
            download (trust on first use).

    Raises:
        ValueError: the size or digest differs from what is expected; the message gives the
            expected and the received digest.
    """
    if cache_dir is not None:
        # get_file silently falls back to /tmp/.keras when cache_dir does not exist yet.
        os.makedirs(cache_dir, exist_ok=True)
    path = keras.utils.get_file(archive.file_name, origin=archive.url, cache_dir=cache_dir,
                                cache_subdir="keras_s2s")
    size = os.path.getsize(path)
    if archive.size is not None and size != archive.size:
        raise ValueError(f"{path} has {size} bytes, expected {archive.size}: a partial or "
                         "different download. Delete it and try again.")
    actual = sha256_of(path)
    record = path + ".sha256"
    expected, origin = sha256, "the sha256 argument"
    if expected is None and os.path.exists(record):
        with open(record, encoding="ascii") as file:
            expected, origin = file.read().strip(), f"the digest recorded at the first download ({record})"
    if expected is not None and actual != expected.lower():
        raise ValueError(f"{path} has SHA-256 {actual}, but {origin} is {expected}. Delete it "
                         "and download again, or check where it came from.")
    if not os.path.exists(record):
        with open(record, "w", encoding="ascii") as file:
            file.write(actual + "\n")
        if sha256 is None:
            print(f"{archive.file_name}: its publisher gives no checksum, so this first download "
                  f"is trusted on first use; its SHA-256 {actual} is recorded in {record} and "
                  "every later use is checked against it.")
    return path


def safe_extract(zip_path, target_dir):
    """Extracts a zip archive into `target_dir`, refusing any member that would land outside it
    (absolute paths, `..` components) or that is a symbolic link."""
    target = os.path.realpath(target_dir)
    with zipfile.ZipFile(zip_path) as archive:
        for member in archive.infolist():
            destination = os.path.realpath(os.path.join(target, member.filename))
            if os.path.commonpath([target, destination]) != target:
                raise ValueError(f"{zip_path}: member {member.filename!r} would be written "
                                 f"outside {target_dir}; refusing to extract.")
            if (member.external_attr >> 16) & 0o170000 == 0o120000:
                raise ValueError(f"{zip_path}: member {member.filename!r} is a symbolic link; "
                                 "refusing to extract.")
        archive.extractall(target)
    return target_dir


def download_anki_spa_eng(cache_dir=None, sha256=None, archive=ANKI_SPA_ENG):
    """The path of the extracted `spa-eng/spa.txt`, downloading and verifying it if needed."""
    zip_path = download(archive, cache_dir, sha256)
    folder = os.path.dirname(zip_path)
    text_path = os.path.join(folder, archive.member)
    if not os.path.exists(text_path):
        safe_extract(zip_path, folder)
    if not os.path.exists(text_path):
        raise ValueError(f"{zip_path} holds no {archive.member}.")
    return text_path
