"""Sunbid's data in the formats other platforms speak (一张网公开, 互联互通):
OCDS 1.1 release and record packages, Atom feeds and iCalendar deadlines.
Each is a pure rendering of the log and the records derived from it; the
HTTP handlers that serve them are in server/api/."""
