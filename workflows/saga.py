"""A saga's compensations: each step registers, before it runs, how to undo it; when a later step fails
(or the workflow is cancelled) they run in reverse order. Deterministic: it only orders awaitables.

    saga = Saga()
    saga.on_failure("remove new replicas", lambda: remove(batch))
    ...start the replicas...
    saga.done()                      # traffic is on the new version: nothing to undo from here on

    except ...:
        for name, reason in await saga.compensate():   # what could not be undone
            ...
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from temporalio import workflow

from workflows.steps import reason_of, to_the_end

Compensation = Callable[[], Awaitable[object]]


class Saga:
    def __init__(self) -> None:
        self._compensations: list[tuple[str, Compensation]] = []

    def on_failure(self, name: str, compensation: Compensation) -> None:
        """Register how to undo the step about to run (harmless if the step never ran)."""
        self._compensations.append((name, compensation))

    def replace(self, name: str, by: str, compensation: Compensation) -> None:
        """A compensation no longer fits (the route is already on the new version): `by` undoes more."""
        self._compensations = [(n, c) for n, c in self._compensations if n != name]
        self.on_failure(by, compensation)

    def done(self) -> None:
        """Nothing to undo from here on."""
        self._compensations.clear()

    @property
    def pending(self) -> list[str]:
        return [name for name, _ in self._compensations]

    async def compensate(self) -> list[tuple[str, str]]:
        """Run the compensations, newest first, each to its end through a cancellation; one failing does
        not stop the others. Answers (name, reason) of each that failed."""
        failed = []
        for name, compensation in reversed(self._compensations):
            try:
                await to_the_end(compensation())
            except Exception as exc:  # reported; the others still run
                workflow.logger.error("compensation %r failed: %s", name, reason_of(exc))
                failed.append((name, reason_of(exc)))
        self._compensations.clear()
        return failed
