"""The core every other package builds on: events and their chain, topics
and who may follow them, the clock, wire frames, data files and side files.

Nothing here imports from the rest of `server/` or from `push/`; both import
from here. Nothing here starts a task, listens or serves.
"""
