"""Getting jobs in: the Python API (``api``: validate one job, then enqueue it) and batches
(``batch``: every line validated and checked before any is enqueued)."""
