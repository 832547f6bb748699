"""Commands for signing: key generate, trust add/revoke/list, sign."""

from __future__ import annotations

from pathlib import Path

import click

from gefreg.cli import cli
from gefreg.cli.options import json_option, load, settings_options

SIGN_KEY_HELP = (
    "Private key (gefreg.key) to sign with [default: $GEFREG_SIGNING_KEY]; "
    "an encrypted key reads its password from $GEFREG_SIGNING_PASSWORD."
)


def sign_key_option(func: click.decorators.FC) -> click.decorators.FC:
    return click.option(
        "--sign-key",
        envvar="GEFREG_SIGNING_KEY",
        type=click.Path(dir_okay=False, path_type=Path),
        metavar="FILE",
        help=SIGN_KEY_HELP,
    )(func)


@cli.group()
def key() -> None:
    """Signing keys (ECDSA P-256, in PEM formats cosign reads).

    \b
    Example:
      GEFREG_SIGNING_PASSWORD=... gefreg key generate ~/keys/curators
      gefreg trust add ~/keys/curators/gefreg.pub --id curators-2026
    """


@key.command("generate")
@click.argument("folder", type=click.Path(file_okay=False, path_type=Path))
@json_option
def key_generate(folder: Path, as_json: bool) -> None:
    """Write FOLDER/gefreg.key (private, PKCS#8 PEM, mode 0600) and FOLDER/gefreg.pub.

    The private key is encrypted when $GEFREG_SIGNING_PASSWORD is set (recommended; cosign
    can import it with `cosign import-key-pair`). Existing keys are never overwritten. Add the
    public key to the catalog with `gefreg trust add FOLDER/gefreg.pub --id ID`.

    \b
    Example:
      GEFREG_SIGNING_PASSWORD=s3cret gefreg key generate keys/ci-2026
    """
    from gefreg.cli import ui
    from gefreg.release import keys

    pair = keys.generate(folder, keys.password_from_env())
    if as_json:
        ui.print_json(
            {
                "private": str(pair.private),
                "public": str(pair.public),
                "encrypted": pair.encrypted,
                "fingerprint": pair.fingerprint,
            }
        )
        return
    state = "encrypted" if pair.encrypted else "NOT encrypted (set GEFREG_SIGNING_PASSWORD)"
    click.echo(f"private key: {pair.private} ({state})")
    click.echo(f"public key:  {pair.public} ({pair.fingerprint})")
    click.echo(f"next: gefreg trust add {pair.public} --id ID", err=True)


@cli.group()
def trust() -> None:
    """Which keys may sign which entries: CATALOG/trust.yaml.

    Every run, test, reproduce and verify checks a release's signature and provenance against
    this file. Commit changes to it; `gefreg review` checks them like any catalog change.

    \b
    Examples:
      gefreg trust add keys/ci-2026/gefreg.pub --id ci-2026 --entry 'seis-*'
      gefreg trust revoke laptop-2025 --reason "laptop stolen"
      gefreg trust list
    """


