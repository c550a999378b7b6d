"""Schemathesis hooks for the contract run (``SCHEMATHESIS_HOOKS``, test_contract.py): how a
``POST /relay/batch`` body, an array of lines in the document, goes on the wire as JSON lines."""

import json
from typing import Any

import schemathesis


@schemathesis.serializer("application/x-ndjson")
def json_lines(_ctx: schemathesis.SerializationContext, value: Any) -> bytes:
    """Each item of an array as one line; anything else (a negative case) as one line too."""
    items = value if isinstance(value, list) else [value]
    return b"".join(json.dumps(item).encode() + b"\n" for item in items)
