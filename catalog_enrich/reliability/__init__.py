"""The reliability suite: real workers, real servers, and faults injected on purpose.

Every scenario ends with an audit of the ledger, the catalog and the dead letters: each image must end
either in the catalog or in a dead letter with a reason, exactly once, whatever broke on the way.
"""
