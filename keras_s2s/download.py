"""Fetching a corpus the way the TensorFlow NMT tutorial does, safely and verifiably.

`download_anki_spa_eng()` gets the tutorial's Spanish-English archive (cached by
`keras.utils.get_file`), checks its size and SHA-256, extracts it without letting any member
escape the target folder, and returns the path of `spa.txt` (`english<TAB>spanish` lines,
read with `read_tsv_pairs(path, 1, 0)` for spa->eng).

The publisher gives no checksum for that archive, so the first download records its SHA-256
beside the file and every later use verifies against the record ("trust on first use"); pass
`sha256=` to pin a digest you trust instead.
"""

import dataclasses
import hashlib
import os
import zipfile

import keras


@dataclasses.dataclass(frozen=True)
class Archive:
    url: str
    file_name: str
    size: int  # bytes, as published
    member: str  # the file inside the archive that holds the pairs


ANKI_SPA_ENG = Archive(
    url="http://storage.googleapis.com/download.tensorflow.org/data/spa-eng.zip",
    file_name="spa-eng.zip", size=2638744, member="spa-eng/spa.txt")


def sha256_of(path):
    digest = hashlib.sha256()
    with open(path, "rb") as file:
        for block in iter(lambda: file.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def download(archive, cache_dir=None, sha256=None):
    """Downloads `archive` (or finds it cached), verifies it and returns its local path.

    Raises:
        ValueError: the size or digest differs from what is expected.
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
    if sha256 is None and os.path.exists(record):
        with open(record, encoding="ascii") as file:
            sha256 = file.read().strip()
    if sha256 is not None and actual != sha256:
        raise ValueError(f"{path} has SHA-256 {actual}, expected {sha256}. Delete it and "
                         "download again, or check where it came from.")
    if not os.path.exists(record):
        with open(record, "w", encoding="ascii") as file:
            file.write(actual + "\n")
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
