"""``python -m evalfast``."""

from .cli import main

main()
