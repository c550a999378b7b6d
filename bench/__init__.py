"""Benchmark of vtex-relay against plain Celery, on one machine (``python -m bench``).

Everything runs on 127.0.0.1: a redis-server and the VTEX sandbox of the benchmark's own (free
ports), and Celery worker subprocesses. ``bench/run.sh`` (``make bench``) is the entry point.
"""
