"""License Manager mode of the sidecar: contract-priced products, on EKS, ECS and Anywhere.

Selected by `ENTITLEMENT_PRODUCT_SKU`. The start gate (`gate.py`, run by `register`) checks a
license out; the long-lived `run` parent schedules short-lived children for the heartbeat
(`heartbeat.py`) and for returning the seat at SIGTERM (`checkin.py`). Pure decisions live apart
from I/O: what to ask for and what an answer grants (`wants.py`), why a checkout was refused
(`diagnosis.py`), whether the pod may serve (`readiness.py`, lean), when the parent acts next
(`schedule.py`, lean). Docstring only: importing the package loads nothing.
"""
