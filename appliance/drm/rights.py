"""
Usage rights of protected messages, per key id and holder (docs/drm.md).

A holder's L{Rights}: plays left (enforced here, one per license for
playing), an optional window C{not_before} .. C{not_after} (absolute, seconds
since the epoch), an optional C{play_window} (seconds after the first play),
a forwarding depth (0: may not delegate; 1: may delegate rights that cannot
be forwarded further; ...), and may-copy / may-modify flags carried in the
license for the player.

The sender (the key's owner) grants rights at deposit, and can narrow or
revoke them at any time; a revocation carries down to everyone the holder
delegated to. A holder with a forwarding depth may delegate rights no greater
than its own: no more plays than it has left, an expiry no later than its
own, a forwarding depth below its own, and copy / modify only if it has
them. Delegating does not spend the grantor's plays.

Each decision comes with a reason: C{"no rights"}, C{"exhausted"},
C{"expired"}, C{"not yet valid"}, C{"revoked"}, C{"unknown key"},
C{"not the owner"}, C{"forwarding not allowed"}, C{"exceeds grantor's
rights"}, C{"holder already has rights"}.

The policy runs against the appliance database on an injected clock; the
C{*In(cursor, ...)} functions run inside a caller's transaction (the license
issuer checks, spends a play and reads the key in one).
"""

import attrs
from zope.interface import Interface, implementer

NO_RIGHTS = "no rights"
EXHAUSTED = "exhausted"
EXPIRED = "expired"
NOT_YET_VALID = "not yet valid"
REVOKED = "revoked"
UNKNOWN_KEY = "unknown key"
NOT_OWNER = "not the owner"
NO_FORWARD = "forwarding not allowed"
EXCEEDS = "exceeds grantor's rights"
ALREADY_HELD = "holder already has rights"

_COLUMNS = ("plays_left, not_before, not_after, play_window, first_play, forward_depth, "
            "may_copy, may_modify, granted_by, revoked")


@attrs.frozen
class Rights:
    """
    One holder's rights on one key.
    """

    plays: int
    notBefore: float | None = None
    notAfter: float | None = None
    playWindow: float | None = None
    firstPlay: float | None = None
    forwardDepth: int = 0
    mayCopy: bool = False
    mayModify: bool = False
    grantedBy: str | None = None
    revoked: bool = False

    def expiresAt(self):
        """
        When the rights end: the earlier of C{notAfter} and the end of the
        play window once started; C{None} for never.
        """
        ends = [self.notAfter] if self.notAfter is not None else []
        if self.firstPlay is not None and self.playWindow is not None:
            ends.append(self.firstPlay + self.playWindow)
        return min(ends) if ends else None

    def problemAt(self, now):
        """
        Why these rights cannot be used at C{now}, or C{None} (ignoring plays).
        """
        if self.revoked:
            return REVOKED
        if self.notBefore is not None and now < self.notBefore:
            return NOT_YET_VALID
        end = self.expiresAt()
        if end is not None and now >= end:
            return EXPIRED
        return None

    def asDict(self):
        """
        The rights as JSON-ready values (the license and the rights view).
        """
        return {
            "plays_left": self.plays, "not_before": self.notBefore, "not_after": self.notAfter,
            "play_window": self.playWindow, "first_play": self.firstPlay,
            "expires": self.expiresAt(), "forward_depth": self.forwardDepth,
            "may_copy": self.mayCopy, "may_modify": self.mayModify,
            "granted_by": self.grantedBy, "revoked": self.revoked,
        }


@attrs.frozen
class Decision:
    """
    The outcome of a rights check: C{allowed}, else C{reason}; C{rights} are
    the holder's rights after the decision (C{None} when there are none).
    """

    allowed: bool
    reason: str = "ok"
    rights: Rights | None = None


def _row(row):
    plays, notBefore, notAfter, window, first, depth, copy, modify, grantedBy, revoked = row
    return Rights(plays, notBefore, notAfter, window, first, depth, bool(copy), bool(modify),
                  grantedBy, bool(revoked))


def ownerIn(cursor, keyId):
    cursor.execute("SELECT owner FROM drm_keys WHERE key_id = ?", (keyId,))
    row = cursor.fetchone()
    return None if row is None else row[0]


def rightsIn(cursor, keyId, holder):
    cursor.execute("SELECT %s FROM drm_rights WHERE key_id = ? AND holder = ?" % (_COLUMNS,),
                   (keyId, holder))
    row = cursor.fetchone()
    return None if row is None else _row(row)


