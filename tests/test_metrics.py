import pytest

from keras_s2s.metrics import corpus_bleu, corpus_chrf, exact_match


def test_bleu_and_chrf_are_100_for_identical_text_and_lower_for_errors():
    references = ["a man is riding a horse .", "two dogs play in the snow ."]
    assert corpus_bleu(references, references) == pytest.approx(100.0)
    assert corpus_chrf(references, references) == pytest.approx(100.0)
    worse = ["a man rides a horse .", "two cats play in snow ."]
    assert 0 < corpus_bleu(worse, references) < 60
    assert 0 < corpus_chrf(worse, references) < 100


def test_lowercase_option_and_korean_character_tokenisation():
    assert corpus_bleu(["A Man Is Here ."], ["a man is here ."], lowercase=True) == pytest.approx(100)
    assert corpus_bleu(["A Man Is Here ."], ["a man is here ."]) < 100
    # Word-level BLEU gives no credit for a wrong particle; character level gives partial credit.
    hypothesis, reference = ["나는 사과을 먹는다"], ["나는 사과를 먹는다"]
    assert corpus_bleu(hypothesis, reference, tokenize="char") > corpus_bleu(hypothesis, reference)


def test_exact_match_and_length_checks():
    assert exact_match(["a", "b "], ["a", "c"]) == 0.5
    with pytest.raises(ValueError, match="differ in length"):
        corpus_bleu(["a"], ["a", "b"])
    with pytest.raises(ValueError, match="empty"):
        exact_match([], [])
