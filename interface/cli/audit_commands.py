"""``suitesub audit``: list, replay, verify, digest, export and rebuild the log.

A thin layer: parse the options, call ``application.audit`` /
``application.audit_verification`` (or the projections' rebuild), print.
Output is scriptable: ``--format json`` (JSON lines, or one JSON document),
and the default is a readable table on a terminal and JSON when piped.
A progress bar goes to stderr when stderr is a terminal (``--quiet`` hides it).

Exit codes: 0 — done, nothing found; 1 — ``verify`` found a fault or
``rebuild`` a difference; 2 — the command could not run (bad option,
unknown organization, unreadable event).
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any, TextIO
from uuid import UUID

import click
from rich import box
from rich.console import Console
from rich.padding import Padding
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
)
from rich.table import Table
from rich.text import Text

from application.audit import (
    LogFilter,
    LoggedEvent,
    Replay,
    UndecodableEvent,
    iterate_log,
    parse_time,
    replay,
    summarise,
)
from application.audit_verification import (
    ChainDigest,
    VerificationReport,
    chain_digest,
    verify_log,
)
from application.bootstrap import Services
from application.projections.rebuild import RebuildReport, rebuild_views
from domain.errors import DomainError, NotFound
from interface.cli import main
from interface.cli.services import CommandFailed, command_services

FORMATS = click.Choice(["table", "json"])
#: Rows per printed table: a terminal listing streams instead of building one huge table.
TABLE_CHUNK = 200


AuditCommandError = CommandFailed  # the command could not run (exit 2); findings use exit 1


# ---------------------------------------------------------------------------
# plumbing shared by the commands
# ---------------------------------------------------------------------------


def _services(ctx: click.Context) -> Services:
    """The services of this invocation; the audit tool never creates a database."""
    return command_services(ctx, existing_only=True)


def _wants_json(output_format: str | None) -> bool:
    if output_format is not None:
        return output_format == "json"
    return not _is_terminal(sys.stdout)


def _is_terminal(stream: TextIO) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):  # replaced or closed streams
        return False


class _ProgressBar:
    """One rich task: called with the log position reached; ``phase`` starts a new count."""

    def __init__(self, bar: Progress, task: TaskID) -> None:
        self._bar = bar
        self._task = task

    def __call__(self, position: int) -> None:
        self._bar.update(self._task, completed=position)

    def phase(self, description: str, done: int, total: int) -> None:
        self._bar.update(self._task, description=description, completed=done, total=total)


def _shows_progress(quiet: bool) -> bool:
    """A bar only for a person watching stderr while the output goes elsewhere: when
    stdout is the same terminal the output itself shows progress, and a live bar
    would be drawn over the lines being written."""
    return not quiet and _is_terminal(sys.stderr) and not _is_terminal(sys.stdout)


@contextmanager
def _progress(description: str, total: int | None, quiet: bool) -> Iterator[_ProgressBar | None]:
    """A rich progress bar over log positions, on stderr only (see ``_shows_progress``)."""
    if not total or not _shows_progress(quiet):
        yield None
        return
    with Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=Console(stderr=True),
        transient=True,
    ) as bar:
        task = bar.add_task(description, total=total)
        yield _ProgressBar(bar, task)
        # A filtered scan reports only the pages it found something on: once it
        # is through, the whole log was looked at.
        bar.update(task, completed=bar.tasks[task].total)


def _time_option(value: str | None) -> datetime | None:
    if value is None:
        return None
    try:
        return parse_time(value)
    except DomainError as error:
        raise click.BadParameter(error.message) from None


def _organization(value: str) -> UUID:
    try:
        return UUID(value)
    except ValueError:
        msg = f"{value!r} is not an organization id (a UUID)."
        raise click.BadParameter(msg) from None


@contextmanager
def _domain_errors() -> Iterator[None]:
    try:
        yield
    except UndecodableEvent as error:
        msg = (
            f"The event at position {error.position} ({error.organization_id} "
            f"v{error.version}) cannot be read: {error.reason}. "
            "Run `suitesub audit verify` for a full report."
        )
        raise AuditCommandError(msg) from None
    except (NotFound, DomainError) as error:
        raise AuditCommandError(error.message) from None


def _write_json_lines(rows: Iterable[dict[str, Any]]) -> int:
    out = sys.stdout
    count = 0
    for row in rows:
        out.write(json.dumps(row, ensure_ascii=False, separators=(",", ":")))
        out.write("\n")
        count += 1
    out.flush()
    return count


#: Tables fit this many columns when written to a file or pipe (a terminal
#: uses its own width): long cells wrap, nothing is cut.
TABLE_WIDTH = 100
#: ``--wide`` tables are as wide as their content, up to this.
WIDE_TABLE_WIDTH = 400


def _console(*, wide: bool = False) -> Console:
    if wide:
        width: int | None = WIDE_TABLE_WIDTH
    else:
        width = None if _is_terminal(sys.stdout) else TABLE_WIDTH
    return Console(file=sys.stdout, soft_wrap=False, width=width, highlight=False)


def _total_positions(services: Services) -> int:
    return services.app.recorder.max_notification_id() or 0


_quiet = click.option("--quiet", "-q", is_flag=True, help="No progress bar.")
_json_only_format = click.option(
    "--format",
    "_output_format",
    type=click.Choice(["json"]),
    default="json",
    help="Always JSON (accepted so scripts can pass --format json to every command).",
)


@main.group()
def audit() -> None:
    """Audit the event log: list it, replay an organization, prove it untouched, export it."""


# ---------------------------------------------------------------------------
# events
# ---------------------------------------------------------------------------


@audit.command()
@click.option("--org", "organization", help="Only this organization's events (its id).")
@click.option("--type", "event_type", help="Only events of this type, e.g. TrialStarted.")
@click.option("--since", help="Business time from (inclusive), ISO 8601; a date means 00:00 UTC.")
@click.option("--until", help="Business time up to (exclusive), ISO 8601.")
@click.option("--format", "output_format", type=FORMATS, help="Default: table on a terminal.")
@click.option(
    "--wide", is_flag=True, help="One line an event, as wide as it needs (default: two lines)."
)
@_quiet
@click.pass_context
def events(
    ctx: click.Context,
    organization: str | None,
    event_type: str | None,
    since: str | None,
    until: str | None,
    output_format: str | None,
    wide: bool,
    quiet: bool,
) -> None:
    """The log in order, filtered by organization, event type and business time."""
    services = _services(ctx)
    with _domain_errors():
        log_filter = LogFilter(
            organization_id=None if organization is None else _organization(organization),
            event_type=event_type,
            since=_time_option(since),
            until=_time_option(until),
        )
    as_json = _wants_json(output_format)
    with (
        _domain_errors(),
        _progress("events", _total_positions(services), quiet) as progress,
    ):
        listed = iterate_log(services.app, log_filter, progress=progress)
        if as_json:
            _write_json_lines(event.to_dict() for event in listed)
        else:
            _print_event_table(listed, wide=wide)


def _print_event_table(listed: Iterable[LoggedEvent], *, wide: bool) -> None:
    console = _console(wide=wide)
    chunk: list[LoggedEvent] = []
    first = True
    count = 0
    for event in listed:
        if not wide:
            if first:
                console.print(EVENT_HEADER, style="bold", overflow="fold")
                first = False
            _print_event_lines(console, event)
            count += 1
            continue
        chunk.append(event)
        count += 1
        if len(chunk) == TABLE_CHUNK:
            console.print(_wide_event_table(chunk, header=first))
            chunk, first = [], False
    if wide and (chunk or first):
        console.print(_wide_event_table(chunk, header=first))
    console.print(f"{count} event(s)")


#: The two-line listing's first line: 100 columns with the longest event type.
EVENT_HEADER = f"{'position':>8} {'at (UTC)':19} {'organization':36} {'v':>3} type"
SECOND_LINE_INDENT = 9


def _print_event_lines(console: Console, event: LoggedEvent) -> None:
    """An event in two lines within TABLE_WIDTH; nothing cut (whole ids, UTC seconds).

    The second line says who acted and what happened, wrapped under the first."""
    console.print(
        f"{event.position:>8} {event.at.strftime('%Y-%m-%d %H:%M:%S'):19} "
        f"{event.organization_id:36} {event.version:>3} {event.type}",
        overflow="fold",
        highlight=False,
    )
    who = f"by {event.by}: " if event.by else ""
    console.print(Padding(Text(who + summarise(event), style="dim"), (0, 0, 0, SECOND_LINE_INDENT)))


def _wide_event_table(rows: list[LoggedEvent], *, header: bool) -> Table:
    """``--wide``: one line an event, as wide as it needs (for wide terminals and files)."""
    table = Table(show_header=header, box=None, pad_edge=False)
    for name in ("position", "organization", "v", "type", "at", "by", "what"):
        table.add_column(name, justify="right" if name in ("position", "v") else "left")
    for event in rows:
        table.add_row(
            str(event.position),
            event.organization_id,
            str(event.version),
            event.type,
            event.at.isoformat(),
            event.by or "",
            summarise(event),
        )
    return table


# ---------------------------------------------------------------------------
# replay
# ---------------------------------------------------------------------------


@audit.command(name="replay")
@click.option("--org", "organization", required=True, help="The organization's id.")
@click.option("--as-of", "as_of", help="Business time (ISO 8601); events at that time count.")
@click.option("--version", "version", type=int, help="Replay up to and including this version.")
@click.option("--explain", is_flag=True, help="Show, event by event, what changed and why.")
@click.option("--format", "output_format", type=FORMATS, help="Default: table on a terminal.")
@click.pass_context
def replay_command(
    ctx: click.Context,
    organization: str,
    as_of: str | None,
    version: int | None,
    explain: bool,
    output_format: str | None,
) -> None:
    """The organization's state and access view as they were at a time or version."""
    if as_of is not None and version is not None:
        raise click.UsageError("Give --as-of or --version, not both.")
    services = _services(ctx)
    organization_id = _organization(organization)
    moment = _time_option(as_of)
    with _domain_errors():
        result = replay(
            services.app,
            organization_id,
            services.catalog,
            as_of=moment,
            version=version,
            now=services.clock.now() if moment is None and version is None else None,
            explain=explain,
        )
    if _wants_json(output_format):
        click.echo(json.dumps(result.to_dict(), ensure_ascii=False, indent=2))
    else:
        _print_replay(result)


