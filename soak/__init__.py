"""The soak (`make soak`): the whole system under mixed load and random faults for minutes, then every invariant
checked. See soak/run.py."""
