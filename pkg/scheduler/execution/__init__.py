"""The run machinery: what happens to one tick, from its claim to its final record.

`runner.py` (the stages of a tick), `records.py` (the runner's side of the run store),
`leases.py`, `overlap.py`, `slots.py` (the concurrency cap), `starts_first.py`, `batch.py`, and
`chain.py` (the wrappers around one attempt of a job).
"""
