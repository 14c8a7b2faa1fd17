"""The scheduler loop: sleep until the earliest fire time, dispatch due ticks, housekeeping
(`maintenance.py`), catch-up after downtime (`catchup.py`), drain on stop."""
