"""The pure policies, each against hand-computed cases and its upstream's rules, and properties
every policy keeps (no event loop, no network)."""
