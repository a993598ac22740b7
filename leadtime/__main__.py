"""`python -m leadtime` is the same as the `leadtime` console script."""

from leadtime import main

raise SystemExit(main())
