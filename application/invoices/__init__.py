"""Invoices (SPEC §11): their numbers, and the projection that serves them.

- :mod:`~application.invoices.numbers` — the gapless number allocator, beside the events;
- :mod:`~application.invoices.projection` — the follower that copies each charging
  event's invoice into the invoices view, and the reader the API uses.
"""
