"""The command line: its commands, JSON shapes, tables and the corpus runs."""
