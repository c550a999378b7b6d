"""The operations table is the one place a job's kind decides anything.

Every module reads what differs between VTEX's three calls (method, path, body model, what GET
order shows once a call landed, whether it posts an invoice or needs a tracking number) from
``vtex_relay.operations``: a comparison with a job kind anywhere else fails here, so a fourth
call is one row of the table (and its body model).
"""

import ast
from pathlib import Path

from tests.processes import ROOT
from vtex_relay.models import KINDS
from vtex_relay.operations import OPERATIONS, ORDER_PATH

ALLOWED = {ROOT / "vtex_relay" / "operations.py", ROOT / "vtex_relay" / "models.py"}


def _kind_like(node: ast.expr) -> bool:
    if isinstance(node, ast.Name):
        return node.id == "kind"
    if isinstance(node, ast.Attribute):
        return node.attr == "kind"
    if isinstance(node, ast.Constant):
        return node.value in KINDS
    if isinstance(node, ast.Tuple | ast.List | ast.Set):
        return any(_kind_like(element) for element in node.elts)
    return False


def _validation(node: ast.Compare) -> bool:
    """``kind in OPERATIONS``: is it a kind at all? (input checking, not branching)"""
    known = [c for c in node.comparators if isinstance(c, ast.Name)]
    return any(c.id in ("KINDS", "OPERATIONS") for c in known)


def _branches(path: Path) -> list[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    return [
        f"{path.relative_to(ROOT)}:{node.lineno}: {ast.unparse(node)}"
        for node in ast.walk(tree)
        if isinstance(node, ast.Compare)
        and any(_kind_like(side) for side in [node.left, *node.comparators])
        and not _validation(node)
    ]


def test_no_module_branches_on_a_job_s_kind_but_the_table() -> None:
    sources = [p for d in ("vtex_relay", "worker", "tasks") for p in (ROOT / d).rglob("*.py")]
    found = [line for path in sources if path not in ALLOWED for line in _branches(path)]
    assert not found, found


def test_the_check_sees_a_branch() -> None:
    # The test above must be able to fail: a branch written the usual ways is found.
    code = 'if job.kind == "invoice": pass\nif kind in ("tracking",): pass\nx = "tracking" != k\n'
    probe = ROOT / "tests" / "data" / "kind_branch_probe.py"
    probe.write_text(code)
    try:
        assert len(_branches(probe)) == 3
    finally:
        probe.unlink()


def test_the_table_has_every_kind_on_vtex_s_paths() -> None:
    assert tuple(OPERATIONS) == KINDS
    for kind, op in OPERATIONS.items():
        assert op.kind == kind
        assert op.path.startswith(ORDER_PATH + "/invoice")
        assert op.needs_invoice_number is not op.posts_invoice
