"""The Knative adapter's pure rules: annotations, conditions, the scaler, the PA status, pods.
No event loop, no network."""

from __future__ import annotations

from dataclasses import replace

from hypothesis import given
from hypothesis import strategies as st

from adapters.knative.annotations import QueryFence, revision_settings
from adapters.knative.conditions import set_condition, status_of, with_ready
from adapters.knative.names import PROXY, SERVE, valid_class_name
from adapters.knative.pods import PodInfo, cold_start_s, count
from adapters.knative.scaler import ScaleInputs, bounded, plan
from adapters.knative.status import StatusInputs, pa_status
from autoscaler.config import PolicyConfig

DEFAULTS = PolicyConfig()


def inputs(**changes) -> ScaleInputs:
    base = ScaleInputs(
        want=None,
        min_scale=0,
        max_scale=0,
        initial_scale=1,
        initialized=True,
        current=1,
        ready=1,
        sks_mode=SERVE,
        proxy_since=None,
        activator_ok=None,
        now=1000.0,
        grace_s=30.0,
    )
    return replace(base, **changes)


# --- annotations ---------------------------------------------------------------------------------

OWN_QUERY = 'sum(rate(my_requests_total{namespace="{namespace}", rev="{service}"}[{window}]))'


def test_knative_annotations_set_the_policy_with_knatives_meanings():
    settings = revision_settings(
        {
            "autoscaling.knative.dev/min-scale": "2",
            "autoscaling.knative.dev/max-scale": "10",
            "autoscaling.knative.dev/initial-scale": "3",
            "autoscaling.knative.dev/target": "4",
            "autoscaling.knative.dev/metric": "rps",
            "autoscaling.knative.dev/window": "30s",
            "autoscaling.knative.dev/scale-down-delay": "5m",
            "autoscaling.knative.dev/target-utilization-percentage": "80",
            "leadtime.dev/slo-target": "0.95",
            "leadtime.dev/horizon": "2m",
            "leadtime.dev/query": OWN_QUERY,
            "autoscaling.knative.dev/class": "leadtime.dev",
            "autoscaling.knative.dev/panic-window-percentage": "10",  # Knative's KPA only
        },
        container_concurrency=8,
        defaults=DEFAULTS,
        namespace="team-a",
        revision="chat-00001",
        fence=QueryFence(("team-a",)),
    )
    policy = settings.policy
    assert (policy.min_scale, policy.max_scale, policy.initial_scale) == (2, 10, 3)
    assert (policy.target, policy.metric, policy.stable_window_s) == (4.0, "rps", 30.0)
    assert policy.scale_down_delay_s == 300.0 and policy.target_utilization == 0.8
    assert (policy.slo_target, policy.horizon_s, policy.container_concurrency) == (0.95, 120.0, 8)
    assert settings.queries == {"arrivals": OWN_QUERY}
    assert settings.problems == {}


def test_each_bad_annotation_is_named_with_what_is_allowed_and_the_rest_apply():
    settings = revision_settings(
        {
            "autoscaling.knative.dev/max-scale": "lots",
            "autoscaling.knative.dev/window": "2s",
            "autoscaling.knative.dev/target-utilization-percentage": "150",
            "autoscaling.knative.dev/min-scale": "1",
            "leadtime.dev/qantile": "0.9",
        },
        container_concurrency=0,
        defaults=DEFAULTS,
    )
    problems = settings.problems
    assert (
        "expected an integer >= 0 (0 = unbounded), got 'lots'"
        in problems["autoscaling.knative.dev/max-scale"]
    )
    assert "6s" in problems["autoscaling.knative.dev/window"]
    assert "(0, 100]" in problems["autoscaling.knative.dev/target-utilization-percentage"]
    assert "unknown annotation" in problems["leadtime.dev/qantile"]
    assert "leadtime.dev/slo-target" in problems["leadtime.dev/qantile"]  # the known ones listed
    assert settings.policy.min_scale == 1  # the good one still applies
    assert settings.policy.max_scale == DEFAULTS.max_scale


def test_min_above_max_applies_neither_and_says_so():
    settings = revision_settings(
        {"autoscaling.knative.dev/min-scale": "5", "autoscaling.knative.dev/max-scale": "3"},
        0,
        DEFAULTS,
    )
    assert settings.policy == DEFAULTS
    assert (
        "max-scale: must be >= min_scale=5"
        in settings.problems["autoscaling.knative.dev/max-scale"]
    )


