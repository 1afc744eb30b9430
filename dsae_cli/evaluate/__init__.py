"""Evaluation: the judge classifier, the Sprites metrics of the papers, speaker verification."""