def _print_replay(result: Replay) -> None:
    console = _console()
    view = result.view.to_dict()
    bundle = view["bundle"]
    console.print(
        f"[bold]Organization[/bold] {result.organization_id} ({result.facts.name}) "
        f"as of {result.as_of.isoformat()} — version {result.version}, "
        f"position {result.position}"
    )
    console.print(
        f"bundle {bundle['code']}: [bold]{bundle['state']}[/bold]"
        f"  trial ends {bundle['trial_ends_at'] or '-'}"
        f"  days left {bundle['days_left'] if bundle['days_left'] is not None else '-'}"
        f"  extensions used {bundle['extensions_used']}"
        f"  actions {', '.join(bundle['available_actions']) or '-'}"
    )
    contract = bundle.get("contract")
    if contract is not None:
        add_ons = ", ".join(f"{a['code']} × {a['quantity']}" for a in contract["add_ons"])
        card = contract["payment_method"]
        console.print(
            f"contract {contract['billing_period']}, {contract['seats']} seats"
            f"{', ' + add_ons if add_ons else ''}; period {contract['current_period_start']}"
            f" → {contract['current_period_end']}"
            f"{' (cancels at its end)' if contract['cancel_at_period_end'] else ''}"
            f"; credit balance ¥{contract['credit_balance']:,}"
            f"; card {card['brand'] or '-'} {card['last4'] or ''}".rstrip()
        )
        if contract.get("past_due_since"):
            console.print(
                f"past due since {contract['past_due_since']}, "
                f"next attempt {contract['next_payment_attempt_at'] or '-'}"
            )
        if contract.get("end_reason"):
            console.print(f"ended {contract['ended_at']} ({contract['end_reason']})")
    services = Table(title="access", title_justify="left", box=box.SIMPLE_HEAD)
    services.add_column("service", no_wrap=True)
    services.add_column("edition · contract · access, then the URL to use", overflow="fold")
    for service in view["services"]:
        lines = [
            f"{service['edition']} · {service['contract']} · {service['access']}",
            service["url"] or "-",
        ]
        if service.get("note"):
            lines.append(f"[italic]{service['note']}[/italic]")
        services.add_row(service["code"], "\n".join(lines))
    console.print(services)
    if result.explanation is None:
        return
    steps = Table(
        title="why: what changed, event by event", title_justify="left", box=box.SIMPLE_HEAD
    )
    steps.add_column("at (UTC)", no_wrap=True)
    steps.add_column("v", justify="right", no_wrap=True)
    steps.add_column("cause, by", no_wrap=True)
    steps.add_column("what changed", overflow="fold", min_width=30)
    for step in result.explanation:
        lines = [f"[italic]{step.summary}[/italic]"] if step.summary else []
        lines.extend(
            _change_line(change.subject, change.field, change.before, change.after)
            for change in step.changes
        )
        cause = step.type or "time passed"
        steps.add_row(
            step.at.strftime("%Y-%m-%d %H:%M:%S"),
            "" if step.version is None else str(step.version),
            f"{cause}\nby {step.by}" if step.by else cause,
            "\n".join(lines) or "(no change to the access view)",
        )
    console.print(steps)


