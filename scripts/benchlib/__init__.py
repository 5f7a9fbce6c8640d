"""The pieces of ``scripts/bench.py``: the delivery check, the load runs
(open-loop rate and closed-loop ingest), the connection storm, the idle
memory case, /proc sampling and the report."""
