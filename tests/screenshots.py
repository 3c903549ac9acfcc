"""Screenshots of pages for a reviewer (no pixel comparisons): into $SCREENSHOT_DIR, or
tests/artifacts/screenshots/ (git-ignored; CI keeps the folder as an artifact)."""

from __future__ import annotations

import os
from pathlib import Path

ROOT = Path(__file__).resolve().parent


def screenshot_dir() -> Path:
    folder = Path(os.environ.get("SCREENSHOT_DIR") or ROOT / "artifacts" / "screenshots")
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def shot(page, name: str) -> Path:
    """Save a full-page screenshot as `<name>.png` and return its path."""
    path = screenshot_dir() / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path
