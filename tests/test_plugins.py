"""Entry points are read once per process: a connect asked once per instrument, each command
line once more, and each read scans every installed distribution's metadata."""

from __future__ import annotations

import pytest

from smm_daq import plugins
from smm_daq.cli.main import build_parser
from smm_daq.instruments.profile import load_profile
from smm_daq.instruments.rig import DRIVER_GROUP, SIMULATOR_GROUP, driver_class, simulator_class


@pytest.fixture
def reads(monkeypatch) -> list[str]:
    """The groups read from the installed metadata, the cache emptied before and after."""
    read: list[str] = []
    real = plugins.entry_points

    def counted(*, group: str):
        read.append(group)
        return real(group=group)

    plugins.registered.cache_clear()
    monkeypatch.setattr(plugins, "entry_points", counted)
    yield read
    plugins.registered.cache_clear()


def test_each_group_is_read_once_whatever_asks_for_it(reads) -> None:
    profile = load_profile()
    for _ in range(3):
        for role in ("stage", "lockin"):
            driver_class(profile, role, getattr(profile, role).link.implementation)
        simulator_class(profile)
        build_parser()
    assert sorted(reads) == sorted({DRIVER_GROUP, SIMULATOR_GROUP, "smm_daq.commands"})


def test_the_groups_registered_are_read_only(reads) -> None:
    with pytest.raises(TypeError):
        plugins.registered(DRIVER_GROUP)["x"] = None  # type: ignore[index]


@pytest.mark.parametrize("value", ["smm_daq_no_such_plugin_module:Coils",
                                   "smm_daq.instruments.rig:NoSuchDriver"])
def test_a_plug_in_driver_that_cannot_be_loaded_is_named_with_its_error(monkeypatch, value):
    """A profile naming a plug-in whose package is missing or broken: the key, the entry
    point and the import's own error, not a traceback (validate loads the coil and lock-in
    drivers' classes before anything connects)."""
    from importlib.metadata import EntryPoint

    from smm_daq.errors import InputError
    from smm_daq.instruments import rig

    broken = EntryPoint(name="broken", value=value, group=DRIVER_GROUP)
    monkeypatch.setattr(rig, "registered", lambda group: {"broken": broken})
    with pytest.raises(InputError) as refused:
        driver_class(load_profile(), "coils", "broken")
    said = str(refused.value)
    assert f"key 'coils.implementation' is 'broken', whose driver {value!r} could not be " \
           "loaded (" in said
    assert ("ModuleNotFoundError" if "no_such" in value else "AttributeError") in said



@pytest.mark.parametrize(("role", "name"), [("coils", "sr830"), ("lockin", "pi_gcs"),
                                            ("stage", "kepco_bop"), ("fluxgate", "sr860"),
                                            ("coils", "kepco"), ("lockin", "SR830")])
def test_a_driver_named_for_another_instrument_is_refused_offering_the_role_s_own(
        tmp_path, capsys, role: str, name: str) -> None:
    """A profile naming an installed driver of another instrument for a role (the lock-in's
    for the coils), or no installed driver: refused through the command line, exit 2, naming
    the key and offering the drivers of that role's kind alone (every installed driver was
    offered, the coils' refusal naming 'sr830' as one to choose, and a driver of another
    kind was refused saying what it is not, not what was expected)."""
    import re
    from pathlib import Path

    from smm_daq.cli.main import main
    from smm_daq.instruments import rig

    own = {"coils": "'kepco_bop'", "lockin": "'sr830', 'sr860'", "stage": "'pi_gcs'",
           "fluxgate": "'dmm_fluxgate'"}
    text = (Path(__file__).resolve().parents[1] / "configs" / "simulator.toml").read_text()
    profile = tmp_path / "p.toml"
    profile.write_text(re.sub(rf"(?m)(^\[{role}\]\nimplementation = ).+$", rf'\g<1>"{name}"',
                              text, count=1))
    assert main(["check", "--profile", str(profile)]) == 2
    said = capsys.readouterr().err.strip()
    assert said.startswith(f"smm-daq: error: {profile}: key '{role}.implementation' is "
                           f"{name!r}"), said
    assert said.endswith(f"; expected the name of a {rig._ROLES[role].__name__} driver: one of "
                         f"{own[role]}"), said
