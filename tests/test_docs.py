"""docs/delivery.md stays true to the scripts: its diagram names the job states they write."""

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
    folder = resources.files("vtex_relay") / "lua"
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
