"""The Celery worker side of vtex-relay: ``celery -A worker.app worker``."""
