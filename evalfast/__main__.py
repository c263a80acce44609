"""``python -m evalfast``."""

from evalfast.cli import main

if __name__ == "__main__":
    main()
