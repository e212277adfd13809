"""Signed webhooks: each matching event POSTed to a platform that asked for it.

- `signing.py`: the Standard Webhooks signature, secrets (pure);
- `schedule.py`: when a failed delivery is tried again, and when a webhook
  that keeps failing is disabled (pure);
- `store.py`: the webhooks, each with its cursor over the log, the attempt
  state of the event at its head, delivery records and warnings (SQLite
  side file `webhooks.db`, or tables in the PostgreSQL schema);
- `sender.py`: the loop in the push worker process that sends them;
- `service.py`: what the web server's API does with them;
- `record.py`: the webhooks as a record derived from the log (`sunbid
  verify` / `rebuild`).

docs/webhooks.md says why the outbox is the log itself read through one
cursor per webhook, rather than rows derived per event as for Web Push.
"""
