"""The second line of defence for secrets: configured tokens cut out of text before it leaves.

The first line is that no code puts a token into a message, an exception or a log line (the
OMS client keeps it in its headers only). This one catches what slips through anyway — an
echo of a header in a library's error, say — in the places text is kept or shown: attempt
records in Redis, task results and exceptions (which Flower shows) and log records.
"""

import logging
from collections.abc import Iterable

REDACTED = "[redacted]"


class Redactor:
    """Replaces every occurrence of each secret in a text with ``[redacted]``."""

    def __init__(self, secrets: Iterable[str]) -> None:
        # Longest first: a secret that contains another is cut whole.
        self._secrets = sorted({s for s in secrets if s}, key=len, reverse=True)

    def __call__(self, text: str) -> str:
        for secret in self._secrets:
            if secret in text:
                text = text.replace(secret, REDACTED)
        return text


class RedactingFilter(logging.Filter):
    """A handler filter: the record's message and traceback text pass through the redactor."""

    def __init__(self, redact: Redactor) -> None:
        super().__init__()
        self.redact = redact
        self._formatter = logging.Formatter()

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        clean = self.redact(message)
        if clean != message:
            record.msg, record.args = clean, None
        if record.exc_info and not record.exc_text:
            record.exc_text = self._formatter.formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = self.redact(record.exc_text)
        return True


def install(redact: Redactor, loggers: Iterable[logging.Logger]) -> None:
    """Add a ``RedactingFilter`` to every handler of *loggers* (once each)."""
    for logger in loggers:
        for handler in logger.handlers:
            if not any(isinstance(f, RedactingFilter) for f in handler.filters):
                handler.addFilter(RedactingFilter(redact))
