"""The command line: a thin click layer. Each command parses options, calls one library
function, and prints. Library modules are imported inside commands so `gefreg --help` stays fast
(no docker SDK, jinja2 or ruamel.yaml at start-up)."""

from __future__ import annotations

import sys
import traceback

import click

from gefreg import __version__
from gefreg.errors import EXIT_BAD_INPUT, EXIT_ENVIRONMENT, GefregError

EPILOG = """\b
Exit codes: 0 success · 1 a check said no (policy, immutability, not reproduced)
            2 bad input or usage · 3 environment or tool failure"""


class Group(click.Group):
    """Lists commands in the order they were added (the order of the workflow)."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return list(self.commands)


@click.group(
    cls=Group,
    context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100},
    epilog=EPILOG,
)
@click.version_option(__version__, prog_name="gefreg")
def cli() -> None:
    """Curate a registry of scientific service images.

    \b
    The workflow, one command per step:
      gefreg lint              check every catalog record and its Dockerfile
      gefreg render ENTRY      print the annotated Dockerfile of an entry

    Every command finds the catalog through --catalog DIR, else $GEFREG_CATALOG,
    else ./catalog. Add --json where offered for machine-readable output.
    """


def main() -> None:
    """Entry point: maps every error to its documented exit code, in one place."""
    try:
        cli.main(standalone_mode=False)
    except GefregError as exc:
        from gefreg import ui

        ui.error(exc)
        sys.exit(exc.exit_code)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
    except click.Abort:
        click.echo("Aborted.", err=True)
        sys.exit(130)
    except KeyboardInterrupt:
        click.echo("Interrupted.", err=True)
        sys.exit(130)
    except click.ClickException as exc:
        exc.show()
        sys.exit(EXIT_BAD_INPUT if isinstance(exc, click.UsageError) else exc.exit_code)
    except BrokenPipeError:
        sys.exit(0)
    except Exception:
        traceback.print_exc()
        click.echo("gefreg: internal error (a bug): please report it with the traceback above.",
                   err=True)
        sys.exit(EXIT_ENVIRONMENT)


from gefreg.cli import catalog_cmds  # noqa: E402,F401  (registers commands)
