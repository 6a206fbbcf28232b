"""The shipped recipe's text for a copy written elsewhere (a test's own folder)."""

from __future__ import annotations

import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def shipped_recipe_text(name: str = "remanent-and-induced.toml") -> str:
    """The text of configs/recipes/`name`, its `[recipe] profile` (a path from the recipe's
    folder) made absolute, so that a copy in another folder still names the same profile."""
    text = (REPO / "configs" / "recipes" / name).read_text()
    return re.sub(r'^profile = "(.+)"$',
                  lambda m: f"profile = '{(REPO / 'configs' / 'recipes' / m[1]).resolve()}'",
                  text, count=1, flags=re.MULTILINE)
