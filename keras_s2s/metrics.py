"""Scores on decoded text."""


def exact_match(hypotheses, references):
    """Share of hypotheses equal to their reference after stripping outer spaces (0..1)."""
    if len(hypotheses) != len(references):
        raise ValueError(f"hypotheses and references differ in length: "
                         f"{len(hypotheses)} vs {len(references)}.")
    if not references:
        raise ValueError("references is empty.")
    matches = sum(h.strip() == r.strip() for h, r in zip(hypotheses, references))
    return matches / len(references)
