"""The HPA adapter's pure rules: floors and plain workloads. No event loop, no network."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from adapters.hpa.floors import APPLIED, FLOOR, ORIGINAL_MIN, SERVICE, floor_patch, hpa_facts
from adapters.hpa.workloads import ALLOW_ZERO, replicas_for, workload_status


def hpa(min_replicas: int = 2, max_replicas: int = 10, **annotations: str) -> dict:
    return {
        "metadata": {
            "namespace": "ns",
            "name": "chat",
            "resourceVersion": "7",
            "annotations": annotations,
        },
        "spec": {
            "minReplicas": min_replicas,
            "maxReplicas": max_replicas,
            "scaleTargetRef": {"kind": "Deployment", "name": "chat-model"},
        },
    }


def test_opting_in_records_the_original_and_raises_the_floor():
    patch = floor_patch(hpa_facts(hpa(**{FLOOR: "true"})), 5)
    assert patch == {
        "metadata": {"resourceVersion": "7", "annotations": {ORIGINAL_MIN: "2", APPLIED: "5"}},
        "spec": {"minReplicas": 5},
    }


def test_the_floor_stays_within_the_original_min_and_the_max():
    facts = hpa_facts(hpa(5, 10, **{FLOOR: "true", ORIGINAL_MIN: "2", APPLIED: "5"}))
    assert floor_patch(facts, 1)["spec"]["minReplicas"] == 2
    assert floor_patch(facts, 40)["spec"]["minReplicas"] == 10
    assert floor_patch(facts, 5) is None  # already right: no write


def test_opting_out_restores_the_original_and_forgets():
    facts = hpa_facts(hpa(6, **{ORIGINAL_MIN: "2", APPLIED: "6"}))
    assert floor_patch(facts, 6) == {
        "metadata": {"resourceVersion": "7", "annotations": {ORIGINAL_MIN: None, APPLIED: None}},
        "spec": {"minReplicas": 2},
    }
    assert floor_patch(hpa_facts(hpa(3)), 6) is None  # never opted in: never touched


def test_a_min_the_user_edited_while_opted_in_becomes_the_new_original():
    facts = hpa_facts(hpa(4, **{FLOOR: "true", ORIGINAL_MIN: "2", APPLIED: "6"}))
    patch = floor_patch(facts, 3)
    assert patch["metadata"]["annotations"][ORIGINAL_MIN] == "4"
    assert patch["spec"]["minReplicas"] == 4


def test_the_service_is_the_target_unless_named():
    assert hpa_facts(hpa()).service == "chat-model"
    assert hpa_facts(hpa(**{SERVICE: "chat"})).service == "chat"


@given(st.integers(1, 20), st.integers(1, 40), st.none() | st.integers(0, 60))
def test_a_floor_never_leaves_the_users_bounds(original, spread, decision):
    maximum = original + spread
    patch = floor_patch(hpa_facts(hpa(original, maximum, **{FLOOR: "true"})), decision)
    floor = original if patch is None else patch["spec"]["minReplicas"]
    assert original <= floor <= maximum


def test_plain_workloads_keep_one_replica_unless_zero_is_allowed():
    assert replicas_for(0, {}) == 1 and replicas_for(4, {}) == 4
    assert replicas_for(0, {ALLOW_ZERO: "true"}) == 0


def test_workload_status_reads_ready_pending_desired():
    deployment = {"spec": {"replicas": 5}, "status": {"replicas": 5, "readyReplicas": 3}}
    assert workload_status(deployment) == (3, 2, 5)
    assert workload_status({"spec": {}, "status": {}}) == (0, 0, 0)
