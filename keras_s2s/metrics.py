"""Scores on decoded text: corpus BLEU and chrF (sacreBLEU), and exact match.

BLEU and chrF are computed on detokenised output against raw references, with sacreBLEU's
default 13a tokeniser, so figures are comparable with published sacreBLEU scores. Say which
you quote: `lowercase=True` gives the lower-cased BLEU many seq2seq tutorials report.
"""


def exact_match(hypotheses, references):
    """Share of hypotheses equal to their reference after stripping outer spaces (0..1)."""
    _check_lengths(hypotheses, references)
    matches = sum(h.strip() == r.strip() for h, r in zip(hypotheses, references))
    return matches / len(references)


def corpus_bleu(hypotheses, references, lowercase=False, tokenize="13a"):
    """Corpus BLEU (0..100) of one reference per hypothesis.

    Args:
        hypotheses, references: lists of detokenised strings, aligned.
        lowercase: compare lower-cased text.
        tokenize: sacreBLEU tokeniser; "13a" (default) for Western scripts, "char" or
            "ko-mecab" (needs its extra) for Korean, "zh" for Chinese.
    """
    from sacrebleu.metrics import BLEU

    _check_lengths(hypotheses, references)
    return BLEU(lowercase=lowercase, tokenize=tokenize).corpus_score(hypotheses, [references]).score


def corpus_chrf(hypotheses, references, lowercase=False):
    """Corpus chrF (0..100): character n-gram F-score, robust for morphologically rich text."""
    from sacrebleu.metrics import CHRF

    _check_lengths(hypotheses, references)
    return CHRF(lowercase=lowercase).corpus_score(hypotheses, [references]).score


def _check_lengths(hypotheses, references):
    if len(hypotheses) != len(references):
        raise ValueError(f"hypotheses and references differ in length: "
                         f"{len(hypotheses)} vs {len(references)}.")
    if not references:
        raise ValueError("references is empty.")