def _change_line(subject: str, field: str, before: Any, after: Any) -> str:
    if field == "access":
        return f"{subject}: {_cell_text(before)} → {_cell_text(after)}"
    return f"bundle {field}: {_plain(before)} → {_plain(after)}"


def _cell_text(cell: dict[str, Any] | None) -> str:
    if cell is None:
        return "-"
    text = f"{cell['edition']}·{cell['contract']}·{cell['access']}"
    return f"{text} ({cell['note']})" if cell.get("note") else text


def _plain(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, list):
        return ", ".join(value) or "[]"
    return str(value)


# ---------------------------------------------------------------------------
# verify and digest
# ---------------------------------------------------------------------------


@audit.command()
@click.option(
    "--digest",
    "digest_file",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="A digest saved earlier by `suitesub audit digest`: also prove no tail was cut.",
)
@click.option("--format", "output_format", type=FORMATS, help="Default: table on a terminal.")
@_quiet
@click.pass_context
def verify(
    ctx: click.Context, digest_file: Path | None, output_format: str | None, quiet: bool
) -> None:
    """Check every event decodes, versions are contiguous, order and hash chain hold.

    Exits 1 when anything is wrong, naming organization, version and fault.
    """
    saved = None
    if digest_file is not None:
        try:
            saved = ChainDigest.from_dict(json.loads(digest_file.read_text(encoding="utf-8")))
        except (ValueError, KeyError, TypeError) as error:
            msg = f"{digest_file}: not a usable digest ({error})"
            raise AuditCommandError(msg) from None
    services = _services(ctx)
    as_json = _wants_json(output_format)
    with _progress("verify: log", _total_positions(services), quiet or as_json) as progress:
        report = verify_log(
            services.app,
            saved_digest=saved,
            progress=progress,
            chain_progress=None
            if progress is None
            else lambda done, total: progress.phase("verify: chains", done, total),
        )
    if as_json:
        click.echo(json.dumps(report.to_dict(), ensure_ascii=False))
    else:
        _print_verification(report)
    if not report.ok:
        ctx.exit(1)


