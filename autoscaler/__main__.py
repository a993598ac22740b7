"""`python -m autoscaler` is the same as the `leadtime` console script."""

from autoscaler.cli import main

raise SystemExit(main())
