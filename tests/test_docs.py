"""The docs stay true to the code: docs/delivery.md's diagram names the job states the scripts
write, docs/configuration.md's table lists every setting with its default, the README stays
short, and no file, folder or link the README and docs/ name is missing."""

import fnmatch
import re
from collections.abc import Iterator
from importlib import resources
from pathlib import Path


def _root() -> Path:
    """The repository: the nearest folder above this file that holds pyproject.toml (so the
    test keeps working wherever tests/ puts it)."""
    here = Path(__file__).resolve()
    return next(folder for folder in here.parents if (folder / "pyproject.toml").is_file())


ROOT = _root()
README = ROOT / "README.md"
DOCS = sorted((ROOT / "docs").glob("*.md"))

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


# --- the settings table --------------------------------------------------------------------

SETTINGS_TABLE = "| variable | default | meaning |"
ROW = re.compile(r"^\| `([A-Z0-9_]+)` \| ([^|]*) \| ([^|]*) \|$")


def _table(text: str, header: str) -> list[str]:
    """The rows of the markdown table under *header* (its first line), up to its end."""
    lines = text.splitlines()
    start = lines.index(header) + 2  # the header, then its |---| line
    rows = []
    for line in lines[start:]:
        if not line.startswith("|"):
            break
        rows.append(line)
    return rows


def _shown(default: str) -> object:
    """A default as the table writes it, as a value."""
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
    """docs/configuration.md's table has one row for each setting, with its default and a
    meaning, and no other row."""
    from vtex_relay.settings import Settings

    lines = _table((ROOT / "docs" / "configuration.md").read_text(), SETTINGS_TABLE)
    matched = [ROW.match(line) for line in lines]
    assert all(matched), [line for line, m in zip(lines, matched, strict=True) if not m]
    rows = [m.groups() for m in matched if m]
    names = [name for name, _, _ in rows]
    assert len(names) == len(set(names)), "a setting has two rows"
    assert set(names) == {name.upper() for name in Settings.model_fields}
    assert all(meaning.strip() for _, _, meaning in rows)
    defaults = {name: default for name, default, _ in rows}
    for name, field in Settings.model_fields.items():
        default = field.default
        expected = (
            float(default)
            if isinstance(default, int | float) and default is not True and default is not False
            else default
        )
        assert _shown(defaults[name.upper()]) == expected, name


def test_the_readme_names_only_settings() -> None:
    """Every variable in the README's short configuration table is a setting."""
    from vtex_relay.settings import Settings

    rows = _table(README.read_text(), "| variable | what |")
    named = {name for row in rows for name in re.findall(r"`([A-Z][A-Z0-9_]+)`", row.split("|")[1])}
    assert named
    assert named <= {name.upper() for name in Settings.model_fields}


# --- the README's size ---------------------------------------------------------------------


def test_the_readme_is_read_in_ten_minutes() -> None:
    """At most about 200 lines: what it is, the two commands, the guarantees, the concepts,
    configuration and links; everything else lives in docs/."""
    lines = README.read_text().splitlines()
    assert len(lines) <= 200, f"README.md has {len(lines)} lines; move some to docs/"


# --- the paths and links the docs name -----------------------------------------------------

# A fenced block: its info string (``sh``, or none) and its text.
FENCE = re.compile(r"^```(\S*)\n(.*?)^```", re.MULTILINE | re.DOTALL)
CODE = re.compile(r"`([^`]+)`")  # inline code, which may wrap onto the next line
# A repository path: a relative path with a '/', ending in a file type or in '/' (a folder).
PATH = re.compile(
    r"^[\w.][\w.*@/-]*/[\w.*@/-]*"
    r"(?:\.(?:py|lua|md|toml|yml|yaml|sh|json|jsonl|conf|service|cfg|txt)|/)$"
)
LINK = re.compile(r"\]\(([^)\s]+)\)")


