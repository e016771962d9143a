"""``python -m eocompress`` runs the CLI."""

from eocompress.cli import main

main()
