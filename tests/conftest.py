"""Session-wide hooks: the least-privilege report of the integration stacks' IAM grants, which
under pytest-xdist gathers what every worker's stacks saw before it is written."""

from __future__ import annotations

from typing import Any

import pytest


def pytest_sessionfinish(session: pytest.Session) -> None:
    # Under pytest-xdist each worker runs some modules' stacks: it hands what they saw to the
    # controller, which writes the one least-privilege report below.
    from tests.integration.stacks import export_seen

    workeroutput = getattr(session.config, "workeroutput", None)
    if workeroutput is not None:
        workeroutput["iam_seen"] = export_seen()


@pytest.hookimpl(optionalhook=True)
def pytest_testnodedown(node: Any, error: Any) -> None:
    from tests.integration.stacks import merge_seen

    merge_seen(getattr(node, "workeroutput", {}).get("iam_seen") or {})


def pytest_terminal_summary(terminalreporter: Any) -> None:
    from tests.integration.stacks import policies_seen

    policies, seen = policies_seen()
    if not policies:
        return
    from motionrelay_local.iam import Policy, Request, unused_grants

    unused = []
    for function, statements in sorted(policies.items()):
        policy = Policy(statements)
        allowed = [policy.decide(Request(a, r)) for a, r in seen.get(function, set())]
        pairs: dict[str, set[tuple[str, str]]] = {}
        for st, action, resource in unused_grants(policy, allowed):
            pairs.setdefault(st.sid or "-", set()).add((action, resource))
        for st in policy.statements:
            gaps = pairs.get(st.sid or "-", set())
            # An action no call used on any of the statement's resources, or a resource no call
            # used with any of its actions: each is a grant to drop (a pair alone is not).
            unused += [f"{function}: {st.sid} grants {a} unused" for a in st.actions
                       if all((a, r) in gaps for r in st.resources)]
            unused += [f"{function}: {st.sid} grants {r} unused" for r in st.resources
                       if all((a, r) in gaps for a in st.actions) and not all(
                           (a, r2) in gaps for a in st.actions for r2 in st.resources)]
    terminalreporter.section("IAM grants no integration test used (least privilege)")
    terminalreporter.write_line("\n".join(unused) if unused else "none: every inline grant was used")