def putRightsIn(cursor, keyId, holder, rights, now):
    cursor.execute(
        "INSERT OR REPLACE INTO drm_rights (key_id, holder, plays_left, not_before, not_after, "
        "play_window, first_play, forward_depth, may_copy, may_modify, granted_by, revoked, updated) "
        "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (keyId, holder, rights.plays, rights.notBefore, rights.notAfter, rights.playWindow,
         rights.firstPlay, rights.forwardDepth, int(rights.mayCopy), int(rights.mayModify),
         rights.grantedBy, int(rights.revoked), now))


def consumePlayIn(cursor, keyId, holder, now):
    """
    Spend one play of C{holder} on C{keyId} if the rights allow it.
    """
    if ownerIn(cursor, keyId) is None:
        return Decision(False, UNKNOWN_KEY)
    rights = rightsIn(cursor, keyId, holder)
    if rights is None:
        return Decision(False, NO_RIGHTS)
    problem = rights.problemAt(now)
    if problem is not None:
        return Decision(False, problem, rights)
    if rights.plays <= 0:
        return Decision(False, EXHAUSTED, rights)
    rights = attrs.evolve(
        rights, plays=rights.plays - 1,
        firstPlay=now if rights.firstPlay is None else rights.firstPlay)
    putRightsIn(cursor, keyId, holder, rights, now)
    return Decision(True, "ok", rights)


def checkDelegation(grantor, requested, now):
    """
    Whether C{grantor}'s rights allow delegating C{requested} (a dict of
    L{Rights} fields; missing ones inherit the most the grantor may give).

    @return: C{(Decision, Rights to give or None)}.
    """
    problem = grantor.problemAt(now)
    if problem is not None:
        return Decision(False, problem, grantor), None
    if grantor.forwardDepth < 1:
        return Decision(False, NO_FORWARD, grantor), None
    end = grantor.expiresAt()
    window = grantor.playWindow if grantor.firstPlay is None else None
    wanted = {
        "plays": grantor.plays, "notBefore": grantor.notBefore, "notAfter": end,
        "playWindow": window, "forwardDepth": grantor.forwardDepth - 1,
        "mayCopy": grantor.mayCopy, "mayModify": grantor.mayModify,
    }
    wanted.update({name: value for name, value in requested.items() if value is not None})
    exceeds = (
        wanted["plays"] < 0 or wanted["plays"] > grantor.plays
        or wanted["forwardDepth"] < 0 or wanted["forwardDepth"] > grantor.forwardDepth - 1
        or (end is not None and (wanted["notAfter"] is None or wanted["notAfter"] > end))
        or (grantor.notBefore is not None
            and (wanted["notBefore"] is None or wanted["notBefore"] < grantor.notBefore))
        or (window is not None and (wanted["playWindow"] is None or wanted["playWindow"] > window))
        or (wanted["mayCopy"] and not grantor.mayCopy)
        or (wanted["mayModify"] and not grantor.mayModify)
    )
    if exceeds:
        return Decision(False, EXCEEDS, grantor), None
    return Decision(True, "ok", grantor), Rights(**wanted)


def delegateIn(cursor, keyId, grantor, holder, requested, now):
    """
    Give C{holder} rights delegated by C{grantor} (see L{checkDelegation}).
    """
    owner = ownerIn(cursor, keyId)
    if owner is None:
        return Decision(False, UNKNOWN_KEY)
    mine = rightsIn(cursor, keyId, grantor)
    if mine is None:
        return Decision(False, NO_RIGHTS)
    decision, given = checkDelegation(mine, requested, now)
    if given is None:
        return decision
    existing = rightsIn(cursor, keyId, holder)
    if existing is not None and existing.revoked:
        # The owner revoked them: a grantor cannot bring them back.
        return Decision(False, REVOKED, existing)
    if holder in (grantor, owner) or (existing is not None and existing.grantedBy != grantor):
        return Decision(False, ALREADY_HELD, existing)
    given = attrs.evolve(given, grantedBy=grantor)
    putRightsIn(cursor, keyId, holder, given, now)
    return Decision(True, "ok", given)


def revokeIn(cursor, keyId, actor, holder, now):
    """
    Revoke C{holder}'s rights (every holder's when C{None}) and those
    delegated from them, if C{actor} owns the key.

    @return: a L{Decision}; its reason lists nothing, the count is returned
        as the second element: C{(Decision, number of rows revoked)}.
    """
    owner = ownerIn(cursor, keyId)
    if owner is None:
        return Decision(False, UNKNOWN_KEY), 0
    if actor != owner:
        return Decision(False, NOT_OWNER), 0
    if holder is None:
        cursor.execute("UPDATE drm_rights SET revoked = 1, updated = ? WHERE key_id = ? AND revoked = 0",
                       (now, keyId))
        return Decision(True), cursor.rowcount
    if rightsIn(cursor, keyId, holder) is None:
        return Decision(False, NO_RIGHTS), 0
    count, pending, seen = 0, [holder], set()
    while pending:
        current = pending.pop()
        if current in seen:
            continue
        seen.add(current)
        cursor.execute("UPDATE drm_rights SET revoked = 1, updated = ? WHERE key_id = ? AND holder = ? "
                       "AND revoked = 0", (now, keyId, current))
        count += cursor.rowcount
        cursor.execute("SELECT holder FROM drm_rights WHERE key_id = ? AND granted_by = ?",
                       (keyId, current))
        pending.extend(row[0] for row in cursor.fetchall())
    return Decision(True), count


