"""The compliance watchdog's foundations: the working-day calendar, the statutory
time-limit rules and the disclosure catalogue, each loaded from a data file that
staff may edit and checked at start-up.
"""
