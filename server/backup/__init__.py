"""`sunbid backup` and `sunbid restore`: every data file, copied consistently.

files.py says which files are data and checks a backup; make.py writes one
while the server runs; restore.py puts one back while it is stopped.
"""

from __future__ import annotations


class BackupError(RuntimeError):
    """A backup or restore cannot go on; the message says why and what to do."""
