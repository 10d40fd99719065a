"""When a callbacks worker's claimer claims: how long it rests after a claim, and how long it
waits when nothing asks it to (a wake-up from a status change, a settled callback's successor
left due, a full claim)."""

CLAIM_EVERY_S = 0.01  # claims are at most this frequent: completions are claimed for in batches
# With no wake-up, the claimer still looks this often: the net under a wake-up lost or held
# behind a pending one (a process starting, a broker slow to deliver). Every 5 s instead saved
# 0.17% of a core idle but let a callback wait over a second after a worker's start.
IDLE_CHECK_S = 1.0


def rest_after_claim(claimed: int, room: int, skipped: bool, took_s: float) -> float:
    """Seconds the claimer rests after a claim. A full one found work all the way: claim again
    soon. A short one that left busy endpoints out may have scanned past their due callbacks:
    rest four times as long as it took, so such claims take at most a fifth of the claimer's
    time, however large the backlog they skip. One that left none out found all there was."""
    if claimed < room and skipped:
        return max(CLAIM_EVERY_S, 4.0 * took_s)
    return CLAIM_EVERY_S
