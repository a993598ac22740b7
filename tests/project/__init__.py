"""The project as a whole: its import graph and its scripts."""