def narrowIn(cursor, keyId, actor, holder, plays=None, notAfter=None, forwardDepth=None, now=0.0):
    """
    Narrow C{holder}'s rights, as the owner: each given limit only lowers
    the current one.
    """
    owner = ownerIn(cursor, keyId)
    if owner is None:
        return Decision(False, UNKNOWN_KEY)
    if actor != owner:
        return Decision(False, NOT_OWNER)
    rights = rightsIn(cursor, keyId, holder)
    if rights is None:
        return Decision(False, NO_RIGHTS)
    changes = {}
    if plays is not None:
        changes["plays"] = max(0, min(plays, rights.plays))
    if notAfter is not None:
        changes["notAfter"] = notAfter if rights.notAfter is None else min(notAfter, rights.notAfter)
    if forwardDepth is not None:
        changes["forwardDepth"] = max(0, min(forwardDepth, rights.forwardDepth))
    rights = attrs.evolve(rights, **changes)
    putRightsIn(cursor, keyId, holder, rights, now)
    return Decision(True, "ok", rights)


def viewIn(cursor, keyId, actor):
    """
    The rights on C{keyId} that C{actor} may see: every holder's for the
    owner, its own for a holder.

    @return: C{(Decision, {holder: Rights})}.
    """
    owner = ownerIn(cursor, keyId)
    if owner is None:
        return Decision(False, UNKNOWN_KEY), {}
    if actor == owner:
        cursor.execute("SELECT holder, %s FROM drm_rights WHERE key_id = ? ORDER BY holder"
                       % (_COLUMNS,), (keyId,))
        return Decision(True), {row[0]: _row(row[1:]) for row in cursor.fetchall()}
    rights = rightsIn(cursor, keyId, actor)
    if rights is None:
        return Decision(False, NO_RIGHTS), {}
    return Decision(True, "ok", rights), {actor: rights}


class IRightsPolicy(Interface):
    """
    Usage rights per key and holder; every method fires with a L{Decision}
    (or a tuple starting with one).
    """

    def grant(keyId, holder, rights):
        """
        Set C{holder}'s rights as given by the owner (at deposit).
        """

    def consumePlay(keyId, holder):
        """
        Spend one play if allowed.
        """

    def delegate(keyId, grantor, holder, requested):
        """
        Delegate rights from C{grantor} to C{holder}.
        """

    def revoke(keyId, actor, holder=None):
        """
        Revoke, as the owner; fires with C{(Decision, count)}.
        """

    def narrow(keyId, actor, holder, plays=None, notAfter=None, forwardDepth=None):
        """
        Narrow a holder's rights, as the owner.
        """

    def view(keyId, actor):
        """
        Fire with C{(Decision, {holder: Rights})}.
        """


@implementer(IRightsPolicy)
class RightsPolicy:
    """
    L{IRightsPolicy} on the appliance database.

    @param clock: an C{IReactorTime}; all times are its C{seconds()}.
    """

    def __init__(self, database, clock):
        self._database = database
        self._clock = clock

    def grant(self, keyId, holder, rights):
        return self._database.runInteraction(
            lambda cursor: (putRightsIn(cursor, keyId, holder, rights, self._clock.seconds()),
                            Decision(True, "ok", rights))[1])

    def consumePlay(self, keyId, holder):
        return self._database.runInteraction(consumePlayIn, keyId, holder, self._clock.seconds())

    def delegate(self, keyId, grantor, holder, requested):
        return self._database.runInteraction(
            delegateIn, keyId, grantor, holder, dict(requested), self._clock.seconds())

    def revoke(self, keyId, actor, holder=None):
        return self._database.runInteraction(revokeIn, keyId, actor, holder, self._clock.seconds())

    def narrow(self, keyId, actor, holder, plays=None, notAfter=None, forwardDepth=None):
        return self._database.runInteraction(
            narrowIn, keyId, actor, holder, plays, notAfter, forwardDepth, self._clock.seconds())

    def view(self, keyId, actor):
        return self._database.runInteraction(viewIn, keyId, actor)
