"""README's reference of the recipe format names every step kind and every key the recipe
reader takes, each under its own table or kind, and no key the reader refuses.

What the reader takes is asked of the reader itself: a table or step given an unknown key is
refused with the keys it expects, and an unknown kind with the kinds; so a key added to the
reader and not to README, or one README names that the reader does not take, fails here.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from smm_daq.acquisition.recipe import parse_recipe
from smm_daq.errors import InputError

README = Path(__file__).resolve().parent.parent / "README.md"
STEP = '[[step]]\nkind = "{kind}"\n'


def _expected(text: str) -> list[str]:
    """The names a refusal of `text` says it expected ("expected one of 'a', 'b'")."""
    with pytest.raises(InputError) as refused:
        parse_recipe(text)
    return re.findall(r"'([^']+)'", str(refused.value).split("expected one of", 1)[1])


def _kinds() -> list[str]:
    return _expected(STEP.format(kind="no_such_kind"))


def _section() -> str:
    """README's paragraph and list of the recipe format."""
    text = README.read_text()
    start = text.index("A recipe (`smm-daq run RECIPE.toml")
    return text[start:text.index("\n\n", text.index("\n- `subtract`", start))]


def _item(kind: str) -> str:
    """The list item of one step kind."""
    return re.search(rf"^- `{kind}`:.*?(?=^- |\Z)", _section(), re.S | re.M).group(0)


def _named(text: str) -> set[str]:
    return set(re.findall(r"`([A-Za-z_]+)`", text))


def test_readme_lists_every_step_kind_the_reader_takes() -> None:
    kinds = _kinds()
    assert {"scan", "subtract", "wait", "prompt"} <= set(kinds)
    listed = re.findall(r"^- `([a-z_]+)`:", _section(), re.M)
    assert listed == kinds


def _keys(kind: str) -> set[str]:
    """The keys a step of `kind` takes, as its refusal of an unknown key says them."""
    return set(_expected(STEP.format(kind=kind) + "no_such_key = 1\n")) - {"kind"}


@pytest.mark.parametrize("kind", _kinds())
def test_readme_names_each_key_of_a_step_kind_and_only_those(kind: str) -> None:
    """A key named in another kind's item only (`register` under `scan`) is caught too."""
    keys = _keys(kind)
    item = _item(kind)
    assert not keys - _named(item), f"README's `{kind}` item leaves out {keys - _named(item)}"
    any_kinds = set().union(*(_keys(k) for k in _kinds()))
    said = {k for k in _named(item) if "_" in k or k in any_kinds} - keys - set(_kinds())
    assert not said, f"README's `{kind}` item names {said}, which the reader refuses there"


def test_readme_names_the_keys_of_the_recipe_and_scan_defaults_tables() -> None:
    head = set(_expected('[recipe]\nno_such_key = 1\n' + STEP.format(kind="zero_field")))
    defaults = set(_expected('[scan_defaults]\nno_such_key = 1\n'
                             + STEP.format(kind="zero_field")))
    scan = set(_expected(STEP.format(kind="scan") + "no_such_key = 1\n")) - {"kind"}
    intro = _section().split("\n- ", 1)[0]
    assert head <= _named(intro)
    assert "`[scan_defaults]`" in intro and "any\nscan key but `name`" in intro
    assert defaults == scan - {"name"}
