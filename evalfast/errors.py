"""Errors that are the user's to fix: the CLI prints their message and exits with status 2."""

from __future__ import annotations


class EvalfastError(Exception):
    """A mistake in the user's input: the message names the file, line or option and the fix."""


class GoldenSetError(EvalfastError):
    """A golden set file that cannot be read as queries, corpus and judgments."""


class ModelError(EvalfastError):
    """A model name or folder that cannot be exported or loaded."""
