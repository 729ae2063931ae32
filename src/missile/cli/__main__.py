"""``python -m missile.cli``."""

from missile.cli import main

main()
