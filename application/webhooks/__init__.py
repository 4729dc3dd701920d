"""Integration events and webhooks (SPEC §12): another follower of the log.

- :mod:`.integration` follows the log into the integration events (the pull
  feed's rows), the reminders' schedule and each endpoint's deliveries, with
  its own tracked position, in one transaction per batch;
- :mod:`.endpoints` is the operators' API over webhook endpoints;
- :mod:`.delivery` signs and sends the deliveries (Standard Webhooks);
- :mod:`.url_guard` refuses URLs that reach inside the network;
- :mod:`.nats_sink` optionally publishes the same envelopes to NATS JetStream.
"""
