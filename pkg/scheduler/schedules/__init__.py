"""The schedule arithmetic: cron expressions, descriptors, zones and daylight saving.

Pure functions of an instant: nothing here reads the clock (STYLE 1).
"""
