"""Helpers the tests share: one module per concern, imported by test modules (which never import
each other)."""
