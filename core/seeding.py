"""Apply manifests and seed demo organizations through ``portal_seed_demo``."""

from __future__ import annotations

from pathlib import Path

from core.context import CurrentOrganization, system_context
from core.manifests import ApplyReport, ManifestError, apply_manifest, manifest_files, parse_manifest
from core.settings import Settings
from core.tables import Organization


async def apply_path(settings: Settings, path: Path, *, seed_demo: bool = False,
                     reset_console: bool = False) -> list[ApplyReport]:
    """Validate every manifest first, then apply each in its own transaction, then seed."""
    from core.app import create_app

    app = create_app(settings.with_overrides(outbox_worker=False))
    runtime = app.state.portal
    files = manifest_files(path)
    if not files:
        raise ManifestError(f"{path}: no *.toml manifests found")
    manifests = [(f, parse_manifest(f, set(runtime.themes.themes))) for f in files]
    reports = []
    for file, manifest in manifests:
        reports.append(await apply_manifest(manifest, file.parent, runtime.passwords, reset_console=reset_console))
    await runtime.directory.refresh()
    if seed_demo:
        for report in reports:
            tenant = await runtime.directory.by_slug(report.tenant)
            if tenant is None:
                continue
            for org_id in report.demo_organizations:
                row = await Organization.select().where(Organization.id == org_id).first()
                org = CurrentOrganization(row["id"], row["slug"], row["name"])
                ctx = system_context(runtime, tenant, organization=org)
                await runtime.plugins.call("portal_seed_demo", tenant=tenant, strict=True, ctx=ctx, org=org)
    return reports
