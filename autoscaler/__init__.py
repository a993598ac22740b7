"""Leadtime's engine: policies, the control loop and the command line.

Policies here are pure functions of plain data; they import no adapter (docs/architecture.md §1).
"""

__version__ = "0.1.0"
