"""
Routing policy: where a request for a user of our domains goes.

The proxy forwards; this module decides. For a user of ours the targets are
the user's registered contacts, ordered by q (RFC 3261 section 16.5). Per-user
call rules, kept in the database and managed with C{appliancectl rule}, change
that:

  - C{busy} URI: when every phone answers busy (486 or 600), call URI;
  - C{noanswer} URI: when nobody answers within the ring timeout, call URI;
  - C{unregistered} URI: when the user has no registered phone, call URI;
  - C{redirect}: answer 302 with the user's contacts instead of proxying
    (also for every user of the domains in C{[sip] redirect_domains}).

The voicemail service plugs in here: a rule's URI is typically the user's
voicemail deposit address.
"""

import attrs
from twisted.internet.defer import succeed

from appliance.sip.message import URI, ParseError
from appliance.sip.proxy import DEFAULT_PORTS, Target, groupsByQ, transportOf
from appliance.storage.users import splitUser

RULES = ("busy", "noanswer", "unregistered", "redirect")


class RuleError(ValueError):
    """
    A call rule that cannot be stored.
    """


def checkRule(rule, target):
    """
    Check a rule and its target URI; return the normalised target.

    @raise RuleError: with the reason.
    """
    if rule not in RULES:
        raise RuleError("unknown rule %r (known: %s)" % (rule, ", ".join(RULES)))
    if rule == "redirect":
        if target:
            raise RuleError("the redirect rule takes no target")
        return ""
    try:
        uri = URI.parse(target or "")
    except ParseError as e:
        raise RuleError("%r is not a URI: %s" % (target, e.reason))
    if not isinstance(uri, URI) or uri.scheme not in ("sip", "sips"):
        raise RuleError("%r is not a sip or sips URI" % (target,))
    return str(uri)


class CallRules:
    """
    The call rules in the database (the C{call_rules} table).
    """

    def __init__(self, database):
        self._database = database

    def set(self, aor, rule, target=""):
        """
        Set C{rule} of the user C{aor}; the L{Deferred} fails with
        L{KeyError} when there is no such user.

        @raise RuleError: for an unknown rule or a target that is not a URI.
        """
        target = checkRule(rule, target)
        username, domain = splitUser(aor)
        aor = "%s@%s" % (username, domain)

        def store(cursor):
            cursor.execute(
                "SELECT 1 FROM users WHERE username = ? AND domain = ?", (username, domain)
            )
            if cursor.fetchone() is None:
                raise KeyError("no user %s" % (aor,))
            cursor.execute(
                "INSERT INTO call_rules (aor, rule, target) VALUES (?, ?, ?) "
                "ON CONFLICT (aor, rule) DO UPDATE SET target = excluded.target",
                (aor, rule, target),
            )

        return self._database.runInteraction(store)

    def remove(self, aor, rule):
        def remove(cursor):
            cursor.execute("DELETE FROM call_rules WHERE aor = ? AND rule = ?", (aor, rule))
            if cursor.rowcount == 0:
                raise KeyError("%s has no %s rule" % (aor, rule))

        return self._database.runInteraction(remove)

    def list(self, aor=None):
        def list_(cursor):
            if aor is None:
                cursor.execute("SELECT aor, rule, target FROM call_rules ORDER BY aor, rule")
            else:
                cursor.execute(
                    "SELECT aor, rule, target FROM call_rules WHERE aor = ? ORDER BY rule",
                    (aor,),
                )
            return cursor.fetchall()

        return self._database.runInteraction(list_)

    def lookup(self, aor):
        """
        Return a L{Deferred} firing with C{(exists, rules)}: whether C{aor}
        is a user, and its rules as a C{dict}; one database round trip.
        """
        name, _, domain = aor.rpartition("@")

        def lookup(cursor):
            cursor.execute(
                "SELECT 1 FROM users WHERE username = ? AND domain = ?", (name, domain)
            )
            exists = cursor.fetchone() is not None
            cursor.execute("SELECT rule, target FROM call_rules WHERE aor = ?", (aor,))
            return exists, dict(cursor.fetchall())

        return self._database.runInteraction(lookup)


