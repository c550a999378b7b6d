"""The docs stay true to the code: docs/delivery.md's diagram names the job states the scripts
write, and README's configuration table lists every setting with its default."""

import re
from importlib import resources

from tests.processes import ROOT

ORDER_STATES = {"idle", "active", "held"}
# A literal state written into a hash: ``"state", "ready"``, or by ``set_state(..., "ready")``.
WRITTEN = re.compile(r'"state", "(\w+)"|\bset_state\([^()]*(?:\([^()]*\)[^()]*)*, "(\w+)"\)')
TRANSITION = re.compile(r"^\s*(\[\*\]|\w+) --> (\[\*\]|\w+):", re.MULTILINE)


def _diagram_states() -> set[str]:
    text = (ROOT / "docs" / "delivery.md").read_text()
    [diagram] = re.findall(r"```mermaid\n(.*?)```", text, re.DOTALL)
    names = {name for pair in TRANSITION.findall(diagram) for name in pair}
    return names - {"[*]"}


def _written_states() -> set[str]:
    folder = resources.files("vtex_relay.store") / "lua"
    found: set[str] = set()
    for script in folder.iterdir():
        if script.name.endswith(".lua"):
            for pair in WRITTEN.findall(script.read_text()):
                found.update(name for name in pair if name)
    return found - ORDER_STATES


def test_the_diagram_names_the_states_the_scripts_write() -> None:
    written = _written_states()
    live = {"queued", "waiting", "ready", "running", "throttled", "retrying", "dead"}
    assert live | {"done"} <= written
    assert _diagram_states() == written


ROW = re.compile(r"^\| `([A-Z0-9_]+)` \| ([^|]*) \|", re.MULTILINE)


def _shown(default: str) -> object:
    """A default as the README's table writes it, as a value."""
    text = default.strip().strip("`")
    if text == "—":
        return None
    if text in ("true", "false"):
        return text == "true"
    if text in ("{}", "[]"):
        return {} if text == "{}" else []
    try:
        return float(text)
    except ValueError:
        return text


def test_the_settings_table_is_the_settings() -> None:
    """README's configuration table has a row for each setting, with its default."""
    from vtex_relay.settings import Settings

    rows = dict(ROW.findall((ROOT / "README.md").read_text()))
    assert set(rows) == {name.upper() for name in Settings.model_fields}
    for name, field in Settings.model_fields.items():
        default = field.default
        expected = (
            float(default)
            if isinstance(default, int | float) and default is not True and default is not False
            else default
        )
        assert _shown(rows[name.upper()]) == expected, name
