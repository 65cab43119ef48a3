"""``python -m clipper_frontends.query``."""

from .cli import main

main()
