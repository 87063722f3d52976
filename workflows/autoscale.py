"""AutoscalerWorkflow: one per autoscaled service and environment (`autoscale/<service>/<environment>`).

    every evaluation period (15 s): load the policy and the ACTIVE deployment
                                    → observe its replicas in Prometheus
                                    → decide (core/autoscaling.py), with the recommendations and
                                      scales of the windows
                                    → scale in place (the service's entity runs a ScaleWorkflow)
                                    → record the decision, when it changed or wanted to change the
                                      replicas, with its inputs

A decision is made at one workflow time, so a replay makes the same one; the windows' history travels
through continue-as-new. A worker killed mid-decision: the evaluation's activities are retried (each
idempotent), and the next evaluation starts from the replicas the database says the deployment runs,
which is always what a completed scale left. A round that cannot observe (Prometheus away) or scale (a
deploy in progress) decides nothing and looks again at the next. The policy removed: the workflow ends.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from pydantic import Field
from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError

from workflows.steps import reason_of

with workflow.unsafe.imports_passed_through():
    from activities.autoscaling import (
        AutoscaleState,
        AutoscaleTarget,
        AutoscalingActivities,
        DecisionRecord,
        ObserveRequest,
        ScaleOrder,
    )
    from core.autoscaling import Decision, History, Observation, Recommendation, ScaleEvent, decide
    from core.contracts import Contract

ROUNDS_PER_RUN = 200
RECONSIDER_SIGNAL = "reconsider"
ROUND: workflow.ActivityConfig = {
    "start_to_close_timeout": timedelta(seconds=30),
    "retry_policy": RetryPolicy(initial_interval=timedelta(seconds=1), maximum_attempts=3),
}
# The scale returns once the entity accepted it; the ScaleWorkflow runs on by itself.
SCALE: workflow.ActivityConfig = {
    "start_to_close_timeout": timedelta(seconds=60),
    "retry_policy": RetryPolicy(initial_interval=timedelta(seconds=1), maximum_attempts=3),
}


class AutoscalerInput(Contract):
    service_id: str
    environment_id: str
    evaluation_seconds: float = Field(default=15, gt=0)
    recommendations: list[tuple[datetime, int]] = Field(default_factory=list)
    scales: list[tuple[datetime, int, int]] = Field(default_factory=list)


@workflow.defn
class AutoscalerWorkflow:
    def __init__(self) -> None:
        self._poked = False
        self._last: str = "no evaluation yet"

    @workflow.signal(name=RECONSIDER_SIGNAL)
    def reconsider(self) -> None:
        """Evaluate now (the policy changed)."""
        self._poked = True

    @workflow.query
    def last_decision(self) -> str:
        return self._last

    @workflow.run
    async def run(self, args: AutoscalerInput) -> None:
        recommendations = [Recommendation(at, replicas) for at, replicas in args.recommendations]
        scales = [ScaleEvent(at, before, after) for at, before, after in args.scales]
        target = AutoscaleTarget(service_id=args.service_id, environment_id=args.environment_id)
        for _ in range(ROUNDS_PER_RUN):
            self._poked = False
            state: AutoscaleState = await workflow.execute_activity_method(
                AutoscalingActivities.load_autoscaling, target, **ROUND
            )
            if state.policy is None:
                self._last = "autoscaling was turned off"
                return
            if state.deployment_id is not None and state.replicas > 0:
                await self._evaluate(args, state, recommendations, scales)
            behaviour = state.policy.behaviour  # what decide() looks back over, and no further
            keep = timedelta(
                seconds=max(
                    behaviour.scale_up_window_seconds,
                    behaviour.scale_down_window_seconds,
                    behaviour.period_seconds,
                )
            )
            recommendations = [r for r in recommendations if r.at > workflow.now() - keep]
            scales = [s for s in scales if s.at > workflow.now() - keep]
            try:
                await workflow.wait_condition(
                    lambda: self._poked, timeout=timedelta(seconds=args.evaluation_seconds)
                )
            except TimeoutError:
                pass
            if workflow.info().is_continue_as_new_suggested():
                break
        await workflow.wait_condition(workflow.all_handlers_finished)
        workflow.continue_as_new(
            args.model_copy(
                update={
                    "recommendations": [(r.at, r.replicas) for r in recommendations],
                    "scales": [(s.at, s.before, s.after) for s in scales],
                }
            )
        )

    async def _evaluate(
        self,
        args: AutoscalerInput,
        state: AutoscaleState,
        recommendations: list[Recommendation],
        scales: list[ScaleEvent],
    ) -> None:
        assert state.policy is not None and state.deployment_id is not None
        try:
            seen: Observation = await workflow.execute_activity_method(
                AutoscalingActivities.observe,
                ObserveRequest(
                    service_id=args.service_id,
                    environment_id=args.environment_id,
                    deployment_id=state.deployment_id,
                    replicas=state.replicas,
                    cpu_millis=state.cpu_millis,
                    memory_mb=state.memory_mb,
                    window_seconds=max(60, int(4 * args.evaluation_seconds)),
                ),
                **ROUND,
            )
        except ActivityError as exc:
            self._last = f"not observed: {reason_of(exc)}"
            workflow.logger.warning("autoscaler %s: %s", workflow.info().workflow_id, self._last)
            return
        now = workflow.now()
        decision = decide(state.policy, seen, History(recommendations=recommendations, scales=scales), now)
        recommendations.append(Recommendation(now, decision.recommendation))
        self._last = decision.reason
        if not decision.changes and decision.recommendation == decision.current:
            return
        result = "held"
        if decision.changes:
            result = await workflow.execute_activity_method(
                AutoscalingActivities.scale,
                ScaleOrder(
                    service_id=args.service_id,
                    environment_id=args.environment_id,
                    deployment_id=state.deployment_id,
                    replicas=decision.desired,
                ),
                **SCALE,
            )
            if result == "scaled":
                scales.append(ScaleEvent(now, decision.current, decision.desired))
        await workflow.execute_activity_method(
            AutoscalingActivities.record_decision, _record(args, now, decision, seen, result), **ROUND
        )


def _record(
    args: AutoscalerInput, now: datetime, decision: Decision, seen: Observation, result: str
) -> DecisionRecord:
    return DecisionRecord(
        service_id=args.service_id,
        environment_id=args.environment_id,
        at=now,
        current=decision.current,
        recommendation=decision.recommendation,
        desired=decision.desired,
        reason=decision.reason,
        inputs={
            "metrics": [
                {
                    "metric": p.metric,
                    "value": p.value,
                    "target": p.target,
                    "replicas": p.replicas,
                    "note": p.note,
                }
                for p in decision.proposals
            ],
            "replicas": [r.model_dump(mode="json") for r in seen.replicas],
            "requests_per_second": seen.requests_per_second,
        },
        result=result,
    )
