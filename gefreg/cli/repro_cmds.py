"""Commands that prove what an image is: rebuild (a published version, bit for bit) and diff."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import click

from gefreg.cli import cli
from gefreg.cli.options import json_option, load, settings_options
from gefreg.errors import CheckFailed

if TYPE_CHECKING:
    from gefreg.image.image_diff import ImageDiff


@cli.command()
@click.argument("target", metavar="NAME@VERSION")
@click.option(
    "--record",
    is_flag=True,
    help="Append 'rebuilt: identical on DATE by gefreg X' to the ledger when it is (commit it).",
)
@settings_options
@json_option
def rebuild(
    target: str, record: bool, catalog: str | None, registry: str | None, as_json: bool
) -> None:
    """Rebuild a published version from its commit and compare it bit for bit.

    The record, shipped files and locks are taken from the catalog commit the ledger
    records (not from the working tree), the build starts clean (no cache), and the result
    is compared with the ledger's image ID and manifest digest.

    \b
    Exit codes: 0 bit-identical · 1 different (the difference is shown, as `gefreg diff`)
                3 the inputs are gone (a package version no longer in the archive, the
                  commit, the gefreg version that built it), named in the message

    \b
    Examples:
      gefreg rebuild fixity-manifest@1.0.0
      gefreg rebuild waveform-metadata@1.0.0 --record --json
    """
    from gefreg.cli import ui
    from gefreg.engine import Engine
    from gefreg.errors import BadInput
    from gefreg.release.rebuild import rebuild as run_rebuild

    name, _, version = target.partition("@")
    if not name or not version:
        raise BadInput(f"expected NAME@VERSION, got {target!r}", "e.g. fixity-manifest@1.0.0")
    settings = load(catalog, registry)
    engine = Engine.connect()
    with ui.Progress() as progress:
        result = run_rebuild(
            settings,
            name,
            version,
            engine=engine,
            record=record,
            on_step=progress.reporter(target),
        )
    if as_json:
        ui.print_json(result.to_json())
    else:
        verdict = "bit-identical" if result.identical else "DIFFERENT"
        click.echo(
            f"{name} {version}: {verdict} (rebuilt from the {result.source}, source date "
            f"{result.source_date['epoch']}, in {result.duration_s} s)\n"
            f"  published  {ui.shown(result.published_digest)}  "
            f"image {ui.shown(result.published_image_id)}\n"
            f"  rebuilt    {result.digest}  image {result.image_id}"
        )
        if result.note:
            click.echo(f"  ledger: {result.note.text}")
        if result.difference is not None:
            _print_diff(result.difference)
    if not result.identical:
        raise CheckFailed(f"{name} {version} did not rebuild bit for bit (see above)")


@cli.command(name="diff")
@click.argument("image_a", metavar="IMAGE_A")
@click.argument("image_b", metavar="IMAGE_B")
@click.option(
    "--content", is_flag=True, help="Show what changed inside changed files (needs diffoscope)."
)
@settings_options
@json_option
def diff_cmd(
    image_a: str,
    image_b: str,
    content: bool,
    catalog: str | None,
    registry: str | None,
    as_json: bool,
) -> None:
    """Compare two images: config, layers and files (path, size, mode, owner, time, sha256).

    IMAGE_A and IMAGE_B are image references, IDs, or NAME@VERSION of a published version
    (pulled by its ledger digest when the engine lacks it). Exit 0 when identical, 1 when
    they differ.

    \b
    Examples:
      gefreg diff fixity-manifest@1.0.0 gefreg/fixity-manifest:1.0.0
      gefreg diff sha256:3f2a… sha256:9b1c… --content
    """
    from gefreg.cli import ui
    from gefreg.engine import Engine
    from gefreg.image.image_diff import diff
    from gefreg.release.image_ref import local_image

    engine = Engine.connect()
    refs = [image_a, image_b]
    if any("@" in ref and not ref.partition("@")[2].startswith("sha256:") for ref in refs):
        settings = load(catalog, registry)
        refs = [local_image(settings, engine, ref) for ref in refs]
    with ui.Progress() as progress:
        result = diff(engine, refs[0], refs[1], content=content, on_step=progress.status)
    if as_json:
        ui.print_json(result.to_json())
    else:
        _print_diff(result)
    if not result.identical:
        raise CheckFailed("the images differ (see above)")


def _value(value: Any) -> str:
    from gefreg.cli.ui import shown

    text = shown(str(value)).replace("\n", "\\n")
    return text if len(text) <= 70 else text[:67] + "..."


def _print_diff(result: ImageDiff) -> None:
    """The difference as text. Everything in it comes from the images (file names, link
    targets, labels, diffoscope's rendering of their content): shown, never obeyed."""
    from gefreg.cli.ui import shown

    if result.identical:
        click.echo(f"identical: {shown(result.a_id)}")
        return
    click.echo(
        f"A {shown(result.a)} ({shown(result.a_id)})\nB {shown(result.b)} ({shown(result.b_id)})"
    )
    if result.config:
        click.echo(f"config: {len(result.config)} differences")
        for key, a, b in result.config:
            click.echo(f"  {_value(key)}: {_value(a)} -> {_value(b)}")
    if result.layers:
        click.echo(f"layers: {len(result.layers)} differ")
        for index, a, b in result.layers:
            click.echo(f"  #{index}: {_value(a or '-')} -> {_value(b or '-')}")
    if result.files:
        click.echo(f"files: {len(result.files)} differ")
    for change in result.files:
        path = shown(change.path).replace("\n", "\\n")
        if change.status != "changed" or change.a is None or change.b is None:
            click.echo(f"  {change.status:8} /{path}")
            continue
        fields = ", ".join(
            f"{f} {_value(getattr(change.a, f))} -> {_value(getattr(change.b, f))}"
            for f in change.fields
        )
        click.echo(f"  changed  /{path}: {fields}")
        if change.content:
            click.echo("\n".join("    " + line for line in shown(change.content).splitlines()))
