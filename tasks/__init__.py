"""Celery tasks: one per VTEX operation, named after the job kinds."""
