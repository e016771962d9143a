"""``python -m eocompress`` runs the CLI."""

from .cli import main

main()
