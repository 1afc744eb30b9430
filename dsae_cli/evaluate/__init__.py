"""Evaluation: the judge classifier, the Sprites metrics of the papers (metrics: the numbers; sprites:
running them; report: tables and plots), speaker verification."""