def test_the_empty_metric_knatives_webhook_writes_is_not_an_error():
    settings = revision_settings({"autoscaling.knative.dev/metric": ""}, 0, DEFAULTS)
    assert settings.problems == {} and settings.policy.metric == DEFAULTS.metric


@given(
    st.dictionaries(
        st.sampled_from(
            [
                "autoscaling.knative.dev/min-scale",
                "autoscaling.knative.dev/max-scale",
                "autoscaling.knative.dev/target",
                "autoscaling.knative.dev/window",
                "leadtime.dev/slo-target",
                "leadtime.dev/paused",
                "leadtime.dev/query",
                "leadtime.dev/x",
            ]
        ),
        st.text(max_size=12),
    )
)
def test_any_annotation_text_gives_settings_or_named_problems(annotations):
    settings = revision_settings(annotations, 0, DEFAULTS)
    settings.policy.leadtime_config()  # always a valid policy
    for annotation, message in settings.problems.items():
        assert annotation in annotations
        assert message.split(": ")[0] in annotations  # names the annotation at fault


def test_class_names_ending_in_knative_dev_are_refused():
    assert valid_class_name("leadtime.dev")
    assert not valid_class_name("leadtime.knative.dev") and not valid_class_name("")


# --- conditions ----------------------------------------------------------------------------------


def test_transition_time_changes_only_when_the_status_flips():
    conditions = set_condition([], "Active", "True", "t1")
    conditions = set_condition(conditions, "Active", "True", "t2", "SameReason")
    assert conditions[0]["lastTransitionTime"] == "t1"
    conditions = set_condition(conditions, "Active", "False", "t3", "NoTraffic")
    assert conditions[0]["lastTransitionTime"] == "t3"


def test_ready_is_false_before_unknown_before_true():
    conditions = [
        {"type": "Active", "status": "True"},
        {"type": "ScaleTargetInitialized", "status": "Unknown", "reason": "Queued"},
        {"type": "SKSReady", "status": "False", "reason": "NotOwned"},
    ]
    ready = with_ready(conditions, "t")
    assert status_of(ready, "Ready") == "False"
    assert next(c for c in ready if c["type"] == "Ready")["reason"] == "NotOwned"
    conditions[2]["status"] = "True"
    assert status_of(with_ready(conditions, "t"), "Ready") == "Unknown"
    conditions[1]["status"] = "True"
    assert status_of(with_ready(conditions, "t"), "Ready") == "True"


# --- the scaler ----------------------------------------------------------------------------------


def test_before_any_decision_a_new_revision_gets_its_initial_scale():
    assert plan(inputs(initialized=False, initial_scale=3, current=3, ready=0)).replicas == 3
    assert plan(inputs(initialized=False, initial_scale=3, want=1)).replicas == 3
    assert plan(inputs(initialized=True, current=4)).replicas == 4  # no decision: hold


@given(st.integers(0, 50), st.integers(0, 10), st.integers(0, 30), st.integers(0, 5), st.booleans())
def test_the_bounded_decision_respects_min_max_and_initial(want, low, high, initial, initialized):
    high = 0 if high < low else high
    result = bounded(
        inputs(
            want=want, min_scale=low, max_scale=high, initial_scale=initial, initialized=initialized
        )
    )
    assert result >= low
    if high:
        assert result <= max(high, 0 if initialized else initial)
    if not initialized:
        assert result >= initial


def test_traffic_goes_through_the_activator_until_a_replica_is_ready():
    assert plan(inputs(want=2, ready=0)).mode == PROXY
    assert plan(inputs(want=2, ready=1)).mode == SERVE


def test_scale_to_zero_waits_for_proxy_probe_and_grace():
    first = plan(inputs(want=0, sks_mode=SERVE))
    assert (first.replicas, first.mode, first.desired_scale) == (1, PROXY, 0)
    probing = plan(inputs(want=0, sks_mode=PROXY, proxy_since=990.0))
    assert probing.probe and probing.replicas == 1
    refused = plan(inputs(want=0, sks_mode=PROXY, proxy_since=900.0, activator_ok=False))
    assert refused.replicas == 1 and refused.requeue_after_s
    waiting = plan(inputs(want=0, sks_mode=PROXY, proxy_since=990.0, activator_ok=True))
    assert waiting.replicas == 1 and waiting.requeue_after_s == 20.0
    done = plan(inputs(want=0, sks_mode=PROXY, proxy_since=960.0, activator_ok=True))
    assert done.replicas == 0


