"""Which instrument profile `smm-daq run` uses: --profile, else the one the recipe names
(`[recipe] profile`, relative to the recipe's folder, `~` the user's home), else the
simulator's default.

A recipe's grid is written for one stage: run on another profile it may scan where no sample
lies (empty maps, exit 0), so the profile used is always said before the recipe starts.
"""

from __future__ import annotations

from pathlib import Path

from smm_daq.acquisition.recipe import Recipe
from smm_daq.errors import InputError
from smm_daq.instruments.profile import DEFAULT_PROFILE, Profile, load_profile
from smm_daq.text_files import quoted


def named_profile(recipe: Recipe, recipe_path: str | Path) -> Path | None:
    """The profile the recipe names, its path taken from the recipe's folder; None if none.
    A recipe given by a link is the file the link leads to: its profile is named from where
    it was written (a shipped recipe linked into a sample's folder names its own). A path
    beginning with `~` is taken from the user's home folder, as a shell would (InputError
    where there is none: `~name` of no user)."""
    if not recipe.profile:
        return None
    path = Path(recipe_path)
    try:
        named = Path(recipe.profile).expanduser()
    except RuntimeError:  # '~name' of no user, or '~' with no home folder known
        user = recipe.profile.split("/", 1)[0]
        whose = (f"'{user}' names the home folder of a user this computer does not have"
                 if user != "~" else "no home folder is known to take '~' from (HOME unset)")
        raise InputError(f"[recipe]: 'profile' is {quoted(recipe.profile)}, but {whose}; "
                         "expected a path from the recipe's folder, or one from your home "
                         "folder written '~/...'", source=str(recipe_path)) from None
    return (path.resolve() if path.is_symlink() else path).parent / named


def names_profile(named: Path, profile: Profile) -> bool:
    """Whether `named` (a path the recipe names) leads to the file `profile` was loaded from;
    False where it cannot be followed (a link looping on itself), as it names none."""
    try:
        return named.resolve() == profile.path
    except (OSError, RuntimeError):  # RuntimeError: a link loop, before Python 3.13
        return False


def run_profile(recipe: Recipe, recipe_path: str | Path, given: str | None
                ) -> tuple[Profile, list[str]]:
    """The profile to run `recipe` with and the lines saying which (and, where --profile
    replaces the recipe's own, that it does). A profile the recipe names that cannot be loaded
    is InputError naming the recipe's key, its value and the path it was looked for at."""
    named = named_profile(recipe, recipe_path)
    if given is not None:
        profile = load_profile(given)
        lines = [f"profile {given} (--profile)"]
        if named is not None and not names_profile(named, profile):
            lines.append(f"note: --profile {given} is used instead of {named}, the profile "
                         f"the recipe names ([recipe] profile = {quoted(recipe.profile)})")
        return profile, lines
    if named is None:
        return load_profile(None), [
            f"profile {DEFAULT_PROFILE} (the simulator's, the default: the recipe names none "
            "in [recipe] profile and no --profile was given)"]
    try:
        profile = load_profile(named)
    except InputError as exc:
        raise InputError(f"[recipe]: 'profile' is {quoted(recipe.profile)}, taken from the "
                         f"recipe's folder: {exc}", source=str(recipe_path)) from None
    return profile, [f"profile {named} (named by the recipe)"]
