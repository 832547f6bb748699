"""The command line: a thin click layer. Each command parses options, calls one library
function, and prints. Library modules are imported inside commands so `gefreg --help` stays fast
(no docker SDK, jinja2 or ruamel.yaml at start-up). The commands live in ``*_cmds`` modules
by subject; options (option bundles several commands share: --catalog/--registry, --json,
--policy, and the Trivy options `scan` and `publish` both take) and ui (progress, tables, JSON:
the only code that prints) serve them all."""

from __future__ import annotations

import sys
from typing import Any

import click

from gefreg import __version__
from gefreg.errors import EXIT_ENVIRONMENT, EXIT_INTERRUPTED, GefregError

ORDER = (
    "init",
    "new",
    "lint",
    "render",
    "lock",
    "base",
    "build",
    "scan",
    "test",
    "registry",
    "publish",
    "sign",
    "verify",
    "review",
    "list",
    "show",
    "yank",
    "run",
    "reproduce",
    "rebuild",
    "diff",
    "clean",
    "export",
    "serve",
    "token",
    "site",
    "key",
    "trust",
)

EPILOG = """\b
Exit codes: 0 success · 1 a check said no (policy, immutability, not reproduced)
            2 bad input or usage · 3 environment or tool failure · 130 interrupted"""


class Group(click.Group):
    """Lists commands in workflow order and maps gefreg errors to exit codes, in one place.
    Usage errors (click's) are reported like gefreg's own: `gefreg: error:` and a hint."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        known = [name for name in ORDER if name in self.commands]
        return known + sorted(set(self.commands) - set(known))

    def make_context(
        self,
        info_name: str | None,
        args: list[str],
        parent: click.Context | None = None,
        **extra: Any,
    ) -> click.Context:
        try:
            return super().make_context(info_name, args, parent, **extra)
        except click.UsageError as exc:  # e.g. `gefreg --bogus`
            from gefreg.cli import ui

            raise SystemExit(ui.usage_error(exc)) from None

    def invoke(self, ctx: click.Context) -> object:
        try:
            return super().invoke(ctx)
        except GefregError as exc:
            from gefreg.cli import ui

            ui.error(exc)
            ctx.exit(exc.exit_code)
        except click.UsageError as exc:  # a command's own arguments or options
            from gefreg.cli import ui

            ctx.exit(ui.usage_error(exc))
        except KeyboardInterrupt:
            click.echo("Interrupted.", err=True)
            ctx.exit(EXIT_INTERRUPTED)


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
      gefreg init [DIR]        start a catalog repository of your own
      gefreg new NAME          scaffold a catalog entry that builds and tests at once
      gefreg lint              check every catalog record and its Dockerfile
      gefreg render ENTRY      print the annotated Dockerfile of an entry
      gefreg lock ENTRY        lock an entry's pip (by hash) and apt (by version) packages
      gefreg base build --all  build the curated base images (reproducible digests)
      gefreg build ENTRY       build the image (cached by fingerprint)
      gefreg scan ENTRY        scan the built image and gate it with the policy
      gefreg test ENTRY        run the golden tests a record declares
      gefreg registry serve    start the embedded local registry
      gefreg publish ENTRY     publish an immutable version and append it to the ledger
      gefreg sign NAME@VER     sign a release (cosign layout) and attest its provenance
      gefreg verify            check the registry against the ledger
      gefreg review --base R   check a catalog pull request (what CI runs)
      gefreg list              the entries with their newest release
      gefreg show NAME         every version of an entry, and how to run it
      gefreg yank NAME@VER     mark a published version as not to be used (reason)
      gefreg run NAME@VERSION  run a pinned image on your data, hardened, and record it
      gefreg reproduce RECORD  re-run a recorded run and compare its outputs
      gefreg rebuild NAME@VER  rebuild a published version from its commit, bit for bit
      gefreg diff A B          compare two images down to single files
      gefreg clean             remove gefreg's own stale tags, containers and state
      gefreg export cwl NAME@VERSION  the release as CWL for cwltool, Toil, Slurm
      gefreg serve             the GEF instance: GA4GH TES API and web catalog

    Every command finds the catalog through --catalog DIR, else $GEFREG_CATALOG,
    else ./catalog. Add --json where offered for machine-readable output.
    """


def main() -> None:
    """Entry point. Anything that is not a GefregError is a bug: show it, exit 3."""
    try:
        cli(prog_name="gefreg")
    except Exception:
        import traceback

        traceback.print_exc()
        click.echo(
            "gefreg: internal error (a bug): please report it with the traceback above.", err=True
        )
        sys.exit(EXIT_ENVIRONMENT)


from gefreg.cli import (  # noqa: E402,F401,I001  (registers the commands)
    catalog_cmds,
    build_cmds,
    scan_cmds,
    run_cmds,
    test_cmds,
    registry_cmds,
    release_cmds,
    export_cmds,
    serve_cmds,
    signing_cmds,
    browse_cmds,
    repro_cmds,
)
