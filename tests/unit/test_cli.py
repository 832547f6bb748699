"""The command line: exit codes, help on every command, fast start-up."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from gefreg.cli import cli
from tests.helpers import demo_entry, make_catalog


def run(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(cli, list(args), catch_exceptions=False)
    return result.exit_code, result.stdout, result.stderr


def all_commands(group: click.Group, prefix: str = "") -> list[tuple[str, click.Command]]:
    out = []
    for name, command in group.commands.items():
        out.append((prefix + name, command))
        if isinstance(command, click.Group):
            out += all_commands(command, prefix + name + " ")
    return out


def test_render_prints_the_dockerfile(catalog: Path) -> None:
    code, out, _ = run("render", "--catalog", str(catalog), "demo-service")
    assert code == 0
    assert out.startswith("# Rendered by gefreg")


def test_render_json(catalog: Path) -> None:
    code, out, _ = run("render", "--catalog", str(catalog), "demo-service", "--json")
    data = json.loads(out)
    assert code == 0 and data["entry"] == "demo-service"
    assert data["labels"]["org.gefreg.fingerprint"] == data["fingerprint"]


def test_invalid_record_exits_2_with_file_and_line(tmp_path: Path) -> None:
    catalog = make_catalog(tmp_path / "catalog", demo_entry(version="one"))
    code, _, err = run("render", "--catalog", str(catalog), "demo-service")
    assert code == 2
    assert "demo-service/service.yaml:2:10: version: expected a SemVer 2.0 version" in err


def test_missing_catalog_exits_2(tmp_path: Path) -> None:
    code, _, err = run("lint", "--catalog", str(tmp_path / "nowhere"))
    assert code == 2 and "does not exist" in err


def test_unknown_entry_exits_2_and_lists_entries(catalog: Path) -> None:
    code, _, err = run("render", "--catalog", str(catalog), "nope")
    assert code == 2 and "entries: demo-service" in err


def test_usage_error_exits_2(catalog: Path) -> None:
    code, _, _ = run("render", "--catalog", str(catalog))
    assert code == 2


@pytest.mark.parametrize(
    ("args", "lines"),
    [
        (
            ["render"],
            [
                "gefreg: error: missing argument 'ENTRY'",
                "  usage: gefreg render [OPTIONS] ENTRY",
                "  hint: `gefreg render --help` explains it, with examples",
            ],
        ),
        (
            ["lnt"],
            [
                "gefreg: error: no such command 'lnt'",
                "  hint: did you mean 'lint'?",
                "  usage: gefreg [OPTIONS] COMMAND [ARGS]...",
                "  hint: `gefreg --help` explains it, with examples",
            ],
        ),
        (["--bogus"], ["gefreg: error: no such option '--bogus'"]),
        (["base", "build", "--nope"], ["gefreg: error: no such option '--nope'"]),
        (
            ["new", "x", "--template", "foo"],
            [
                "gefreg: error: invalid value for '--template': 'foo' is not one of 'debian', "
                "'python', 'static'"
            ],
        ),
    ],
)
def test_usage_errors_speak_like_gefreg(args: list[str], lines: list[str]) -> None:
    result = CliRunner().invoke(cli, args, prog_name="gefreg")
    assert result.exit_code == 2
    err = result.stderr.splitlines()
    assert err[: len(lines)] == lines
    assert "Error:" not in result.stderr and "Try '" not in result.stderr


@pytest.mark.parametrize("group", [[], ["export"], ["trust"], ["registry"]])
def test_a_group_typed_alone_shows_its_help(group: list[str]) -> None:
    """`gefreg` alone asks for help: no `error: usage: …` wrapped around the whole help (click
    8.2 made it a usage error), the same text as --help, exit 0."""
    alone = CliRunner().invoke(cli, group, prog_name="gefreg")
    helped = CliRunner().invoke(cli, [*group, "--help"], prog_name="gefreg")
    assert (alone.exit_code, alone.stderr) == (0, "")
    assert alone.stdout == helped.stdout and alone.stdout.startswith("Usage: gefreg")


def test_lint_passes_a_clean_catalog(catalog: Path) -> None:
    code, out, _ = run("lint", "--catalog", str(catalog), "--json")
    report = json.loads(out)
    assert code == 0 and report["ok"] and report["entries"] == ["demo-service"]


def test_lint_of_invalid_record_exits_2(tmp_path: Path) -> None:
    catalog = make_catalog(tmp_path / "catalog", demo_entry(license="Nope"))
    code, out, err = run("lint", "--catalog", str(catalog))
    assert code == 2 and "license: not a valid SPDX license expression" in out
    # file:line:column, as the README promises (the record is JSON-style YAML, one key a line)
    record = catalog / "demo-service" / "service.yaml"
    assert f"{record}:4:10: error: record: license:" in out
    assert "lint failed: 1 entry, 1 finding" in err


def test_counts_read_as_english() -> None:
    from gefreg.cli.ui import count

    assert [count(n, "entry") for n in (0, 1, 2)] == ["0 entries", "1 entry", "2 entries"]
    assert count(3, "tag") == "3 tags" and count(1, "changed entry") == "1 changed entry"
    from gefreg import words

    assert count is words.count  # the library's messages (reproduce, publish) use the same


def test_lint_threshold_turns_warnings_into_failures(tmp_path: Path) -> None:
    catalog = make_catalog(tmp_path / "catalog", demo_entry(packages={"apt": ["curl"]}))
    assert run("lint", "--catalog", str(catalog))[0] == 0
    code, out, _ = run("lint", "--catalog", str(catalog), "--failure-threshold", "warning")
    assert code == 1 and "DL3008" in out


def test_lint_rule_ids_for_unlocked_base(tmp_path: Path) -> None:
    catalog = make_catalog(tmp_path / "catalog", demo_entry(), lock={})
    code, out, _ = run("lint", "--catalog", str(catalog), "--json")
    [finding] = json.loads(out)["findings"]
    assert code == 2 and finding["rule"] == "render" and "no digest" in finding["message"]


@pytest.mark.parametrize("name,command", all_commands(cli))
def test_every_command_has_help(name: str, command: click.Command) -> None:
    assert command.help and len(command.help) > 40, name
    code, out, _ = run(*name.split(), "--help")
    assert code == 0 and "Usage:" in out
    # With an example of the command typed out (a usage error's hint promises one): lint,
    # lock and base among them.
    examples = out.split("Example", 1)[1].split("\nOptions:")[0] if "Example" in out else ""
    typed = [line.strip() for line in examples.splitlines()]
    assert any(f"gefreg {name}" in line for line in typed), (name, out)


def test_help_does_not_import_heavy_libraries() -> None:
    code = (
        "import sys; from gefreg.cli import cli\n"
        "try:\n    cli(['--help'])\nexcept SystemExit:\n    pass\n"
        "heavy = [m for m in ('docker', 'jinja2', 'ruamel', 'rich', 'requests') "
        "if m in sys.modules]\nprint('HEAVY=' + ','.join(heavy))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip().splitlines()[-1] == "HEAVY="


def test_every_command_has_its_place_in_the_workflow_order() -> None:
    from gefreg.cli import ORDER

    assert sorted(ORDER) == sorted(cli.commands), set(ORDER) ^ set(cli.commands)
    overview = cli.help or ""
    for name in ("init", "new", "lint", "lock", "list", "show", "yank", "clean"):
        assert f"gefreg {name}" in overview, name