@trust.command("add")
@click.argument("public_key", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--id", "key_id", required=True, help="A name for the key, e.g. curators-2026.")
@click.option(
    "--entry",
    "entries",
    multiple=True,
    metavar="GLOB",
    help="Entries this key may sign (repeatable glob) [default: every entry].",
)
@click.option(
    "--expires",
    type=click.DateTime(formats=["%Y-%m-%d"]),
    help="Last day the key is trusted (YYYY-MM-DD).",
)
@settings_options
def trust_add(
    public_key: Path,
    key_id: str,
    entries: tuple[str, ...],
    expires: object,
    catalog: str | None,
    registry: str | None,
) -> None:
    """Add PUBLIC_KEY (a gefreg.pub) to trust.yaml under --id.

    A new trust.yaml starts with require-signatures: false; set it to true once every
    release in use is signed.

    \b
    Example:
      gefreg trust add keys/curators-2026/gefreg.pub --id curators-2026 --entry 'waveform-*'
    """
    from datetime import datetime

    from gefreg.release import keys, trust_policy

    settings = load(catalog, registry)
    day = expires.date() if isinstance(expires, datetime) else None
    policy = trust_policy.add_key(
        settings.catalog, keys.load_public_key(public_key), key_id, entries, day
    )
    added = policy.key(key_id)
    assert added is not None
    click.echo(
        f"{policy.path}: added {key_id} ({added.public_key.fingerprint}) for "
        f"{', '.join(added.entries)}; require-signatures: {str(policy.require_signatures).lower()}"
    )


@trust.command("revoke")
@click.argument("key_id")
@click.option("--reason", required=True, help="Why, for the next reviewer.")
@settings_options
def trust_revoke(key_id: str, reason: str, catalog: str | None, registry: str | None) -> None:
    """Mark KEY_ID revoked: its signatures are refused from now on, by name.

    The key stays listed so that its signatures are recognised and refused. Re-sign the
    releases it signed with another key (`gefreg sign NAME@VERSION --sign-key FILE`).

    \b
    Example:
      gefreg trust revoke curators-2025 --reason "the laptop holding it was stolen"
    """
    from datetime import date

    from gefreg.release import trust_policy

    settings = load(catalog, registry)
    policy = trust_policy.revoke(settings.catalog, key_id, reason, date.today())
    click.echo(f"{policy.path}: revoked {key_id}: {reason}")


@trust.command("list")
@settings_options
@json_option
def trust_list(catalog: str | None, registry: str | None, as_json: bool) -> None:
    """Show the keys of trust.yaml and what each may sign.

    \b
    Example:
      gefreg trust list --json
    """
    from gefreg.cli import ui
    from gefreg.release import trust_policy

    policy = trust_policy.load(load(catalog, registry).catalog)
    if as_json:
        ui.print_json(policy.to_json())
        return
    if not policy.exists:
        click.echo(f"{policy.path} does not exist: no keys, signatures not required")
        return
    click.echo(f"require-signatures: {str(policy.require_signatures).lower()}")
    for k in policy.keys:
        state = f"revoked: {k.revoked.reason}" if k.revoked else "active"
        until = f", until {k.expires.isoformat()}" if k.expires else ""
        click.echo(f"{k.id}  {k.public_key.fingerprint}  {', '.join(k.entries)}  ({state}{until})")


@cli.command()
@click.argument("targets", nargs=-1, required=True)
@sign_key_option
@settings_options
@json_option
def sign(
    targets: tuple[str, ...],
    sign_key: Path | None,
    catalog: str | None,
    registry: str | None,
    as_json: bool,
) -> None:
    """Sign published releases again: TARGETS are NAME@VERSION (key rotation, releases
    published before signing).

    Adds a cosign signature (sha256-<hex>.sig) and the provenance and scan-verdict
    attestations (sha256-<hex>.att) by the key, next to the signatures already there. The key
    must be listed in trust.yaml for the entry. What the attestations state comes from the
    release's ledger line.

    \b
    Example:
      gefreg sign waveform-metadata@1.0.0 --sign-key keys/curators-2026/gefreg.key
    """
    from datetime import date

    from gefreg.cli import ui
    from gefreg.errors import BadInput
    from gefreg.model import NAME_RE
    from gefreg.registry.client import RegistryClient
    from gefreg.release import keys, ledger, signing, trust_policy

    settings = load(catalog, registry)
    if sign_key is None:
        raise BadInput("no signing key", "pass --sign-key FILE or set GEFREG_SIGNING_KEY")
    key_ = keys.load_signing_key(sign_key, keys.password_from_env())
    policy = trust_policy.load(settings.catalog)
    results = []
    with RegistryClient(settings.registry_url) as client:
        for target in targets:
            name, _, version = target.partition("@")
            known = NAME_RE.match(name) and version
            release = ledger.find(ledger.read(settings.catalog / name), version) if known else None
            if release is None:
                raise BadInput(
                    f"{target}: not a published release",
                    "give NAME@VERSION of a release in the entry's releases.jsonl",
                )
            if release.repository != f"{settings.registry}/{name}":
                raise BadInput(
                    f"{target} was published to {release.repository}, not to the configured "
                    f"registry {settings.registry}",
                    f"pass --registry {release.repository.rsplit('/', 1)[0]}",
                )
            signed = signing.sign_release(client, policy, name, release, key_, date.today())
            results.append(signed.to_json())
            if not as_json:
                click.echo(
                    f"{target}: signed by {signed.key_id}: {signed.reference} "
                    f"(signature {signed.signature_digest[:19]}, "
                    f"attestations {signed.attestation_digest[:19]})"
                )
    if as_json:
        ui.print_json(results if len(results) != 1 else results[0])
