"""Every dead-letter reason the code can emit is in docs/contracts.md's table, and
the table lists no reason the code never emits."""

from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("streams", "sessions", "bidding", "cliploop", "highlight", "liveroom")
# call -> index of its reason argument
REASON_ARG = {"Rejected": 0, "_reject": 1, "reject_input": 2, "dead_letter": 1, "refuse": 1}


def _constants(tree: ast.Module) -> dict[str, str]:
    return {t.id: node.value.value for node in tree.body if isinstance(node, ast.Assign)
            for t in node.targets if isinstance(t, ast.Name) and isinstance(node.value, ast.Constant)
            and isinstance(node.value.value, str)}


def emitted_reasons(packages: tuple[str, ...] = PACKAGES) -> set[str]:
    found: set[str] = set()
    for pkg in packages:
        for path in (ROOT / pkg).rglob("*.py"):
            tree = ast.parse(path.read_text())
            names = _constants(tree)
            for node in ast.walk(tree):
                if isinstance(node, ast.Call):
                    fn = node.func.attr if isinstance(node.func, ast.Attribute) else getattr(node.func, "id", None)
                    i = REASON_ARG.get(fn)
                    arg = node.args[i] if i is not None and len(node.args) > i else None
                    if fn == "reject_input" and isinstance(arg, ast.Name):
                        continue  # passes on a reason decided elsewhere (a reader's error)
                    if isinstance(arg, ast.Constant) and isinstance(arg.value, str):
                        found.add(arg.value)
                    for kw in node.keywords if fn in REASON_ARG else ():  # reason="..." by keyword
                        if kw.arg == "reason" and isinstance(kw.value, ast.Constant) and isinstance(kw.value.value, str):
                            found.add(kw.value.value)
                # a reader's error: self.error = ("reason", detail)
                if isinstance(node, ast.Assign) and isinstance(node.value, ast.Tuple) and node.value.elts and any(
                        isinstance(t, ast.Attribute) and t.attr == "error" for t in node.targets):
                    first = node.value.elts[0]
                    if isinstance(first, ast.Constant) and isinstance(first.value, str):
                        found.add(first.value)
                # the room processor's verdicts: module constants returned by accept()
                if isinstance(node, ast.Return) and isinstance(node.value, ast.Name) and node.value.id in names:
                    found.add(names[node.value.id])
                # refusals appended to the outputs: (event, REASON, detail)
                if isinstance(node, ast.Call) and getattr(node.func, "attr", None) == "append" and node.args and \
                        isinstance(node.args[0], ast.Tuple) and len(node.args[0].elts) == 3:
                    reason = node.args[0].elts[1]
                    if isinstance(reason, ast.Name) and reason.id in names:
                        found.add(names[reason.id])
    found.discard("duplicate")  # counted, never a dead letter
    return found


def documented_reasons() -> set[str]:
    text = (ROOT / "docs" / "contracts.md").read_text()
    return set(re.findall(r"^  \| `([a-z_0-9]+)` \| ", text, flags=re.M))


def test_every_dead_letter_reason_is_documented_and_every_documented_one_is_emitted():
    emitted, documented = emitted_reasons(), documented_reasons()
    assert emitted >= {"invalid_utf8", "too_deep", "spend_unissued", "spend_total_down", "key_mismatch",
                       "malformed_envelope", "truncated_input", "invalid_campaign"}  # the scan sees them
    assert emitted - documented == set(), "emitted but not in docs/contracts.md"
    assert documented - emitted == set(), "in docs/contracts.md but never emitted"


def test_the_worker_exports_every_reason_of_the_rooms_agent_from_zero():
    """What the streams core can give on Kafka: all of its reasons but a recorded
    session's ts bounds and the decoder's own blank verdict (the core counts blanks)."""
    from liveroom.kafka.web import ROOM_REASONS

    assert set(ROOM_REASONS) == emitted_reasons(("streams",)) - {"ts_out_of_range", "empty"} | {"wrong_partition"}
    assert "wrong_partition" in emitted_reasons(("liveroom",))  # the runtime's own: a message on another partition
