"""``suitesub``: the service's command-line tool.

Every command works on the store named by ``SUITE_DATABASE_URL`` (the same
one the API uses). Sub-commands live in their own modules and register
themselves on :data:`main`:

- ``interface.cli.api_commands`` — ``serve``, ``token``
- ``interface.cli.worker_commands`` — ``worker``, ``expire-trials``, ``reconcile``
- ``interface.cli.audit_commands`` — the ``audit`` group
"""

from __future__ import annotations

import importlib

import click


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="suite-subscriptions")
def main() -> None:
    """Suite Subscriptions: the bundle trial and upgrade service."""


for _module in ("api_commands", "worker_commands", "audit_commands"):
    # A module registers its commands on `main` when imported.
    try:
        importlib.import_module(f"interface.cli.{_module}")
    except ModuleNotFoundError as error:
        if error.name != f"interface.cli.{_module}":
            raise
