"""The download helper, exercised on local file:// URLs (the code path is the same as http)."""

import dataclasses
import pathlib
import zipfile

import pytest

from keras_s2s.data import read_tsv_pairs
from keras_s2s.download import ANKI_SPA_ENG, download, download_anki_spa_eng, safe_extract, sha256_of


def make_archive(folder, members):
    path = folder / "spa-eng.zip"
    with zipfile.ZipFile(path, "w") as archive:
        for name, text in members.items():
            archive.writestr(name, text)
    return path


def local(archive_path, **changes):
    """The Anki archive description, pointed at a local file."""
    fields = {"url": pathlib.Path(archive_path).as_uri(), "size": archive_path.stat().st_size}
    return dataclasses.replace(ANKI_SPA_ENG, **{**fields, **changes})


def test_downloads_verifies_extracts_and_reads(tmp_path):
    source = make_archive(tmp_path, {"spa-eng/spa.txt": "Go.\tVe.\nHello!\t¡Hola!\n"})
    archive = local(source)
    text_path = download_anki_spa_eng(cache_dir=str(tmp_path / "cache"), archive=archive)
    assert pathlib.Path(text_path).is_relative_to(tmp_path / "cache")
    assert read_tsv_pairs(text_path, 1, 0).pairs == [("Ve.", "Go."), ("¡Hola!", "Hello!")]
    # The digest of the first download is recorded and checked on every later use.
    record = pathlib.Path(download(archive, str(tmp_path / "cache")) + ".sha256")
    assert record.read_text().strip() == sha256_of(source)


def test_a_different_file_is_refused(tmp_path):
    source = make_archive(tmp_path, {"spa-eng/spa.txt": "Go.\tVe.\n"})
    with pytest.raises(ValueError, match="SHA-256"):
        download(local(source), str(tmp_path / "cache"), sha256="0" * 64)
    with pytest.raises(ValueError, match="bytes, expected"):
        download(local(source, size=123), str(tmp_path / "other_cache"))
    # A cached file whose recorded digest no longer matches is refused too.
    cached = pathlib.Path(download(local(source), str(tmp_path / "third")))
    cached.with_name(cached.name + ".sha256").write_text("f" * 64)
    with pytest.raises(ValueError, match="SHA-256"):
        download(local(source), str(tmp_path / "third"))


def test_extraction_refuses_members_that_escape_the_folder(tmp_path):
    crafted = make_archive(tmp_path, {"spa-eng/spa.txt": "ok\tok\n", "../../escaped.txt": "x"})
    with pytest.raises(ValueError, match="outside"):
        safe_extract(crafted, tmp_path / "target")
    assert not (tmp_path / "escaped.txt").exists() and not (tmp_path.parent / "escaped.txt").exists()
    absolute = tmp_path / "absolute.zip"
    with zipfile.ZipFile(absolute, "w") as archive:
        archive.writestr("/tmp/keras_s2s_absolute_member.txt", "x")
    with pytest.raises(ValueError, match="outside"):
        safe_extract(absolute, tmp_path / "target2")
    link = tmp_path / "link.zip"
    with zipfile.ZipFile(link, "w") as archive:
        info = zipfile.ZipInfo("spa-eng/link")
        info.external_attr = 0o120777 << 16
        archive.writestr(info, "/etc/passwd")
    with pytest.raises(ValueError, match="symbolic link"):
        safe_extract(link, tmp_path / "target3")


def test_https_and_trust_on_first_use_said_and_both_digests_named(tmp_path, capsys):
    assert ANKI_SPA_ENG.url.startswith("https://")
    source = make_archive(tmp_path, {"spa-eng/spa.txt": "Go.\tVe.\n"})
    download(local(source), str(tmp_path / "cache"))
    assert "trusted on first use" in capsys.readouterr().out
    download(local(source), str(tmp_path / "cache"))  # checked against the record, quietly
    assert capsys.readouterr().out == ""
    wrong = "0" * 64
    with pytest.raises(ValueError) as refused:
        download(local(source), str(tmp_path / "pinned"), sha256=wrong)
    assert sha256_of(source) in str(refused.value) and wrong in str(refused.value)
