"""What builders fetch from the control plane: a service's repository credential (the model is the
builders' contract, core/contracts.py, so that their client reads exactly what the route answers)."""

from __future__ import annotations

from core.contracts import RepoCredential

__all__ = ["RepoCredential"]
