"""The adapters, one folder each, against real servers where one can run."""
