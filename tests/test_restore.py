"""keras_s2s.restore: an export made again from an export alone, with the current graph."""

import numpy as np
import pytest
import tensorflow as tf

from keras_s2s import cli
from keras_s2s import translator as translator_lib


def greedy_and_beam(export_path, sources):
    """The greedy and beam-3 texts and scores of an export for `sources`."""
    loaded = translator_lib.load(export_path)
    text = tf.constant(sources)
    greedy = loaded.signatures["serving_default"](text=text)
    beam = loaded.signatures["beam"](text=text, beam_size=tf.constant(3))
    return {"greedy_text": greedy["text"].numpy().tolist(), "greedy_score": greedy["score"].numpy(),
            "beam_text": beam["text"].numpy().tolist(), "beam_score": beam["score"].numpy()}


@pytest.mark.slow  # a second export of the RNN dates model: over 15 s on 2 cores
def test_an_export_exported_again_from_itself_translates_identically(rnn_dates_model,
                                                                      rnn_dates_export, tmp_path,
                                                                      capsys):
    output = tmp_path / "dates" / "2"
    assert cli.main(["export", "--from-saved-model", rnn_dates_export, "--output", str(output)]) == 0
    assert f"Exported {output}" in capsys.readouterr().out
    sources = [source for source, _ in rnn_dates_model[2][:32]] + ["", "no date here ✓"]
    before, after = greedy_and_beam(rnn_dates_export, sources), greedy_and_beam(str(output), sources)
    assert after["greedy_text"] == before["greedy_text"]
    assert after["beam_text"] == before["beam_text"]
    np.testing.assert_allclose(after["greedy_score"], before["greedy_score"], atol=1e-5)
    np.testing.assert_allclose(after["beam_score"], before["beam_score"], atol=1e-5)


def test_a_directory_that_is_no_export_is_named(tmp_path, capsys):
    assert cli.main(["export", "--from-saved-model", str(tmp_path), "--output",
                     str(tmp_path / "out")]) == 2
    assert "No SavedModel at saved_model=" in capsys.readouterr().err
