"""The soak's random choices, all drawn up front from one seed: the same seed replays the same faults at the same
moments and the same customers' decisions (the system's own timing still varies from run to run)."""

import random
from dataclasses import dataclass
from enum import StrEnum

MIN_GAP, MAX_GAP = 5.0, 20.0  # seconds between two faults
MAX_PAUSE = 30.0  # seconds a process may stay frozen (SIGSTOP)


class FaultKind(StrEnum):
    KILL = "kill"  # SIGKILL; the process is started again after the fault's duration, as an operator would
    PAUSE = "pause"  # SIGSTOP for the fault's duration, then SIGCONT: a process stalled (GC, swap, a VM paused)


@dataclass(frozen=True)
class Fault:
    at: float  # seconds into the run
    kind: FaultKind
    targets: tuple[str, ...]  # process names (the long outage takes every broker at once)
    duration: float  # seconds down

    def describe(self) -> str:
        return f"{self.kind} {'+'.join(self.targets)} for {self.duration:.1f} s at {self.at:.1f} s"


class Fate(StrEnum):
    """What the customer does with an order once it is placed."""

    PAY = "pay"  # pays within a few seconds
    CANCEL = "cancel"  # cancels within a few seconds
    ABANDON = "abandon"  # never comes back: the payment deadline expires it
    PAY_AT_DEADLINE = "pay_at_deadline"  # pays right at the payment deadline, racing the saga's expiry


FATES = {Fate.PAY: 0.50, Fate.CANCEL: 0.20, Fate.ABANDON: 0.25, Fate.PAY_AT_DEADLINE: 0.05}


@dataclass(frozen=True)
class OrderPlan:
    customer: int  # index of the customer
    products: tuple[tuple[int, int], ...]  # (product index, quantity)
    fate: Fate
    delay: float  # seconds after placing before paying or cancelling (PAY_AT_DEADLINE: offset to the deadline)
    sent_twice: bool  # the POST is sent again with the same Idempotency-Key, as a client that timed out would


def faults(seed: int, seconds: float, targets: list[str], brokers: list[str], long_outage: float) -> list[Fault]:
    """One outage of every broker lasting `long_outage` s (longer than the saga's step budget) in the first part of
    the run, and a fault every 5-20 s on a random process that no other fault has down at that time."""
    rng = random.Random(f"{seed}:faults")
    outage_at = round(rng.uniform(MIN_GAP, max(MIN_GAP, seconds * 0.75 - long_outage)), 1)
    schedule = [Fault(outage_at, FaultKind.PAUSE, tuple(brokers), round(long_outage, 1))]
    down: dict[str, list[tuple[float, float]]] = {name: [] for name in targets}
    for broker in brokers:
        down[broker].append((outage_at, outage_at + long_outage))
    at = rng.uniform(MIN_GAP, MAX_GAP)
    while at < seconds - MIN_GAP:
        kind = rng.choice(list(FaultKind))
        duration = rng.uniform(1.0, 5.0) if kind == FaultKind.KILL else rng.uniform(1.0, MAX_PAUSE)
        free = [name for name in targets if all(end < at or start > at + duration for start, end in down[name])]
        if free:
            target = rng.choice(free)
            schedule.append(Fault(round(at, 1), kind, (target,), round(duration, 1)))
            down[target].append((at, at + duration))
        at += rng.uniform(MIN_GAP, MAX_GAP)
    return sorted(schedule, key=lambda fault: fault.at)


class OrderPlans:
    """An endless, seeded sequence of orders to place, and the arrival rate over time."""

    def __init__(self, seed: int, customers: int, products: int, rates: tuple[float, float]) -> None:
        self._seed, self._customers, self._products, self._rates = seed, customers, products, rates
        self._rng = random.Random(f"{seed}:orders")

    def next(self) -> OrderPlan:
        rng = self._rng
        chosen = rng.sample(range(self._products), min(rng.randint(1, 10), self._products))
        fate = rng.choices(list(FATES), weights=list(FATES.values()))[0]
        delay = rng.uniform(-1.0, 1.0) if fate == Fate.PAY_AT_DEADLINE else rng.uniform(0.1, 5.0)
        return OrderPlan(
            customer=rng.randrange(self._customers),
            products=tuple((product, rng.randint(1, 3)) for product in sorted(chosen)),
            fate=fate,
            delay=delay,
            sent_twice=rng.random() < 0.1,
        )

    def rate(self, elapsed: float) -> float:
        """Orders per second `elapsed` s into the run: a new level between the two rates every 10 s."""
        low, high = self._rates
        return low + random.Random(f"{self._seed}:rate:{int(elapsed // 10)}").random() * (high - low)
