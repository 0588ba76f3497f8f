"""Seats under contention: N pods against M floating seats, SIGTERM, rolling updates."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator

import pytest

from entitlement_sidecar.emulator import Emulator
from entitlement_sidecar.testing import http_get
from tests.sidecar.conftest import RunningSidecar

from .conftest import Pods, seat_license, seats_in_use, status_of, wait_for

SEATS_M = 2
Make = Callable[[Emulator], Pods]


class SeatWatch:
    """Samples the emulator's seats in use every 20 ms; remembers the highest count seen."""

    def __init__(self, emu: Emulator) -> None:
        self.emu = emu
        self.highest = 0
        self.samples = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(0.02):
            self.highest = max(self.highest, seats_in_use(self.emu))
            self.samples += 1

    def __enter__(self) -> SeatWatch:
        self._thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self._stop.set()
        self._thread.join(5)


@pytest.fixture
def emu() -> Iterator[Emulator]:
    with Emulator({"licenses": [seat_license(seats=SEATS_M)]}) as emu:
        yield emu


def ready(pod: RunningSidecar) -> bool:
    return http_get(pod.url("/readyz"), timeout=2, quiet=True)[0] == 200


def test_n_pods_never_hold_more_than_m_seats(emu: Emulator, pods: Make) -> None:
    """4 pods, 2 seats: 2 ready, 2 wait (SeatsInUse); a stopped pod's seat goes to a waiting
    one; every seat is back in the pool once all have stopped; never more than 2 held."""
    group = pods(emu)
    with SeatWatch(emu) as watch:
        fleet = [group.start(f"pod-{n}") for n in range(4)]
        wait_for(lambda: sum(ready(p) for p in fleet) == SEATS_M, what="two pods ready")
        waiting = [p for p in fleet if not ready(p)]
        for pod in waiting:
            doc = pod.wait_state("denied", where=lambda d: d.get("reason") == "SeatsInUse")
            assert "most likely" in doc["message"]
        holder = next(p for p in fleet if ready(p))
        assert holder.stop(timeout=30)[0] == 0
        wait_for(lambda: sum(ready(p) for p in waiting) == 1, what="a waiting pod takes the seat")
        for pod in fleet:
            pod.stop(timeout=30)
        assert seats_in_use(emu) == 0
    assert watch.samples > 20
    assert watch.highest == SEATS_M


def test_a_rolling_update_never_locks_the_buyer_out(emu: Emulator, pods: Make) -> None:
    """replicas == seats, maxSurge 1: each surge pod waits until an old pod stops, then takes its
    seat; the rollout completes with every new pod ready and never more than M seats held."""
    group = pods(emu)
    with SeatWatch(emu) as watch:
        old = [group.start(f"old-{n}") for n in range(SEATS_M)]
        for pod in old:
            pod.wait_ready()
        new: list[RunningSidecar] = []
        for n, retiring in enumerate(old):
            surge = group.start(f"new-{n}")
            surge.wait_state("denied", where=lambda d: d.get("reason") == "SeatsInUse")
            assert not ready(surge)
            assert retiring.stop(timeout=30)[0] == 0  # the Deployment retires an old pod
            surge.wait_ready(timeout=30)
            new.append(surge)
        assert all(ready(p) for p in new)
        assert all(status_of(p)["license"]["seat_held"] for p in new)
    assert watch.highest == SEATS_M


def test_max_surge_zero_hands_the_seat_over_at_once(emu: Emulator, pods: Make) -> None:
    """maxSurge 0 / maxUnavailable 1: the old pod stops first, the new one starts ready."""
    group = pods(emu)
    old = [group.start(f"o-{n}") for n in range(SEATS_M)]
    for pod in old:
        pod.wait_ready()
    for n, retiring in enumerate(old):
        retiring.stop(timeout=30)
        fresh = group.start(f"n-{n}")
        fresh.wait_ready()
        assert status_of(fresh)["attempt_results"] == {"Success": 1}
    assert seats_in_use(emu) == SEATS_M
