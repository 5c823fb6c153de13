"""``python -m sessionwarden``: the ``sessionwarden`` command."""

from sessionwarden.cli.main import main

raise SystemExit(main())
