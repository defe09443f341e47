"""A/B testing on the event log: arm assignment, the statistics, and the report.

- `config`: the [ab] table (arms with traffic shares, stable hash assignment, the plan)
- `stats`: Wilson intervals, z-tests, delta-method variances, sample sizes (pure functions)
- `report`, `render`: the report per arm and against the control, as a table or JSON
- `simulate`: a population with a known click model, for tests and benchmarks
- `python -m rec_models.abtest`: the command line
"""
