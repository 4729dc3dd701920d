"""``suitesub worker`` and ``suitesub expire-trials``.

Both work on the store named by ``SUITE_DATABASE_URL`` and, when the service
runs with the test clock (``SUITE_TEST_CLOCK=1``), on the same shifted time
as the API (the offset is kept in the database).
"""

from __future__ import annotations

import json
import logging
import os
import signal
import sys
import threading

import click

from interface.cli import main
from interface.cli.services import command_services

log = logging.getLogger("suitesub.worker")


@main.command()
@click.option(
    "--poll-interval",
    default=1.0,
    show_default=True,
    type=click.FloatRange(0.01, 60),
    help="Seconds between looks at the log when no NOTIFY arrives (SQLite always polls).",
)
@click.option(
    "--sweep-interval",
    default=60.0,
    show_default=True,
    type=click.FloatRange(0, 86400),
    help="Seconds between expiry sweeps (0: no sweep).",
)
@click.option(
    "--sweep-batch",
    default=100,
    show_default=True,
    type=click.IntRange(1, 100_000),
    help="At most this many trials expired per sweep.",
)
@click.option(
    "--reconcile-interval",
    default=300.0,
    show_default=True,
    type=click.FloatRange(0, 86400),
    help="Seconds between checkout reconciliations (0: none).",
)
@click.option(
    "--batch-size",
    default=500,
    show_default=True,
    type=click.IntRange(1, 10_000),
    help="Notifications applied per transaction while following the log.",
)
@click.option("--once", is_flag=True, help="Catch up, sweep and reconcile once, then exit.")
@click.pass_context
def worker(
    ctx: click.Context,
    poll_interval: float,
    sweep_interval: float,
    sweep_batch: int,
    reconcile_interval: float,
    batch_size: int,
    once: bool,
) -> None:
    """Follow the event log into the views; sweep expired trials; reconcile checkouts.

    Run one or more beside the API on PostgreSQL. Stops cleanly on SIGTERM or
    Ctrl-C; resumes from the views' tracked position when started again.
    """
    from application.worker import Worker, WorkerSettings
    from interface.log_masking import mask_card_numbers_in_logs

    logging.basicConfig(
        level=os.environ.get("SUITE_LOG_LEVEL", "INFO").upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    mask_card_numbers_in_logs()
    settings = WorkerSettings(
        poll_interval=poll_interval,
        sweep_interval=sweep_interval,
        sweep_batch=sweep_batch,
        reconcile_interval=reconcile_interval,
        batch_size=batch_size,
    )
    services = command_services(ctx)
    stop = threading.Event()

    def request_stop(signum: int, _frame: object) -> None:
        log.info("worker: stopping (signal %d)", signum)
        stop.set()

    previous = {
        signum: signal.signal(signum, request_stop) for signum in (signal.SIGTERM, signal.SIGINT)
    }
    worker = Worker(
        app=services.app,
        read_model=services.read_model,
        webhooks=services.webhooks,
        checkouts=services.checkouts,
        invoices=services.invoices,
        plan_changes=services.plan_changes,
        renewals=services.renewals,
        settings=settings,
    )
    try:
        if once:
            worker.run_once()
        else:
            worker.run(stop)
        log.info("worker: stopped at position %d", services.read_model.views.position())
    except Exception as error:
        log.exception("worker: stopped by an error; it resumes from its position when restarted")
        raise SystemExit(1) from error
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


@main.command("expire-trials")
@click.option(
    "--batch",
    default=100,
    show_default=True,
    type=click.IntRange(1, 100_000),
    help="At most this many trials are expired in this run.",
)
@click.option(
    "--format",
    "output_format",
    type=click.Choice(["text", "json"]),
    default="text",
    show_default=True,
)
@click.pass_context
def expire_trials(ctx: click.Context, batch: int, output_format: str) -> None:
    """Record TrialExpired for trials whose end has passed (idempotent, bounded).

    Exit status 0 whether or not anything was due; ``more`` says whether the
    batch was full and another run would find more.
    """
    from application.expiry import expire_due_trials

    services = command_services(ctx, existing_only=True)
    report = expire_due_trials(services.app, services.read_model, batch=batch)
    if output_format == "json":
        json.dump(report.to_dict(), sys.stdout)
        sys.stdout.write("\n")
        return
    click.echo(f"expired: {len(report.expired)}")
    for organization_id in report.expired:
        click.echo(f"  {organization_id}")
    if report.unchanged:
        click.echo(f"already decided: {len(report.unchanged)}")
    if report.failed:
        click.echo(f"left for the next run (kept changing): {len(report.failed)}")
    if report.more:
        click.echo("the batch was full: run again for more")


@main.command("renew")
@click.option(
    "--batch",
    default=200,
    show_default=True,
    type=click.IntRange(1, 100_000),
    help="Contracts settled per batch (one transaction for the intents, one for the outcomes).",
)
@click.option("--once", is_flag=True, help="One batch only (default: until nothing is due).")
@click.option(
    "--format",
    "output_format",
    type=click.Choice(["text", "json"]),
    default="text",
    show_default=True,
)
@click.pass_context
def renew(ctx: click.Context, batch: int, once: bool, output_format: str) -> None:
    """Record what time has decided for paid contracts: renewals charged at their
    period's end, dunning retries, and the end of contracts set to cancel (SPEC §11).

    Idempotent and safe beside the worker: a renewal is charged at most once.
    """
    services = command_services(ctx, existing_only=True)
    renewals = services.renewals
    report = renewals.sweep(batch=batch) if once else renewals.sweep_all(batch=batch)
    if output_format == "json":
        json.dump(report.to_dict(), sys.stdout)
        sys.stdout.write("\n")
        return
    click.echo(f"renewed: {len(report.renewed)}")
    click.echo(f"payment failed: {len(report.failed)}")
    click.echo(f"ended: {len(report.ended)}")
    if report.pending:
        click.echo(f"left for reconcile (charge in flight or gateway down): {len(report.pending)}")
    if report.conflicted:
        click.echo(f"left for the next run (kept changing): {len(report.conflicted)}")
    if report.more:
        click.echo("the batch was full: run again for more")
