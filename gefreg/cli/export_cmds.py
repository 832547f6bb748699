"""Commands that hand releases to other engines: export cwl, export job, export crate."""

from __future__ import annotations

from pathlib import Path

import click

from gefreg.cli import cli
from gefreg.cli.options import json_option, load, settings_options


def _write(text: str, output: Path | None, force: bool) -> None:
    """Standard output, or ``output`` written atomically; an existing file only with --force."""
    from gefreg.errors import BadInput
    from gefreg.fsutil import atomic_write

    if output is None:
        click.echo(text, nl=False)
        return
    if output.exists() and not force:
        raise BadInput(f"{output} already exists", "choose another --output, or pass --force")
    atomic_write(output, text)
    click.echo(str(output), err=True)


@cli.group(name="export")
def export() -> None:
    """Hand a published release to other engines: CWL (cwltool, Toil → Slurm, Kubernetes…),
    job files for many folders, RO-Crates of runs.

    \b
    Examples:
      gefreg export cwl fixity-manifest@1.0.0 --output fixity.cwl
      gefreg export cwl fixity-manifest@1.0.0 --scatter --output fixity-scatter.cwl
      gefreg export job --port collection archives/*/ --output jobs.yml
      toil-cwl-runner --batchSystem slurm --jobStore /shared/js fixity-scatter.cwl jobs.yml
    """


@export.command(name="cwl")
@click.argument("target", metavar="NAME@VERSION")
@click.option("--scatter", is_flag=True, help="A Workflow over arrays of input folders.")
@click.option(
    "--output",
    "-o",
    type=click.Path(path_type=Path, dir_okay=False),
    metavar="FILE",
    help="Write here instead of standard output.",
)
@click.option("--force", is_flag=True, help="Replace an existing --output file.")
@settings_options
def export_cwl(
    target: str,
    scatter: bool,
    output: Path | None,
    force: bool,
    catalog: str | None,
    registry: str | None,
) -> None:
    """Print a published release as a CWL v1.2 CommandLineTool (or, with --scatter, a Workflow
    that runs it once per input folder).

    The release is resolved exactly as `gefreg run NAME@VERSION` resolves it (the catalog's
    ledger, the configured registry; refused the same way). The tool pulls the image by
    digest (REGISTRY/NAME@sha256:…), stages each input port (a Directory input named after
    the port) at its path in the image, collects each output port as a Directory output,
    and carries the limits (ResourceRequirement, ToolTimeLimit), NetworkAccess: false and
    schema.org annotations naming the release and its ledger line.

    \b
    Examples:
      gefreg export cwl fixity-manifest@1.0.0 > fixity.cwl
      cwltool fixity.cwl --collection data/
      gefreg export cwl waveform-metadata@1.0.0 --scatter -o wm.cwl
      gefreg export job --port archive stations/*/ -o stations.yml
      toil-cwl-runner --jobStore ./js wm.cwl stations.yml
    """
    from gefreg.engine import Engine
    from gefreg.export.cwl import command_line_tool, header, scatter_workflow, to_yaml
    from gefreg.export.release import resolve_release

    settings = load(catalog, registry)
    release = resolve_release(settings, Engine.connect(), target)
    doc = scatter_workflow(release) if scatter else command_line_tool(release)
    _write(to_yaml(doc, header(release, scatter)), output, force)


@export.command(name="job")
@click.argument("folders", nargs=-1, metavar="[PORT=]DIR...")
@click.option("--port", metavar="PORT", help="The input port of folders given without PORT=.")
@click.option(
    "--scatter/--single",
    default=None,
    help="Arrays for the scatter workflow, or one folder per port for the tool "
    "[default: arrays when a port has several folders].",
)
@click.option(
    "--output",
    "-o",
    type=click.Path(path_type=Path, dir_okay=False),
    metavar="FILE",
    help="Write here instead of standard output.",
)
@click.option("--force", is_flag=True, help="Replace an existing --output file.")
def export_job(
    folders: tuple[str, ...],
    port: str | None,
    scatter: bool | None,
    output: Path | None,
    force: bool,
) -> None:
    """Print a CWL job file for input folders: {PORT: {class: Directory, path: …}} for the
    tool, {PORT: [{class: Directory, path: …}, …]} for the --scatter workflow. Folders must
    exist; paths are written absolute, in the order given.

    \b
    Examples:
      gefreg export job --port collection data/ > job.yml
      gefreg export job --port archive stations/*/ -o stations.yml
      gefreg export job netcdf=a/ netcdf=b/ --scatter
    """
    import json

    from gefreg.export.job import job_document

    doc = job_document(folders, port=port, scatter=scatter)
    _write(json.dumps(doc, indent=2) + "\n", output, force)


@export.command(name="crate")
@click.argument("source", type=click.Path(path_type=Path, exists=True), metavar="RECORD")
@click.option(
    "--output",
    "-o",
    type=click.Path(path_type=Path, file_okay=False),
    required=True,
    metavar="DIR",
    help="Folder for the crate (DIR/ro-crate-metadata.json); created.",
)
@settings_options
@json_option
def export_crate(
    source: Path,
    output: Path,
    catalog: str | None,
    registry: str | None,
    as_json: bool,
) -> None:
    """Write a Workflow Run RO-Crate (Process Run Crate profile) of a run.

    RECORD is a gefreg run record (run.json; copied into the crate with its logs), or the
    folder that `cwltool --provenance DIR` or `toil-cwl-runner --provenance DIR` wrote (one
    action per container execution it records). Each image is looked up by digest in the
    catalog's ledger (configured registry): a release is named in the crate with its ledger
    line (path, line number, sha256); anything else is said to be no release of the catalog.

    \b
    Examples:
      gefreg export crate .gefreg/runs/20250131T120000Z-fixity-manifest-1a2b3c4d/run.json -o crate/
      cwltool --provenance prov/ fixity.cwl job.json && gefreg export crate prov/ -o crate/
    """
    from gefreg.cli import ui
    from gefreg.errors import BadInput
    from gefreg.export.crate import write_crate

    try:
        settings = load(catalog, registry)
    except BadInput:
        if catalog:
            raise
        settings = None  # no catalog here: the crate cannot name releases
    report = write_crate(source, output, settings)
    if as_json:
        ui.print_json(report.to_json())
        return
    click.echo(str(output / "ro-crate-metadata.json"))
    for ref, link in report.images.items():
        if link is None:
            click.echo(f"  {ref}: not a release of this catalog", err=True)
        else:
            where = f", {link.ledger.path} line {link.ledger.number}" if link.ledger else ""
            click.echo(f"  {ref}: {link.name} {link.version}{where}", err=True)