@attrs.frozen
class Decision:
    """
    What to do with a request for a local user.

    @ivar status: a final status to answer with (C{None} to proxy).
    @ivar groups: the target groups to proxy to, or the contacts for a 302.
    @ivar onFailure: a callable C{(context, best) -> targets or None} the
        proxy calls when every target failed.
    """

    status: int | None = None
    reason: str | None = None
    groups: tuple = ()
    contacts: tuple = ()
    onFailure: object = None


def flowOf(binding, uri):
    """
    The flow to reach a binding's contact C{uri} over, or C{None} to resolve
    the contact: the connection a phone registered over (TCP, TLS: the phone
    keeps it open, RFC 5626), or the address a UDP registration came from
    when it differs from the contact's (a phone behind NAT), unless the
    contact asks for another transport.
    """
    if binding.path or binding.source is None:
        return None
    transport, host, port = binding.source
    if transport.upper() in ("TCP", "TLS"):
        return binding.source
    if transportOf(uri) != "UDP":
        return None
    contactPort = uri.port or DEFAULT_PORTS["UDP"]
    if (uri.host.strip("[]"), contactPort) != (host, port):
        return binding.source
    return None


def _targetsOf(bindings):
    targets = []
    for binding in bindings:
        try:
            uri = URI.parse(binding.contact)
        except ParseError:
            continue
        targets.append((binding.q, Target(
            uri=uri, path=tuple(binding.path), flow=flowOf(binding, uri))))
    return targets


def _ruleTarget(target):
    return Target(uri=URI.parse(target))


class ServiceRoute:
    """
    A user part served by one of the appliance's own user agents rather
    than by a user: C{echo}, or every C{conf-*} room.

    @param pattern: the user part, or a prefix ending in C{*}.
    @param locate: C{locate()} returning the user agent's C{(transport,
        host, port)}, asked at each request (its port may be known only
        once it listens).
    """

    def __init__(self, pattern, locate):
        self.pattern = pattern
        self._prefix = pattern[:-1] if pattern.endswith("*") else None
        self._locate = locate

    def matches(self, user):
        if self._prefix is not None:
            return user.startswith(self._prefix) and len(user) > len(self._prefix)
        return user == self.pattern

    def target(self, user):
        transport, host, port = self._locate()
        params = () if transport.lower() == "udp" else (("transport", transport.lower()),)
        host = "[%s]" % (host,) if ":" in host else host
        return Target(uri=URI("sip", user=user, host=host, port=port, params=params))


class Router:
    """
    Decides where requests for users of our domains go.

    @param location: the L{appliance.sip.location.LocationService}.
    @param rules: L{CallRules}.
    @param redirectDomains: domains answered in redirect mode.
    @param serviceRoutes: L{ServiceRoute}s, checked before the users.
    """

    def __init__(self, location, rules, redirectDomains=(), serviceRoutes=()):
        self._location = location
        self._rules = rules
        self._redirectDomains = frozenset(redirectDomains)
        self.serviceRoutes = list(serviceRoutes)

    def route(self, request, aor):
        """
        Return a L{Deferred} firing with the L{Decision} for a request to
        C{aor} (RFC 3261 section 16.5).
        """
        user = aor.rpartition("@")[0]
        for service in self.serviceRoutes:
            if service.matches(user):
                return succeed(Decision(groups=([service.target(user)],)))
        d = self._rules.lookup(aor)
        d.addCallback(self._decide, request, aor)
        return d

    def _decide(self, found, request, aor):
        exists, rules = found
        if not exists:
            return Decision(status=404)
        bindings = self._location.lookup(aor)
        domain = aor.rpartition("@")[2]
        if not bindings:
            if "unregistered" in rules:
                return Decision(groups=([_ruleTarget(rules["unregistered"])],))
            return Decision(status=480, reason="Temporarily Unavailable")
        if "redirect" in rules or domain in self._redirectDomains:
            return Decision(status=302, contacts=tuple(bindings))
        return Decision(
            groups=tuple(groupsByQ(_targetsOf(bindings))),
            onFailure=self._failureHandler(rules),
        )

    def _failureHandler(self, rules):
        busy, noAnswer = rules.get("busy"), rules.get("noanswer")
        if busy is None and noAnswer is None:
            return None

        def onFailure(context, best):
            if context.noAnswer or best.code in (408, 480):
                target = noAnswer
            elif best.code in (486, 600):
                target = busy
            else:
                target = None
            return [_ruleTarget(target)] if target else None

        return onFailure
