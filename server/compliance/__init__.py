"""The compliance watchdog: statutory deadlines derived from the log.

Data files staff may edit, checked at start-up: the working-day calendar
(calendar.py), the time-limit rules (rules.py) and the disclosure catalogue
(catalog.py). The pure projection: watchdog.py (no I/O), snapshot.py (its
state as bytes). Around it: logread.py (its own read of the log),
records.py (compliance.db), service.py (the runner: snapshot and tail, the
bus, timers) and derived.py (what `sunbid verify` and `sunbid rebuild` see).
"""
