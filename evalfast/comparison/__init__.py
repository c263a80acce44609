"""Comparing evaluations: bootstrap intervals, paired significance tests, Holm correction."""