def test_min_scale_forbids_zero_unless_the_revision_is_unreachable():
    assert plan(inputs(want=0, min_scale=1)).replicas == 1
    assert plan(inputs(want=0, min_scale=1, current=0, reachable=False)).replicas == 0


# --- status --------------------------------------------------------------------------------------


def status_inputs(**changes) -> StatusInputs:
    base = StatusInputs(
        generation=3,
        previous={},
        service_name="rev",
        metrics_service_name="rev-private",
        sks_ready=True,
        sks_message="",
        desired_scale=1,
        ready=1,
        min_scale=0,
        initial_scale=1,
        now="t1",
    )
    return replace(base, **changes)


def test_a_serving_revision_is_ready_with_every_field():
    status = pa_status(status_inputs())
    assert status["observedGeneration"] == 3 and status["actualScale"] == 1
    assert {c["type"]: c["status"] for c in status["conditions"]} == {
        "Active": "True",
        "AnnotationsValid": "True",
        "Ready": "True",
        "SKSReady": "True",
        "ScaleTargetInitialized": "True",
    }


def test_initialization_needs_initial_scale_ready_and_then_sticks():
    waiting = pa_status(status_inputs(initial_scale=3, ready=2, desired_scale=3))
    assert status_of(waiting["conditions"], "ScaleTargetInitialized") == "Unknown"
    assert status_of(waiting["conditions"], "Active") == "Unknown"
    done = pa_status(status_inputs(initial_scale=3, ready=3, desired_scale=3, previous=waiting))
    assert status_of(done["conditions"], "ScaleTargetInitialized") == "True"
    later = pa_status(status_inputs(initial_scale=3, ready=0, desired_scale=0, previous=done))
    assert status_of(later["conditions"], "ScaleTargetInitialized") == "True"
    active = next(c for c in later["conditions"] if c["type"] == "Active")
    assert (active["status"], active["reason"]) == ("False", "NoTraffic")


def test_at_zero_the_pa_is_inactive_no_traffic():
    status = pa_status(status_inputs(desired_scale=0, ready=0, previous=pa_status(status_inputs())))
    active = next(c for c in status["conditions"] if c["type"] == "Active")
    assert (active["status"], active["reason"]) == ("False", "NoTraffic")
    assert status_of(status["conditions"], "Ready") == "False"


def test_annotation_problems_are_a_warning_condition_not_a_readiness_one():
    status = pa_status(status_inputs(problems={"leadtime.dev/x": "leadtime.dev/x: unknown"}))
    valid = next(c for c in status["conditions"] if c["type"] == "AnnotationsValid")
    assert (valid["status"], valid["severity"], valid["reason"]) == (
        "False",
        "Warning",
        "InvalidAnnotation",
    )
    assert status_of(status["conditions"], "Ready") == "True"


# --- pods ----------------------------------------------------------------------------------------


def pod(
    name: str,
    created: float,
    ready_at: float | None,
    phase: str = "Running",
    terminating: bool = False,
) -> PodInfo:
    return PodInfo(name, phase, ready_at is not None, terminating, created, ready_at)


def test_pods_are_counted_as_knative_counts_them():
    counts = count(
        [
            pod("a", 0, 5),
            pod("b", 0, None, "Pending"),
            pod("c", 0, None),
            pod("d", 0, 3, terminating=True),
        ]
    )
    assert (counts.ready, counts.pending, counts.not_ready, counts.terminating) == (1, 1, 1, 1)


def test_cold_start_is_the_median_of_the_most_recent_ready_pods():
    pods = [pod("old", -1000.0, -500.0)] + [
        pod(str(i), 100.0 * i, 100.0 * i + delay) for i, delay in enumerate([60, 62, 58, 61, 59])
    ]
    assert cold_start_s(pods) == 60.0  # the old 500 s start has aged out
    assert cold_start_s([pod("x", 0, None)]) is None
