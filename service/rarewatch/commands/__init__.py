"""Implementations of CLI commands that work on files and streams; `cli` parses arguments and calls them."""