def _titled_table(title: str, columns: Sequence[str], rows: Iterable[Sequence[str]]) -> Table:
    """A report table whose long values fold rather than truncate (ids, links)."""
    table = Table(title=title, title_justify="left")
    for column in columns:
        table.add_column(column, overflow="fold")
    for row in rows:
        table.add_row(*row)
    return table


def _print_verification(report: VerificationReport) -> None:
    console = _console()
    if report.faults:
        console.print(
            _titled_table(
                "faults",
                ("organization", "version", "fault", "detail"),
                (
                    (
                        fault.organization_id,
                        "" if fault.version is None else str(fault.version),
                        fault.fault,
                        fault.detail,
                    )
                    for fault in report.faults
                ),
            )
        )
    console.print(_verification_summary(report))


def _verification_summary(report: VerificationReport) -> str:
    scope = f"{report.events} event(s) of {report.organizations} organization(s)"
    digest = ", against the saved digest" if report.digest_checked else ""
    if report.ok:
        return f"OK: {scope} verified{digest}; every chain link holds."
    return f"FAILED: {len(report.faults)} fault(s) in {scope}{digest}."


@audit.command()
@click.option(
    "--output",
    "-o",
    type=click.Path(dir_okay=False, writable=True, path_type=Path),
    help="Write the digest to this file instead of stdout.",
)
@_json_only_format
@_quiet
@click.pass_context
def digest(ctx: click.Context, output: Path | None, _output_format: str, quiet: bool) -> None:
    """Print the chain head of every organization and one SHA-256 over them (JSON).

    Keep the file; later `suitesub audit verify --digest FILE` proves that no
    event was removed from the end of any stream since.
    """
    services = _services(ctx)
    with _domain_errors(), _progress("digest", _total_positions(services), quiet) as progress:
        result = chain_digest(services.app, created_at=services.clock.now(), progress=progress)
    text = json.dumps(result.to_dict(), ensure_ascii=False, indent=1)
    if output is None:
        click.echo(text)
    else:
        output.write_text(text + "\n", encoding="utf-8")
        click.echo(
            f"digest {result.digest} of {len(result.heads)} organization(s) "
            f"at position {result.position} written to {output}",
            err=True,
        )


