"""What an operator reads and does: dead letters and an order's jobs (``dead_letters``), each
account's jobs by state, rate and pause (``backlog``), liveness (``health``) and the Prometheus
metrics (``metrics``)."""
