"""Placeholder: filled in by its feature issue."""

from flask import Flask


def init_app(app: Flask) -> None:
    """Register nothing yet."""
