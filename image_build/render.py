"""Human-readable rendering of a plan (the `plan` command without --json)."""

from __future__ import annotations

from rich.console import Console
from rich.table import Table

from image_build.plan import Plan


def render_plan(plan: Plan, console: Console | None = None) -> None:
    console = console or Console()
    dist = plan.distribution
    console.print(f"[bold]{plan.profile}[/] — {plan.description}")
    console.print(f"board: {plan.board}")
    console.print(
        f"base: {dist['name']} {dist['suite']} {plan.architecture} (variant {dist['variant']}, "
        f"python {dist['python']}) from {dist['mirror']}"
    )
    console.print("[bold]apt sources[/]")
    for source in plan.apt_sources:
        tag = " [yellow](vendor)[/]" if source["vendor"] else ""
        console.print(f"  {source['line']}{tag}", markup=True, highlight=False)
    if plan.left_out["sources"]:
        console.print(
            f"[yellow]left out (--offline)[/]: sources {', '.join(plan.left_out['sources'])}"
        )
        console.print(f"  packages {' '.join(plan.left_out['packages'])}", highlight=False)
    console.print(
        f"[bold]packages[/] ({len(plan.packages)}): {' '.join(plan.packages)}", highlight=False
    )
    table = Table(title="layout", show_edge=False)
    for col in ("#", "name", "fs", "mount", "size MiB", "type", "PARTUUID"):
        table.add_column(col)
    for part in plan.partitions:
        size = str(part.size_mib) if part.size_mib else "content+headroom (grown at first boot)"
        table.add_row(
            str(part.number),
            part.name,
            part.filesystem,
            part.mountpoint,
            size,
            part.type_code,
            part.partuuid,
        )
    console.print(table)
    console.print(f"partition table {plan.layout['table']}, disk id {plan.layout['disk_id']}")
    for blob in plan.layout["blobs"]:
        console.print(
            f"bootloader: {blob['source']} at {blob['offset_kib']} KiB ({blob['package']})"
        )
    console.print(f"[bold]boot[/]: {plan.boot['method']}: {plan.boot['cmdline']}", highlight=False)
    payload = plan.payload
    console.print(
        f"[bold]payload[/]: venv {payload['venv']}"
        + (" (system site packages)" if payload["system_site_packages"] else "")
        + f", units {', '.join(payload['units'])}"
        + f", first boot: zeke setup {' '.join(payload['setup_args'])}"
    )
    steps = Table(title="steps", show_edge=False)
    steps.add_column("stage")
    steps.add_column("step")
    steps.add_column("what")
    for step in plan.steps:
        steps.add_row(step.stage, step.name, step.what)
    console.print(steps)
    for note in plan.notes:
        console.print(f"[dim]note:[/] {note}")