# ---------------------------------------------------------------------------
# export
# ---------------------------------------------------------------------------


@audit.command()
@click.option("--org", "organization", help="Only this organization's events (its id).")
@click.option("--since", help="Business time from (inclusive), ISO 8601.")
@click.option(
    "--invoices",
    "invoices_only",
    is_flag=True,
    help="One issued invoice per line instead of one event (schema: docs/audit.md).",
)
@_json_only_format
@_quiet
@click.pass_context
def export(
    ctx: click.Context,
    organization: str | None,
    since: str | None,
    invoices_only: bool,
    _output_format: str,
    quiet: bool,
) -> None:
    """JSON lines for outside auditors, one event per line (schema: docs/audit.md).

    With --invoices, one line per issued invoice, read from the events that issued them.
    """
    services = _services(ctx)
    log_filter = LogFilter(
        organization_id=None if organization is None else _organization(organization),
        since=_time_option(since),
    )
    with (
        _domain_errors(),
        _progress("export", _total_positions(services), quiet) as progress,
    ):
        listed = iterate_log(services.app, log_filter, progress=progress)
        if invoices_only:
            _write_json_lines(
                line for line in (event.invoice_line() for event in listed) if line is not None
            )
        else:
            _write_json_lines(event.to_dict() for event in listed)


# ---------------------------------------------------------------------------
# rebuild
# ---------------------------------------------------------------------------


@audit.command()
@click.option("--apply", "apply_rebuilt", is_flag=True, help="Swap the rebuilt views in.")
@click.option("--format", "output_format", type=FORMATS, help="Default: table on a terminal.")
@_quiet
@click.pass_context
def rebuild(
    ctx: click.Context, apply_rebuilt: bool, output_format: str | None, quiet: bool
) -> None:
    """Rebuild every projection from the log into fresh tables and compare with the live ones.

    Reports each difference (organization, field, live, rebuilt); exits 1 when
    any differ. With --apply the rebuilt views replace the live ones atomically.
    """
    services = _services(ctx)
    as_json = _wants_json(output_format)
    with _rebuild_progress(quiet or as_json) as progress:
        report = rebuild_views(
            services.app,
            services.read_model.views,
            apply=apply_rebuilt,
            progress=progress,
            faults=services.view_faults,
            invoices=services.invoices.view,
        )
    if as_json:
        click.echo(json.dumps(report.to_dict(), ensure_ascii=False, default=str))
    else:
        _print_rebuild(report)
    if not report.consistent:
        ctx.exit(1)


@contextmanager
def _rebuild_progress(quiet: bool) -> Iterator[Callable[[int, int], None] | None]:
    if not _shows_progress(quiet):
        yield None
        return
    with Progress(
        TextColumn("[bold]rebuild"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=Console(stderr=True),
        transient=True,
    ) as bar:
        task = bar.add_task("rebuild", total=None)
        yield lambda position, target: bar.update(task, completed=position, total=target)


def _print_rebuild(report: RebuildReport) -> None:
    console = _console()
    if report.differences:
        console.print(
            _titled_table(
                "differences",
                ("organization", "field", "live", "rebuilt"),
                (
                    (d.organization_id, d.field, _shown(d.live), _shown(d.rebuilt))
                    for d in report.differences
                ),
            )
        )
    console.print(_rebuild_summary(report))


def _shown(value: Any) -> str:
    if isinstance(value, dict | list):
        return json.dumps(value, ensure_ascii=False, default=str)
    return "-" if value is None else str(value)


def _rebuild_summary(report: RebuildReport) -> str:
    organizations = len({d.organization_id for d in report.differences})
    scope = (
        f"{report.organizations} organization(s) and {report.invoices} invoice(s) rebuilt "
        f"up to position {report.live_position}"
    )
    if report.consistent:
        summary = f"0 differences: {scope}; the live views match the log."
    else:
        summary = (
            f"{len(report.differences)} difference(s) in {organizations} organization(s): {scope}."
        )
    if report.applied:
        summary += f" Applied: the rebuilt views are live (position {report.applied_position})."
    elif not report.consistent:
        summary += " Run with --apply to replace the live views."
    return summary


__all__ = ["audit"]
