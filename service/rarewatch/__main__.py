"""`python -m rarewatch` is the same as the `rarewatch` command."""

from rarewatch.cli import main

raise SystemExit(main())
