"""``python -m storyclust`` runs the CLI."""
from .cli import main

main()
