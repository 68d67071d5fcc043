"""Planning: from nothing to a project, and v1 to v2 of the upgrade sample."""

import json

import pytest

import mln
from conftest import PROJECTS

UPGRADE = PROJECTS / "upgrade"


@pytest.fixture(scope="module")
def v1() -> mln.Project:
    return mln.load(UPGRADE / "v1.mln")


@pytest.fixture(scope="module")
def v2() -> mln.Project:
    return mln.load(UPGRADE / "v2.mln")


def test_upgrade_v1_to_v2_is_api_live_batch_move_cache_create(
    v1: mln.Project, v2: mln.Project
) -> None:
    plan = mln.plan(v1, v2)
    assert plan.project == "shop"
    assert plan.goal == "upgrade"
    kinds = [(h.host, h.kind, h.change_class) for h in plan.hosts]
    assert kinds == [
        ("api", "update", "live"),
        ("batch", "move", None),
        ("cache", "create", None),
    ]
    assert plan.host("front") is None
    assert plan.switches == []

    api = plan.host("api")
    assert api is not None
    (memory,) = api.changes
    assert (memory.attr, memory.old, memory.new, memory.change_class) == (
        "memory",
        "128M",
        "256M",
        "live",
    )

    batch = plan.host("batch")
    assert batch is not None
    assert (batch.old_service_host, batch.new_service_host) == ("server-a", "server-b")
    assert batch.links == [("net", ["api", "cache", "front"])]

    ops = [a.op for a in plan.actions]
    assert "set_memory" in ops and "move" in ops
    assert plan.counts() == {
        "create": 1,
        "update": 1,
        "rebuild": 0,
        "moved": 1,
        "destroy": 0,
        "other": 0,
    }


def test_plan_actions_are_ordered_by_their_dependencies(
    v1: mln.Project, v2: mln.Project
) -> None:
    plan = mln.plan(v1, v2)
    assert len(plan) == len(plan.actions) > 0
    for n, action in enumerate(plan.actions):
        assert action.id == n
        assert all(dep < n for dep in action.after), action
        assert action.description == str(action)
        assert action.touches
    moves = [a for a in plan.actions if a.op == "move"]
    assert [a.host for a in moves] == ["batch"]
    assert "batch" in moves[0].description


def test_plan_diff_and_json(v1: mln.Project, v2: mln.Project) -> None:
    plan = mln.plan(v1, v2)
    diff = str(plan)
    assert diff.startswith("Plan for project shop (upgrade):")
    assert "~ host api update live" in diff
    assert "memory: 128M → 256M (live)" in diff
    assert "→ host batch move server-a → server-b" in diff
    assert "+ host cache create" in diff
    assert "host front" not in diff
    assert "1 to create, 1 to update, 0 to rebuild, 1 to move" in diff
    data = plan.to_dict()
    assert json.loads(plan.to_json()) == data
    assert json.loads(plan.to_json(indent=2)) == data
    assert [h["host"] for h in data["hosts"]] == ["api", "batch", "cache"]
    assert len(data["actions"]) == len(plan)
    assert plan.actions[0].to_dict() == data["actions"][0]
    assert plan.render_actions()


def test_unchanged_project_plans_nothing(v1: mln.Project) -> None:
    plan = mln.plan(v1, v1)
    assert len(plan) == 0
    assert plan.hosts == [] and plan.switches == []


def test_from_nothing_creates_every_host_and_switch(v1: mln.Project) -> None:
    plan = mln.plan(None, v1)
    assert plan.goal == "up"
    assert sorted((h.host, h.kind) for h in plan.hosts) == [
        ("api", "create"),
        ("batch", "create"),
        ("front", "create"),
    ]
    assert [(s.switch, s.kind) for s in plan.switches] == [("net", "create")]
    assert {a.op for a in plan.actions} >= {"create_switch", "prepare_disk", "start"}


def test_build_goal_starts_nothing(v1: mln.Project) -> None:
    plan = mln.plan(None, v1, goal="build")
    assert plan.goal == "build"
    assert "start" not in [a.op for a in plan.actions]


def test_plan_restricted_to_hosts(v1: mln.Project, v2: mln.Project) -> None:
    plan = mln.plan(v1, v2, hosts=["api"])
    assert [h.host for h in plan.hosts] == ["api"]


def test_remove_goal_destroys_everything(v1: mln.Project) -> None:
    plan = mln.plan(v1, v1, goal="remove")
    assert sorted(h.host for h in plan.hosts if h.kind == "destroy") == [
        "api",
        "batch",
        "front",
    ]


def test_two_different_projects_are_a_plan_error(v1: mln.Project) -> None:
    other = mln.parse("global { project other }\nhost h { }\n", "other.mln", check=False)
    with pytest.raises(mln.PlanError, match="two versions of one project"):
        mln.plan(v1, other)


def test_unknown_goal_is_a_value_error(v1: mln.Project) -> None:
    with pytest.raises(ValueError, match="unknown goal"):
        mln.plan(None, v1, goal="explode")  # type: ignore[arg-type]
