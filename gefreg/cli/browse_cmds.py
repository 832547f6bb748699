"""Commands that find and choose versions: list, show."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Any

import click

from gefreg.cli import cli
from gefreg.cli.options import json_option, load, settings_options

if TYPE_CHECKING:
    from gefreg.image.interface import ServiceInterface
    from gefreg.release.overview import EntryPage


def _say(text: str) -> None:
    """A line of `list` or `show`: ledgers and registries are not trusted to hold only text a
    terminal should see (a yank's date, a label, a scan summary may carry escape sequences)."""
    from gefreg.cli import ui

    click.echo(ui.shown(text))


@cli.command(name="list")
@settings_options
@json_option
def list_cmd(catalog: str | None, registry: str | None, as_json: bool) -> None:
    """List the catalog's entries with their newest release, digest and scan verdict.

    The newest release is the one `gefreg run NAME` uses: the highest version that is not
    yanked (pre-releases only when there is nothing else). Read from the release ledgers; the
    registry is not asked.

    \b
    Examples:
      gefreg list
      gefreg list --json | jq -r '.[] | select(.latest) | .name'
    """
    from gefreg.catalog.entries import resolve
    from gefreg.cli import ui
    from gefreg.release.overview import rows

    settings = load(catalog, registry)
    resolve(settings.catalog, [])  # an empty catalog is an error, not an empty list
    found = rows(settings)
    if as_json:
        ui.print_json([row.to_json() for row in found])
        return
    width = max(len(row.name) for row in found)
    for row in found:
        latest = row.latest
        if latest is None:
            state = f"(not published; the record is at {row.record_version or '?'})"
            _say(f"{row.name:<{width}}  {'-':<9} {state}")
            continue
        yanked = f", {row.yanked} yanked" if row.yanked else ""
        _say(
            f"{row.name:<{width}}  {latest.version:<9} {latest.published[:10]}  "
            f"{latest.digest[:19]}…  {latest.scan or 'no scan verdict'}"
            f"  ({ui.count(row.releases, 'release')}{yanked})"
        )


@cli.command()
@click.argument("target", metavar="NAME[@VERSION]")
@click.option("--sbom", "artifact", flag_value="sbom", help="Print the stored CycloneDX SBOM.")
@click.option(
    "--scan-report", "artifact", flag_value="scan", help="Print the stored scan report (JSON)."
)
@settings_options
@json_option
def show(
    target: str, artifact: str | None, catalog: str | None, registry: str | None, as_json: bool
) -> None:
    """Show an entry: every version with digest and date, and for one version (default: the
    newest usable one) its ports, command, resources, labels, scan verdict, SBOM and scan
    report in the registry, whether it is yanked, and how to run it.

    With --sbom or --scan-report, print that artifact as the registry stores it, after
    checking that it belongs to exactly this release. `v1.2.3` is understood as 1.2.3.

    \b
    Examples:
      gefreg show waveform-metadata
      gefreg show waveform-metadata@1.0.0 --json
      gefreg show waveform-metadata@1.0.0 --sbom > sbom.cdx.json
    """
    from gefreg.cli import ui
    from gefreg.errors import BadInput, EnvironmentFailure
    from gefreg.registry.client import RegistryClient
    from gefreg.release.overview import fetch_artifact, page, registry_part

    settings = load(catalog, registry)
    name, sep, version = target.partition("@")
    if sep and not version:
        raise BadInput(f"{target!r}: nothing after '@'", "write NAME or NAME@VERSION")
    found = page(settings, name, version or None)
    if artifact is not None:
        if found.release is None:
            raise BadInput(f"{name} has no published release with a {artifact}")
        with RegistryClient(settings.registry_url) as client:
            data = fetch_artifact(client, found.release, artifact)
        sys.stdout.buffer.write(data)
        return
    if found.release is not None:
        try:
            with RegistryClient(settings.registry_url) as client:
                part = registry_part(settings, client, name, found.release)
        except EnvironmentFailure as exc:
            part = {"error": exc.message}
        found = _with_registry(found, part)
    if as_json:
        ui.print_json(found.to_json())
    else:
        _print_page(found)


def _with_registry(found: EntryPage, part: dict[str, Any]) -> EntryPage:
    import dataclasses

    return dataclasses.replace(found, registry=part)


def _print_page(found: EntryPage) -> None:
    spec = found.spec
    title = found.name + (f" — {spec.description}" if spec else "  (the record is invalid)")
    _say(title)
    if spec is not None:
        _say(f"  license: {spec.license}; maintainers: {', '.join(spec.maintainers)}")
        for key in ("source", "documentation"):
            if getattr(spec, key):
                _say(f"  {key}: {getattr(spec, key)}")
    _say("versions:" if found.versions else "versions: none published yet")
    for info in reversed(found.versions):
        tags = f"  [{', '.join(info.floating)}]" if info.floating else ""
        _say(f"  {info.version:<10} {info.published}  {info.repository}@{info.digest}{tags}")
        if info.yanked is not None:
            _say(f"  {'':<10} YANKED {info.yanked.yanked[:10]}: {info.yanked.reason}")
    if spec is not None and spec.version not in {v.version for v in found.versions}:
        _say(f"  {spec.version:<10} (the record: not published yet)")
    selected = found.selected
    heading = selected.version if selected else (spec.version if spec else "?")
    _say(f"{found.name} {heading}:")
    if selected is not None and selected.yanked is not None:
        _say(f"  YANKED: {selected.yanked.reason} — `gefreg run` refuses it unless --allow-yanked")
    if found.interface is not None:
        _print_interface(found.interface)
    if selected is not None:
        _say(f"  scan: {selected.scan or 'no verdict in the ledger'}")
        _print_registry(found.registry, f"{found.name}@{selected.version}")
    command = found.run_command()
    if command:
        _say(f"run it:\n  {command}")


def _size(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:g} {unit}" if unit == "B" else f"{n:.3g} {unit}"
        n /= 1024
    return f"{n} B"


def _print_interface(interface: ServiceInterface) -> None:
    for side, ports in (("input", interface.inputs), ("output", interface.outputs)):
        for port in ports:
            _say(f"  {side} {port.name}: {port.path}")
    _say(f"  command: {' '.join(interface.command)}; user {interface.user}")
    r = interface.resources
    _say(
        f"  resources: memory {_size(r.memory)}, cpus {r.cpus:g}, timeout {r.timeout:g} s, "
        f"pids {r.pids}"
    )


def _print_registry(part: dict[str, Any], pinned: str) -> None:
    if "error" in part:
        _say(f"  registry: not reachable ({part['error']}): labels and artifacts not shown")
        return
    for kind, flag in (("sbom", "--sbom"), ("scan_report", "--scan-report")):
        digest = part.get(kind)
        shown = f"{digest}  (gefreg show {pinned} {flag})" if digest else "none in the registry"
        _say(f"  {kind.replace('_', ' ')}: {shown}")
    signature = part.get("signature")
    if signature is not None:
        _say(f"  signature: {signature.get('describe') or signature.get('state')}")
    labels = part.get("labels") or {}
    _say(f"  labels ({len(labels)}):")
    for key, value in sorted(labels.items()):
        _say(f"    {key}={value}")
