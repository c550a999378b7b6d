"""The second line of defence: a configured token is cut out of log records and texts."""

import io
import logging

from vtex_relay.redaction import REDACTED, RedactingFilter, Redactor, install

TOKEN = "TOKEN-must-never-leak-5f1b2c9e7d"


def test_every_occurrence_longest_first() -> None:
    redact = Redactor([TOKEN[:10], TOKEN, ""])
    assert redact(f"a {TOKEN} b {TOKEN[:10]}") == f"a {REDACTED} b {REDACTED}"
    assert redact("nothing here") == "nothing here"


def test_a_log_line_and_its_traceback_are_scrubbed() -> None:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    logger = logging.getLogger("test-redaction")
    logger.addHandler(handler)
    logger.propagate = False
    install(Redactor([TOKEN]), [logger])
    install(Redactor([TOKEN]), [logger])  # once per handler, however often it is installed
    assert sum(isinstance(f, RedactingFilter) for f in handler.filters) == 1
    try:
        logger.warning("header value %r refused", TOKEN)
        try:
            raise ValueError(f"Illegal header value b'{TOKEN}\\n'")
        except ValueError:
            logger.exception("call failed")
    finally:
        logger.removeHandler(handler)
    written = stream.getvalue()
    assert "header value" in written
    assert "Illegal header value" in written  # the traceback was written, scrubbed
    assert TOKEN not in written
