"""saga: the order saga orchestrator — reserve stock, await payment, confirm or release, with compensations."""