def _ignored(path: str) -> bool:
    """Whether the repository ignores *path* (.gitignore): written by a run (`.run/`, a quick
    benchmark's tables), so a fresh checkout need not have it."""
    patterns = [
        line.strip().rstrip("/")
        for line in (ROOT / ".gitignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    bare = path.rstrip("/")
    first = bare.split("/")[0]
    return any(fnmatch.fnmatch(bare, p) or fnmatch.fnmatch(first, p) for p in patterns)


def _exists(path: str) -> bool:
    if "*" in path:
        return any(ROOT.glob(path.rstrip("/")))
    target = ROOT / path
    return target.is_dir() if path.endswith("/") else target.is_file()


def _named_paths(text: str) -> Iterator[str]:
    """The repository paths in *text*'s inline code (each word of a command too)."""
    for span in CODE.findall(FENCE.sub("", text)):
        for word in span.split():
            if "://" not in word and "=" not in word and PATH.match(word):
                yield word


def test_the_named_paths_exist() -> None:
    """A file or folder named in backticks in README.md or docs/*.md (relative to the
    repository) exists: a moved or removed file fails here, not in a reader's hands."""
    missing = [
        f"{doc.relative_to(ROOT)}: `{path}`"
        for doc in [README, *DOCS]
        for path in _named_paths(doc.read_text())
        if not _exists(path) and not _ignored(path)
    ]
    assert not missing, missing


def test_the_path_pattern() -> None:
    found = set(
        _named_paths(
            "`vtex_relay/store/lua/` `config/settings.py` `bench/*.md` `promtool test rules "
            "deploy/prometheus/alerts.test.yml` `/etc/vtex-relay/accounts.toml` `keys.py` "
            "`https://x.com/a.md` `VTEX_ACCOUNTS_FILE=/a/b.toml` `/api/oms/pvt/orders/{orderId}`"
            "\n```\nnot/in/code.py\n```\n"
        )
    )
    assert found == {
        "vtex_relay/store/lua/",
        "config/settings.py",
        "bench/*.md",
        "deploy/prometheus/alerts.test.yml",
    }


def _anchors(doc: Path) -> set[str]:
    """The anchors GitHub gives *doc*'s headings."""
    headings = re.findall(r"^#+ (.+)$", FENCE.sub("", doc.read_text()), re.MULTILINE)
    return {re.sub(r"[^\w\- ]", "", h.replace("`", "").lower()).replace(" ", "-") for h in headings}


def test_the_links_lead_somewhere() -> None:
    """Each relative link in README.md and docs/*.md names a file that exists, and a heading
    of it if it names one."""
    broken = []
    for doc in [README, *DOCS]:
        for target in LINK.findall(FENCE.sub("", doc.read_text())):
            if re.match(r"[a-z]+:", target):
                continue  # http:, https:, mailto:
            path, _, anchor = target.partition("#")
            linked = (doc.parent / path).resolve() if path else doc
            if not linked.exists() or (anchor and anchor not in _anchors(linked)):
                broken.append(f"{doc.relative_to(ROOT)}: {target}")
    assert not broken, broken


def test_the_readme_draws_the_layout_that_is() -> None:
    """Every file and folder the README's Development drawing names exists where it is drawn:
    a line at the left names top-level entries; one indented by two, entries of the folder
    above it (`vtex_relay/`), and if it starts with a folder, the rest of the line and the
    lines indented deeper are in that folder; a name with an inner '/' is from the top."""
    text = README.read_text()
    [block] = [body for info, body in FENCE.findall(text) if not info and "vtex_relay/" in body]
    name = re.compile(r"[\w.-]+(?:/[\w.-]+)*(?:/|\.py|\.lua|\.json)(?=[\s,);]|$)")
    top = sub = ""
    drawn = []
    for line in block.splitlines():
        indent = len(line) - len(line.lstrip())
        names = name.findall(line)
        if not names:
            continue
        if indent == 0:
            base = ""
            top = names[0] if names[0].endswith("/") else top
            sub = ""
        elif indent == 2:
            base = top
            sub = top + names[0] if names[0].endswith("/") else ""
        else:
            base = sub or top
        for index, entry in enumerate(names):
            if "/" in entry.rstrip("/"):
                drawn.append(entry)
            elif indent == 2 and index > 0 and sub:
                drawn.append(sub + entry)
            else:
                drawn.append(base + entry)
    assert "vtex_relay/store/keys.py" in drawn  # the parsing found the nested names
    assert "vtex_relay/store/lua/" in drawn
    missing = [path for path in drawn if not _exists(path)]
    assert not missing, missing
