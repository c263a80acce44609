"""A model's conventions beyond its weights: which prompt each kind of text gets, and how vectors are compared.

Prompts are resolved as sentence-transformers resolves them: ``encode_query`` uses the prompt named "query",
``encode_document`` the first of "document", "passage", "corpus", and both fall back to the default prompt
(``default_prompt_name``), as plain ``encode`` does. MTEB applies a model's prompts the same way.
"""

from __future__ import annotations

import re

from evalfast.errors import ModelError
from evalfast.model.manifest import SIMILARITIES, Manifest

ROLE_PROMPT_NAMES = {"query": ("query",), "document": ("document", "passage", "corpus"), "plain": ()}
_BARE_WORD = re.compile(r"[A-Za-z_][\w-]*")


def resolve_prompt(manifest: Manifest, role: str, choice: str | None = None) -> str:
    """The text prepended to every ``role`` text ("query", "document" or "plain"), "" for none.

    ``choice`` (from --query-prompt, --document-prompt or --prompt): None for the model's default, a name of one
    of its prompts, or literal prompt text. A bare word that names none of its prompts is refused rather than
    read as text, so a mistyped name never silently becomes a prompt.
    """
    prompts = manifest.prompts
    if choice is not None:
        if choice in prompts:
            return prompts[choice]
        if _BARE_WORD.fullmatch(choice):
            known = ", ".join(prompts) or "none"
            raise ModelError(f"prompt {choice!r} is not one of the model's prompts ({known}); literal prompt text "
                             f"needs a space or punctuation, e.g. '{choice}: '")
        return choice
    for name in ROLE_PROMPT_NAMES[role]:
        if name in prompts:
            return prompts[name]
    return prompts.get(manifest.default_prompt_name, "") if manifest.default_prompt_name else ""


def check_similarity(name: str, where: str) -> str:
    """``name`` if evalfast can score with it; an error naming ``where`` (the model) otherwise."""
    if name not in SIMILARITIES:
        raise ModelError(f"{where}: similarity function {name!r} is not supported (evalfast ranks by "
                         f"{' or '.join(SIMILARITIES)}); scores would not be the model's")
    return name
