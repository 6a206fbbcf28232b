"""What the documentation tells a user to type is what the program takes.

Every `smm-daq` command line in a code block of README.md and docs/ (and in the example
comments of configs/) parses with the real parser as written; every option named beside
`smm-daq` in their prose exists in that command's parser; every option a benchmark's usage
line or README names for a benchmark script is one the script defines, and README's Benchmarks
section names every script; and CI runs the README's test command. The commands' behaviour is
tested elsewhere: this guards the spelling.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import re
import shlex
from pathlib import Path

import pytest

from smm_daq.cli.main import build_parser

ROOT = Path(__file__).resolve().parent.parent
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]
CONFIGS = sorted((ROOT / "configs").rglob("*.toml"))
BENCHMARKS = sorted((ROOT / "benchmarks").glob("*.py"))
OPTION = re.compile(r"(?<![\w-])(--[a-zA-Z][a-zA-Z0-9-]*)")


def _joined(text: str) -> str:
    """Continued lines (a backslash at the end, in a shell block or a comment) made one."""
    return re.sub(r"\\\n[#\s]*", " ", text)


def _code_block_commands() -> list[tuple[str, str]]:
    found = []
    for doc in DOCS:
        for block in re.findall(r"```(?:bash|sh)?\n(.*?)```", doc.read_text(), re.S):
            for line in _joined(block).splitlines():
                command = re.search(r"(?:^|&& |/)(smm-daq\s.*)$", line.split(" #")[0].strip())
                if command:
                    found.append((doc.name, command.group(1)))
    for config in CONFIGS:
        for line in _joined(config.read_text()).splitlines():
            command = re.match(r"#\s{2,}(smm-daq\s.*)$", line)  # an indented example
            if command:
                found.append((config.name, command.group(1)))
    return found


def _docstring(script: Path) -> str:
    text = script.read_text()
    return text.split('"""')[1] if text.startswith('"""') else ""


def _prose_mentions() -> list[tuple[str, str]]:
    """`smm-daq ...` spans in backticks outside code blocks, in the docs and the benchmarks'
    docstrings (placeholders allowed)."""
    texts = [(doc.name, re.sub(r"```.*?```", "", doc.read_text(), flags=re.S)) for doc in DOCS]
    texts += [(script.name, _docstring(script)) for script in BENCHMARKS]
    return [(name, " ".join(span.split())) for name, text in texts
            for span in re.findall(r"`(smm-daq [^`]+)`", _joined(text))]


def _subcommands(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return dict(action.choices)
    return {}


def _parser_of(words: list[str]) -> tuple[argparse.ArgumentParser, list[str]]:
    """The parser of the (sub)command the words name, and the words after its name."""
    parser = build_parser()
    while words and words[0] in _subcommands(parser):
        parser, words = _subcommands(parser)[words[0]], words[1:]
    return parser, words


COMMANDS = _code_block_commands()
MENTIONS = _prose_mentions()


def test_the_docs_hold_the_commands_this_test_reads() -> None:
    """The extraction itself works: the README's demo and a docs page's command are found."""
    assert ("README.md", "smm-daq demo --out demo.h5") in COMMANDS
    assert any(name == "mmt-models.md" for name, _ in COMMANDS)
    assert any(name.endswith(".toml") for name, _ in COMMANDS)
    assert len(MENTIONS) > 10


@pytest.mark.parametrize(("doc", "command"), COMMANDS, ids=[c for _, c in COMMANDS])
def test_each_documented_command_line_parses_as_written(doc: str, command: str) -> None:
    err = io.StringIO()
    try:
        with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
            build_parser().parse_args(shlex.split(command)[1:])
    except SystemExit:
        pytest.fail(f"{doc}: `{command}` does not parse: {err.getvalue().strip()}")


@pytest.mark.parametrize(("doc", "span"), MENTIONS, ids=[s for _, s in MENTIONS])
def test_each_option_named_in_the_prose_exists(doc: str, span: str) -> None:
    parser, words = _parser_of(span.removeprefix("smm-daq ").removeprefix("gui: ").split())
    known = {s for action in parser._actions for s in action.option_strings}
    unknown = [o for o in OPTION.findall(" ".join(words)) if o not in known]
    assert not unknown, f"{doc}: `{span}` names {unknown}, which {parser.prog} does not take"


def _benchmark_usages() -> list[tuple[str, str, str]]:
    """(where, script, the options named) for each line that runs or names a benchmark."""
    found = []
    texts = [(doc.name, doc.read_text()) for doc in DOCS]
    texts += [(script.name, _docstring(script)) for script in BENCHMARKS]
    for where, text in texts:
        for line in _joined(text).splitlines():
            for script, rest in re.findall(r"`?(\w+\.py)`?((?:\s+`?\[?--[^,;)]*)?)", line):
                if (ROOT / "benchmarks" / script).exists() and OPTION.search(rest):
                    found.append((where, script, " ".join(OPTION.findall(rest))))
    return found


USAGES = _benchmark_usages()


def test_the_benchmark_usage_lines_are_found() -> None:
    scripts = {script for _, script, _ in USAGES}
    assert {"mmt_scale.py", "acquisition_per_point.py", "gui_mmt_scale.py"} <= scripts
    assert ("mmt-models.md", "mmt_scale.py", "--preset --model --device") in USAGES


@pytest.mark.parametrize(("where", "script", "options"), USAGES,
                         ids=[f"{w}:{s}" for w, s, _ in USAGES])
def test_each_benchmark_option_named_exists(where: str, script: str, options: str) -> None:
    source = (ROOT / "benchmarks" / script).read_text()
    defined = set(re.findall(r"add_argument\(\s*\"(--[a-zA-Z0-9-]+)\"", source))
    unknown = [o for o in options.split() if o not in defined]
    assert not unknown, f"{where}: {script} does not define {unknown}"


def test_ci_runs_the_readme_test_command() -> None:
    """.ci/run installs the test extras, warms numba's cache and runs pytest with the
    README's arguments, in the README's order."""
    readme = (ROOT / "README.md").read_text()
    line = next(line for line in readme.splitlines() if "-m pytest" in line)
    assert 'pip install -e ".[test]"' in line and "QT_QPA_PLATFORM=offscreen" in line
    assert "python tests/warm_numba.py && " in line.split("-m pytest", 1)[0]
    ci = (ROOT / ".ci" / "run").read_text()
    assert 'pip install --quiet -e ".[test]"' in ci and "export QT_QPA_PLATFORM=offscreen" in ci
    readme_args = line.split("-m pytest", 1)[1].split()
    steps = ci.splitlines()
    ci_runs = [c.split("-m pytest", 1)[1].split() for c in steps
               if c.startswith("python -m pytest")]
    assert ci_runs == [readme_args]
    pytest_at = next(i for i, c in enumerate(steps) if c.startswith("python -m pytest"))
    assert "python tests/warm_numba.py" in steps[:pytest_at]


def test_readme_says_what_each_benchmark_script_measures() -> None:
    """Every script in benchmarks/ is named in README's Benchmarks section, where a reader
    looks for what can be measured."""
    readme = (ROOT / "README.md").read_text()
    section = readme.split("\n## Benchmarks\n", 1)[1].split("\n## ", 1)[0]
    scripts = sorted(p.name for p in (ROOT / "benchmarks").iterdir() if p.suffix in (".py", ".sh"))
    missing = [s for s in scripts if f"`{s}" not in section]
    assert not missing, f"README's Benchmarks section does not name {missing}"


def test_readme_names_each_shipped_recipe() -> None:
    """README says how many recipes configs/recipes/ holds and names each, so a new user
    finds the one for their stage (and learns they need files of their own)."""
    readme = _joined((ROOT / "README.md").read_text())
    recipes = sorted(p.name for p in (ROOT / "configs" / "recipes").glob("*.toml"))
    words = ["none", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"]
    said = re.search(r"`configs/recipes/` holds (\w+)", readme)
    assert said and said.group(1) == words[len(recipes)], said
    missing = [r for r in recipes if f"`{r}`" not in readme]
    assert not missing, f"README does not name the shipped recipes {missing}"

