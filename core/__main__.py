"""``python -m core`` is the ``portal`` command."""

from core.cli import main

main()
