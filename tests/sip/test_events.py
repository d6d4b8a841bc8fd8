"""
Tests for L{appliance.sip.events}: the SUBSCRIBE / NOTIFY framework of RFC
6665 on real transaction layers and user agents over fake transports
driven by a L{task.Clock}, with message-waiting indication (RFC 3842) as
the example package.
"""

from twisted.internet import task
from twisted.internet.defer import succeed
from twisted.trial.unittest import SynchronousTestCase
from zope.interface import implementer
from zope.interface.verify import verifyObject

from appliance.interfaces import ITransactionUser
from appliance.sip.events import (
    ACTIVE,
    NOTIFY_WAIT,
    TERMINATED,
    Event,
    EventServer,
    IEventPackage,
    SubscriptionState,
)
from appliance.sip.subscriber import SubscriptionFailed, subscribe
from appliance.sip.message import ParseError, Request, Response, parseMessage
from appliance.sip.proxy import hostTargets, transportOf
from appliance.sip.testing import FakeTransport
from appliance.sip.transaction import TimerSettings, TransactionLayer
from appliance.sip.useragent import UserAgent
from appliance.stats import Statistics

NOTIFIER = ("192.0.2.1", 5060)
SUBSCRIBER = ("198.51.100.7", 5060)
NOTIFIER_CONTACT = "<sip:voicemail@192.0.2.1:5060>"
SUBSCRIBER_CONTACT = "<sip:alice@198.51.100.7:5060>"
MAILBOX = "sip:alice@192.0.2.1"
PROXY = "<sip:192.0.2.50;lr>"
CALL_ID = "7b3f1c@198.51.100.7"
FROM_TAG = "a73kszlfl"
SUMMARY = "application/simple-message-summary"
WAITING = b"Messages-Waiting: yes\r\nVoice-Message: 2/8\r\n"


def messageSummary(new, old):
    """
    An application/simple-message-summary body (RFC 3842 section 5).
    """
    return b"Messages-Waiting: %s\r\nVoice-Message: %d/%d\r\n" % (b"yes" if new else b"no", new, old)


@implementer(IEventPackage)
class MessageSummary:
    """
    The example package: message-waiting indication (RFC 3842) for the
    mailboxes named by the user part of the Request-URI; C{alice} has 2 new
    and 8 old messages, C{bob} none, nobody else has a mailbox (404).
    """

    contentType = "application/simple-message-summary"

    def __init__(self):
        self.counts = {"alice": (2, 8), "bob": (0, 0)}

    def accepts(self, request):
        return None if request.uri.user in self.counts else 404

    def state(self, subscription):
        return messageSummary(*self.counts[subscription.uri.user])


@implementer(ITransactionUser)
class Endpoint:
    """
    A L{UserAgent} over a L{TransactionLayer} and a UDP L{FakeTransport},
    with an L{EventServer} serving C{message-summary} when C{packages} is
    not C{None}.
    """

    def __init__(self, clock, address, contact, packages=None, **serverOptions):
        self.clock = clock
        self.address = address
        self.udp = FakeTransport(address=address)
        self.delivered = 0
        self.agent = UserAgent(clock, {"UDP": self.udp}, self.resolve, contact,
                               lambda call: call.reject(603), Statistics("test"), TimerSettings())
        self.agent.events = self.server = None
        if packages is not None:
            self.server = self.agent.events = EventServer(self.agent, clock, packages,
                                                          **serverOptions)
        self.layer = TransactionLayer(clock, self.agent, TimerSettings())
        self.agent.transactions = self.layer

    def resolve(self, uri):
        """
        Resolve an address URI without DNS.
        """
        return succeed(hostTargets(uri, transportOf(uri)))

    def receive(self, message, source):
        """
        Hand C{message} to the transaction layer as a transport would.
        """
        if isinstance(message, Request):
            self.layer.receiveRequest(message, self.udp, source)
        else:
            self.layer.receiveResponse(message, self.udp, source)

    def sent(self, kind=None, method=None):
        """
        The C{(message, destination)} pairs sent, of class C{kind} (and
        C{method} for requests).
        """
        return [(m, address) for m, address in self.udp.sent
                if (kind is None or isinstance(m, kind))
                and method in (None, getattr(m, "method", None))]

    def requests(self, method=None):
        return [m for m, _ in self.sent(Request, method)]

    def responses(self):
        return [m for m, _ in self.sent(Response)]


class Network:
    """
    Endpoints that reach each other: every message sent is written to
    bytes, parsed again and handed to the endpoint at its destination,
    with the top Via's sent-by filled in as a transport would.

    @ivar held: the C{(sender, message, destination)} a C{hold} predicate
        kept back from L{pump}, for L{release}.
    """

    def __init__(self, *endpoints):
        self.byAddress = {endpoint.address: endpoint for endpoint in endpoints}
        self.held = []

    def pump(self, hold=lambda message: False):
        """
        Deliver what was sent until nothing more is, keeping back the
        messages C{hold} is true for.
        """
        progress = True
        while progress:
            progress = False
            for endpoint in self.byAddress.values():
                while endpoint.delivered < len(endpoint.udp.sent):
                    message, destination = endpoint.udp.sent[endpoint.delivered]
                    endpoint.delivered += 1
                    progress = True
                    if hold(message):
                        self.held.append((endpoint, message, destination))
                    else:
                        self._deliver(endpoint, message, destination)

    def release(self):
        """
        Deliver the messages held back, then pump.
        """
        held, self.held = self.held, []
        for sender, message, destination in held:
            self._deliver(sender, message, destination)
        self.pump()

    def _deliver(self, sender, message, destination):
        data = message.toBytes()
        if isinstance(message, Request):
            data = data.replace(b"SIP/2.0/UDP 0.0.0.0;", b"SIP/2.0/UDP %s:%d;" % (
                sender.address[0].encode("ascii"), sender.address[1]), 1)
        self.byAddress[destination].receive(parseMessage(data), sender.address)


def subscribeRequest(expires=3600, event="message-summary", uri=MAILBOX, toTag=None, cseq=1,
                     branch="z9hG4bKsub1", contact=SUBSCRIBER_CONTACT, headers=(), recordRoutes=()):
    """
    Parse a SUBSCRIBE from the subscriber with the given fields; C{None}
    leaves a header out.
    """
    lines = [
        "SUBSCRIBE %s SIP/2.0" % (uri,),
        "Via: SIP/2.0/UDP 198.51.100.7:5060;branch=" + branch,
        "Max-Forwards: 70",
        "From: <sip:alice@example.test>;tag=" + FROM_TAG,
        "To: <%s>%s" % (uri, "" if toTag is None else ";tag=" + toTag),
        "Call-ID: " + CALL_ID,
        "CSeq: %d SUBSCRIBE" % (cseq,),
    ]
    if contact is not None:
        lines.append("Contact: " + contact)
    if event is not None:
        lines.append("Event: " + event)
    if expires is not None:
        lines.append("Expires: %s" % (expires,))
    lines.extend("Record-Route: " + value for value in recordRoutes)
    lines.extend("%s: %s" % header for header in headers)
    return parseMessage(("\r\n".join(lines) + "\r\nContent-Length: 0\r\n\r\n").encode("ascii"))


def answer(request, code=200, headers=(), toTag=None):
    """
    A response to C{request} copying its Via, From, To, Call-ID and CSeq.
    """
    response = Response(code, "Whatever")
    for name in ("Via", "From", "To", "Call-ID", "CSeq"):
        for value in request.headers.getAll(name):
            if name == "To" and toTag is not None:
                value += ";tag=" + toTag
            response.headers.add(name, value)
    for name, value in headers:
        response.headers.add(name, value)
    return response


class Case(SynchronousTestCase):
    """
    A clock, and the check that nothing is left running.
    """

    def setUp(self):
        self.clock = task.Clock()
        self.package = MessageSummary()
        self.endpoints = []

    def endpoint(self, address, contact, packages=None, **options):
        endpoint = Endpoint(self.clock, address, contact, packages, **options)
        self.endpoints.append(endpoint)
        return endpoint

    def notifier(self, **options):
        return self.endpoint(NOTIFIER, NOTIFIER_CONTACT, {"message-summary": self.package}, **options)

    def finish(self):
        """
        Let every transaction run out, and check that no timer is left.
        """
        for _ in range(200):
            self.clock.advance(1)
        for endpoint in self.endpoints:
            self.assertEqual(endpoint.layer.activeTransactions, 0)
            self.assertEqual(endpoint.agent._calls, {})
        self.assertEqual(self.clock.getDelayedCalls(), [])


class EventHeaderTests(SynchronousTestCase):
    """
    L{Event}: the Event header (RFC 6665 section 8.4).
    """

    def test_package(self):
        """
        A bare package name parses without an id and formats back as it was.
        """
        event = Event.parse("message-summary")
        self.assertEqual((event.package, event.id, event.params), ("message-summary", None, ()))
        self.assertEqual(str(event), "message-summary")

    def test_idAndParams(self):
        """
        The id parameter is kept apart from the others, and formats first.
        """
        event = Event.parse(" dialog ; foo ; id = 3ab9 ")
        self.assertEqual((event.package, event.id, event.params), ("dialog", "3ab9", (("foo", None),)))
        self.assertEqual(str(event), "dialog;id=3ab9;foo")

    def test_template(self):
        """
        An event type with a template (presence.winfo) is one package name.
        """
        self.assertEqual(Event.parse("presence.winfo").package, "presence.winfo")

    def test_malformed(self):
        """
        Malformed Event values raise L{ParseError} with status 400.
        """
        for text in ("", ";id=1", "message summary", "a..b", "dialog;id", 'dialog;id="x"',
                     "dialog;id=1;id=2", "dialog;=x", "dia/log"):
            with self.assertRaises(ParseError, msg=text) as caught:
                Event.parse(text)
            self.assertEqual(caught.exception.status, 400)

    def test_matches(self):
        """
        Two Events name the same subscription when type and id are equal,
        byte by byte (RFC 6665 section 8.2.1).
        """
        self.assertTrue(Event.parse("dialog;id=1").matches(Event.parse("dialog;id=1;x=y")))
        self.assertFalse(Event.parse("dialog;id=1").matches(Event.parse("dialog;id=2")))
        self.assertFalse(Event.parse("dialog;id=1").matches(Event.parse("dialog")))
        self.assertFalse(Event.parse("dialog").matches(Event.parse("presence")))


class SubscriptionStateHeaderTests(SynchronousTestCase):
    """
    L{SubscriptionState}: the Subscription-State header (RFC 6665 section 8.4).
    """

    def test_active(self):
        """
        An active state carries its expires parameter.
        """
        state = SubscriptionState.parse("active;expires=3600")
        self.assertEqual((state.state, state.expires, state.reason), ("active", 3600, None))
        self.assertEqual(str(state), "active;expires=3600")

    def test_terminated(self):
        """
        A terminated state carries its reason and retry-after.
        """
        state = SubscriptionState.parse("terminated;reason=probation;retry-after=30")
        self.assertEqual((state.state, state.reason, state.retryAfter), ("terminated", "probation", 30))
        self.assertEqual(str(state), "terminated;reason=probation;retry-after=30")

    def test_caseAndSpacing(self):
        """
        State and reason are case-insensitive, spaces around C{;} and C{=}
        are allowed, and unknown parameters are kept.
        """
        state = SubscriptionState.parse(" Terminated ; Reason = Timeout ; foo=bar")
        self.assertEqual((state.state, state.reason, state.params),
                         ("terminated", "timeout", (("foo", "bar"),)))

    def test_extensionState(self):
        """
        An extension substate is a token kept as it is (lower-cased).
        """
        self.assertEqual(SubscriptionState.parse("waiting").state, "waiting")

    def test_hugeExpires(self):
        """
        An expires beyond 2**32-1 counts as 2**32-1.
        """
        self.assertEqual(SubscriptionState.parse("active;expires=123456789012345").expires, 2 ** 32 - 1)

    def test_malformed(self):
        """
        Malformed Subscription-State values raise L{ParseError} with status 400.
        """
        for text in ("", ";expires=1", "active;expires=soon", "active;expires", "active;expires=-1",
                     "active;expires=1;expires=2", 'terminated;reason="x"', "terminated;reason",
                     "act ive", "active;retry-after=1.5"):
            with self.assertRaises(ParseError, msg=text) as caught:
                SubscriptionState.parse(text)
            self.assertEqual(caught.exception.status, 400)


class SeamTests(SynchronousTestCase):
    """
    The example package and the stand-in dispatch of these tests.
    """

    def test_package(self):
        """
        The example package provides L{IEventPackage}, refuses unknown
        mailboxes with 404 and accepts known ones.
        """
        package = MessageSummary()
        self.assertTrue(verifyObject(IEventPackage, package))
        self.assertEqual(package.contentType, SUMMARY)
        self.assertIsNone(package.accepts(subscribeRequest()))
        self.assertEqual(package.accepts(subscribeRequest(uri="sip:carol@192.0.2.1")), 404)



class NotifierTests(Case):
    """
    L{EventServer} answering SUBSCRIBE requests (RFC 6665 section 4.2.1).
    """

    def setUp(self):
        Case.setUp(self)
        self.n = self.notifier()
        self.ended = []

    def subscribe(self, **kwargs):
        """
        Receive a SUBSCRIBE and return the response and the NOTIFY it caused.
        """
        before = len(self.n.udp.sent)
        self.n.receive(subscribeRequest(**kwargs), SUBSCRIBER)
        sent = [m for m, _ in self.n.udp.sent[before:]]
        responses = [m for m in sent if isinstance(m, Response)]
        notifies = [m for m in sent if isinstance(m, Request)]
        self.assertEqual(len(responses), 1)
        return responses[0], (notifies[0] if notifies else None)

    def subscribed(self, **kwargs):
        """
        Subscribe, answer the first NOTIFY and return the subscription.
        """
        ok, notify = self.subscribe(**kwargs)
        self.n.receive(answer(notify), SUBSCRIBER)
        [subscription] = [s for s in self.n.server.subscriptions if s.dialog.callId == CALL_ID]
        subscription.onEnded = self.ended.append
        return subscription

    def inDialog(self, subscription, expires, cseq, branch, event="message-summary"):
        """
        Receive a SUBSCRIBE inside the subscription's dialog and return the
        response and the NOTIFY it caused.
        """
        return self.subscribe(expires=expires, cseq=cseq, branch=branch, event=event,
                              toTag=subscription.dialog.localTag)

    def test_subscribe(self):
        """
        An accepted SUBSCRIBE gets 200 with Expires, our Contact and a To
        tag, and is followed at once by a NOTIFY in the new dialog with the
        Event, the Subscription-State and the package's body (RFC 6665
        sections 4.2.1.1 and 4.2.1.2).
        """
        ok, notify = self.subscribe()
        self.assertEqual(ok.code, 200)
        self.assertEqual(ok.headers.get("Expires"), "3600")
        self.assertEqual(ok.headers.get("Contact"), NOTIFIER_CONTACT)
        tag = ok.toAddress().tag
        self.assertIsNotNone(tag)
        self.assertEqual(notify.method, "NOTIFY")
        self.assertEqual(str(notify.uri), "sip:alice@198.51.100.7:5060")
        self.assertEqual(notify.fromAddress().tag, tag)
        self.assertEqual(notify.toAddress().tag, FROM_TAG)
        self.assertEqual(notify.callId, CALL_ID)
        self.assertEqual(notify.headers.get("Event"), "message-summary")
        self.assertEqual(notify.headers.get("Subscription-State"), "active;expires=3600")
        self.assertEqual(notify.headers.get("Content-Type"), SUMMARY)
        self.assertEqual(notify.headers.get("Contact"), NOTIFIER_CONTACT)
        self.assertEqual(notify.body, WAITING)
        [subscription] = self.n.server.subscriptions
        self.assertEqual((subscription.state, subscription.package), (ACTIVE, "message-summary"))
        self.assertEqual(str(subscription.uri), MAILBOX)
        self.assertIs(self.n.agent._calls[(CALL_ID, tag, FROM_TAG)], subscription)
        self.n.receive(answer(notify), SUBSCRIBER)
        self.n.server.stop()
        self.n.receive(answer(self.n.requests("NOTIFY")[-1]), SUBSCRIBER)
        self.finish()

    def test_recordRoute(self):
        """
        The 200 carries the SUBSCRIBE's Record-Route, and the NOTIFY goes
        through it (RFC 3261 section 12.1.1).
        """
        ok, notify = self.subscribe(recordRoutes=[PROXY])
        self.assertEqual(ok.headers.getAll("Record-Route"), [PROXY])
        self.assertEqual(notify.headers.getAll("Route"), [PROXY])
        self.assertEqual(self.n.sent(Request, "NOTIFY")[0][1], ("192.0.2.50", 5060))
        self.n.receive(answer(notify), SUBSCRIBER)
        self.n.server.stop()
        self.n.receive(answer(self.n.requests("NOTIFY")[-1]), SUBSCRIBER)
        self.finish()

    def test_unknownPackage(self):
        """
        A package we do not serve gets 489 listing ours in Allow-Events.
        """
        ok, notify = self.subscribe(event="presence")
        self.assertEqual(ok.code, 489)
        self.assertEqual(ok.headers.getAll("Allow-Events"), ["message-summary"])
        self.assertIsNone(notify)
        self.assertEqual(self.n.server.subscriptions, [])
        self.finish()

    def test_badEvent(self):
        """
        A SUBSCRIBE without an Event, or with a malformed one, gets 400.
        """
        for index, event in enumerate([None, "message summary", "message-summary;id"]):
            ok, notify = self.subscribe(event=event, branch="z9hG4bKbad%d" % (index,))
            self.assertEqual(ok.code, 400, event)
        self.assertEqual(self.n.requests(), [])
        self.finish()

    def test_badExpires(self):
        """
        A malformed Expires gets 400.
        """
        ok, notify = self.subscribe(expires="soon")
        self.assertEqual(ok.code, 400)
        self.finish()

    def test_intervalTooBrief(self):
        """
        A duration below minExpires gets 423 with Min-Expires (RFC 6665
        section 4.2.1.1).
        """
        ok, notify = self.subscribe(expires=30)
        self.assertEqual(ok.code, 423)
        self.assertEqual(ok.headers.get("Min-Expires"), "60")
        self.assertIsNone(notify)
        self.finish()

    def test_capped(self):
        """
        A duration above maxExpires is granted maxExpires, in the 200 and
        the NOTIFY.
        """
        ok, notify = self.subscribe(expires=86400)
        self.assertEqual(ok.headers.get("Expires"), "3600")
        self.assertEqual(notify.headers.get("Subscription-State"), "active;expires=3600")
        self.n.receive(answer(notify), SUBSCRIBER)
        self.n.server.stop()
        self.n.receive(answer(self.n.requests("NOTIFY")[-1]), SUBSCRIBER)
        self.finish()

    def test_defaultExpires(self):
        """
        Without Expires the package's default duration applies.
        """
        self.package.defaultExpires = 600
        ok, notify = self.subscribe(expires=None)
        self.assertEqual(ok.headers.get("Expires"), "600")
        self.n.receive(answer(notify), SUBSCRIBER)
        self.n.server.stop()
        self.n.receive(answer(self.n.requests("NOTIFY")[-1]), SUBSCRIBER)
        self.finish()

    def test_refusedByPackage(self):
        """
        A SUBSCRIBE the package refuses gets its status and no NOTIFY.
        """
        ok, notify = self.subscribe(uri="sip:carol@192.0.2.1")
        self.assertEqual(ok.code, 404)
        self.assertIsNone(notify)
        self.assertEqual(self.n.server.subscriptions, [])
        self.finish()

    def test_packageFails(self):
        """
        A package whose C{accepts} raises refuses with 500 and logs the error.
        """
        def broken(request):
            raise RuntimeError("bug")

        self.package.accepts = broken
        ok, notify = self.subscribe()
        self.assertEqual(ok.code, 500)
        self.assertEqual(len(self.flushLoggedErrors(RuntimeError)), 1)
        self.finish()

    def test_noContact(self):
        """
        A SUBSCRIBE without a Contact cannot create a dialog: 400.
        """
        ok, notify = self.subscribe(contact=None)
        self.assertEqual(ok.code, 400)
        self.finish()

    def test_requireUnsupported(self):
        """
        A SUBSCRIBE requiring an extension we lack gets 420.
        """
        ok, notify = self.subscribe(headers=[("Require", "foo")])
        self.assertEqual(ok.code, 420)
        self.assertEqual(ok.headers.getAll("Unsupported"), ["foo"])
        self.finish()

    def test_fetch(self):
        """
        An Expires of 0 fetches the state: 200 with Expires 0 and one
        terminated NOTIFY with the body, and no subscription is kept (RFC
        6665 section 4.4.3).
        """
        ok, notify = self.subscribe(expires=0)
        self.assertEqual((ok.code, ok.headers.get("Expires")), (200, "0"))
        self.assertEqual(notify.headers.get("Subscription-State"), "terminated;reason=timeout")
        self.assertEqual(notify.body, WAITING)
        self.assertEqual(self.n.server.subscriptions, [])
        self.n.receive(answer(notify), SUBSCRIBER)
        self.finish()

    def test_refresh(self):
        """
        A SUBSCRIBE in the dialog refreshes the subscription: 200 with the
        new Expires, a NOTIFY with it, and the expiry moves (RFC 6665
        section 4.2.1.4).
        """
        subscription = self.subscribed()
        self.clock.advance(3000)
        ok, notify = self.inDialog(subscription, 1200, 2, "z9hG4bKsub2")
        self.assertEqual((ok.code, ok.headers.get("Expires")), (200, "1200"))
        self.assertEqual(ok.toAddress().tag, subscription.dialog.localTag)
        self.assertEqual(notify.headers.get("Subscription-State"), "active;expires=1200")
        self.assertEqual(notify.cseq()[0], 2)
        self.n.receive(answer(notify), SUBSCRIBER)
        self.clock.advance(1199)
        self.assertEqual(subscription.state, ACTIVE)
        self.assertEqual(subscription.expires, 1)
        self.n.server.stop()
        self.n.receive(answer(self.n.requests("NOTIFY")[-1]), SUBSCRIBER)
        self.finish()

    def test_refreshTooBrief(self):
        """
        A refresh below minExpires gets 423 and the subscription stays as
        it was.
        """
        subscription = self.subscribed()
        ok, notify = self.inDialog(subscription, 10, 2, "z9hG4bKsub2")
        self.assertEqual(ok.code, 423)
        self.assertIsNone(notify)
        self.assertEqual(subscription.state, ACTIVE)
        self.n.server.stop()
        self.n.receive(answer(self.n.requests("NOTIFY")[-1]), SUBSCRIBER)
        self.finish()

    def test_refreshOtherEvent(self):
        """
        A SUBSCRIBE in the dialog for another event or id is no
        subscription of ours: 481.
        """
        subscription = self.subscribed()
        ok, notify = self.inDialog(subscription, 600, 2, "z9hG4bKsub2", event="message-summary;id=2")
        self.assertEqual(ok.code, 481)
        self.assertEqual(subscription.state, ACTIVE)
        self.n.server.stop()
        self.n.receive(answer(self.n.requests("NOTIFY")[-1]), SUBSCRIBER)
        self.finish()

    def test_strayAck(self):
        """
        An ACK that carries the subscription's dialog ID is ignored.
        """
        subscription = self.subscribed()
        ack = subscribeRequest(toTag=subscription.dialog.localTag, branch="z9hG4bKack")
        ack.method = "ACK"
        ack.headers.set("CSeq", "1 ACK")
        self.n.receive(ack, SUBSCRIBER)
        self.assertEqual(subscription.state, ACTIVE)
        self.assertEqual(len(self.n.udp.sent), 2)
        self.n.server.stop()
        self.n.receive(answer(self.n.requests("NOTIFY")[-1]), SUBSCRIBER)
        self.finish()

    def test_otherMethodInDialog(self):
        """
        A request other than SUBSCRIBE in the subscription's dialog gets 405.
        """
        subscription = self.subscribed()
        request = subscribeRequest(toTag=subscription.dialog.localTag, cseq=2, branch="z9hG4bKi")
        request.method = "INFO"
        request.headers.set("CSeq", "2 INFO")
        self.n.receive(request, SUBSCRIBER)
        self.assertEqual(self.n.responses()[-1].code, 405)
        self.n.server.stop()
        self.n.receive(answer(self.n.requests("NOTIFY")[-1]), SUBSCRIBER)
        self.finish()

    def test_unsubscribe(self):
        """
        A SUBSCRIBE with Expires 0 in the dialog gets 200, a terminated
        NOTIFY follows, and the subscription is forgotten: the next
        SUBSCRIBE in the dialog gets 481.
        """
        subscription = self.subscribed()
        ok, notify = self.inDialog(subscription, 0, 2, "z9hG4bKsub2")
        self.assertEqual((ok.code, ok.headers.get("Expires")), (200, "0"))
        self.assertEqual(notify.headers.get("Subscription-State"), "terminated;reason=timeout")
        self.assertEqual(notify.body, WAITING)
        self.assertEqual((subscription.state, self.ended), (TERMINATED, ["timeout"]))
        self.assertEqual(self.n.server.subscriptions, [])
        self.n.receive(answer(notify), SUBSCRIBER)
        ok, notify = self.inDialog(subscription, 600, 3, "z9hG4bKsub3")
        self.assertEqual(ok.code, 481)
        self.finish()

    def test_expiry(self):
        """
        A subscription not refreshed in time ends with a NOTIFY
        C{terminated;reason=timeout} and is forgotten, leaving no timer.
        """
        subscription = self.subscribed(expires=600)
        self.clock.advance(599)
        self.assertEqual(len(self.n.requests("NOTIFY")), 1)
        self.clock.advance(1)
        notify = self.n.requests("NOTIFY")[-1]
        self.assertEqual(notify.headers.get("Subscription-State"), "terminated;reason=timeout")
        self.assertEqual((subscription.state, self.ended), (TERMINATED, ["timeout"]))
        self.assertEqual(self.n.server.subscriptions, [])
        self.n.receive(answer(notify), SUBSCRIBER)
        self.finish()

    def test_notifyAll(self):
        """
        L{EventServer.notifyAll} sends the new state to the subscriptions
        of a package that C{match} selects.
        """
        alice = self.subscribed()
        self.subscribe(uri="sip:bob@192.0.2.1", branch="z9hG4bKbob")
        bobNotify = self.n.requests("NOTIFY")[-1]
        self.n.receive(answer(bobNotify), SUBSCRIBER)
        self.package.counts["alice"] = (3, 8)
        count = self.n.server.notifyAll("message-summary", lambda s: s.uri.user == "alice")
        self.assertEqual(count, 1)
        notify = self.n.requests("NOTIFY")[-1]
        self.assertEqual(notify.toAddress().tag, FROM_TAG)
        self.assertEqual(notify.fromAddress().tag, alice.dialog.localTag)
        self.assertEqual(notify.body, b"Messages-Waiting: yes\r\nVoice-Message: 3/8\r\n")
        self.assertEqual(notify.cseq()[0], 2)
        self.n.receive(answer(notify), SUBSCRIBER)
        self.assertEqual(self.n.server.notifyAll("dialog"), 0)
        self.assertEqual(self.n.server.notifyAll("message-summary"), 2)
        for notify in self.n.requests("NOTIFY")[-2:]:
            self.n.receive(answer(notify), SUBSCRIBER)
        self.n.server.stop()
        for notify in self.n.requests("NOTIFY")[-2:]:
            self.n.receive(answer(notify), SUBSCRIBER)
        self.finish()

    def test_oneNotifyAtATime(self):
        """
        State changes while a NOTIFY is unanswered wait for its answer and
        go out together in one NOTIFY with the latest state.
        """
        ok, first = self.subscribe()
        [subscription] = self.n.server.subscriptions
        self.package.counts["alice"] = (3, 8)
        subscription.notify()
        self.package.counts["alice"] = (4, 8)
        subscription.notify()
        self.assertEqual(len(self.n.requests("NOTIFY")), 1)
        self.n.receive(answer(first), SUBSCRIBER)
        [first, second] = self.n.requests("NOTIFY")
        self.assertEqual(second.body, b"Messages-Waiting: yes\r\nVoice-Message: 4/8\r\n")
        self.assertEqual(second.cseq()[0], 2)
        self.n.receive(answer(second), SUBSCRIBER)
        self.n.server.stop()
        self.n.receive(answer(self.n.requests("NOTIFY")[-1]), SUBSCRIBER)
        self.finish()

    def test_notify481Ends(self):
        """
        A NOTIFY answered 481 ends the subscription without another NOTIFY
        (RFC 6665 section 4.2.2).
        """
        subscription = self.subscribed()
        subscription.notify()
        self.n.receive(answer(self.n.requests("NOTIFY")[-1], 481), SUBSCRIBER)
        self.assertEqual((subscription.state, self.ended), (TERMINATED, ["failed"]))
        self.assertEqual(self.n.server.subscriptions, [])
        self.assertEqual(len(self.n.requests("NOTIFY")), 2)
        self.finish()

    def test_notifyTimeoutEnds(self):
        """
        A NOTIFY that is never answered (timer F, a local 408) ends the
        subscription.
        """
        ok, notify = self.subscribe()
        [subscription] = self.n.server.subscriptions
        self.clock.advance(64 * 0.5)
        self.assertEqual(subscription.state, TERMINATED)
        self.assertEqual(self.n.server.subscriptions, [])
        self.finish()

    def test_notifyErrorWithRetryAfter(self):
        """
        An error answer with Retry-After does not end the subscription.
        """
        subscription = self.subscribed()
        subscription.notify()
        self.n.receive(answer(self.n.requests("NOTIFY")[-1], 503, [("Retry-After", "30")]), SUBSCRIBER)
        self.assertEqual(subscription.state, ACTIVE)
        self.n.server.stop()
        self.n.receive(answer(self.n.requests("NOTIFY")[-1]), SUBSCRIBER)
        self.finish()

    def test_terminate(self):
        """
        L{ServerSubscription.terminate} sends the reason and retry-after it is given.
        """
        subscription = self.subscribed()
        subscription.terminate("probation", retryAfter=120)
        notify = self.n.requests("NOTIFY")[-1]
        self.assertEqual(notify.headers.get("Subscription-State"),
                         "terminated;reason=probation;retry-after=120")
        self.assertEqual(self.ended, ["probation"])
        subscription.terminate()
        subscription.notify()
        self.assertEqual(len(self.n.requests("NOTIFY")), 2)
        self.n.receive(answer(notify), SUBSCRIBER)
        self.finish()

    def test_stop(self):
        """
        L{EventServer.stop} terminates every subscription with
        C{reason=deactivated}.
        """
        self.subscribed()
        self.subscribe(uri="sip:bob@192.0.2.1", branch="z9hG4bKbob")
        self.n.receive(answer(self.n.requests("NOTIFY")[-1]), SUBSCRIBER)
        self.n.server.stop()
        notifies = self.n.requests("NOTIFY")[-2:]
        self.assertEqual([n.headers.get("Subscription-State") for n in notifies],
                         ["terminated;reason=deactivated"] * 2)
        self.assertEqual(self.n.server.subscriptions, [])
        for notify in notifies:
            self.n.receive(answer(notify), SUBSCRIBER)
        self.finish()


class EndToEndTests(Case):
    """
    A L{Subscription} of one user agent against the L{EventServer} of
    another (RFC 6665 sections 4.1 and 4.2).
    """

    def setUp(self):
        Case.setUp(self)
        self.n = self.notifier()
        self.s = self.endpoint(SUBSCRIBER, SUBSCRIBER_CONTACT)
        self.network = Network(self.n, self.s)
        self.notified = []
        self.ended = []

    def subscribe(self, expires=3600, hold=lambda message: False):
        subscription = subscribe(self.s.agent, self.clock, MAILBOX, "sip:alice@example.test",
                                 "message-summary", expires=expires,
                                 onNotify=lambda *args: self.notified.append(args))
        subscription.onEnded = self.ended.append
        self.network.pump(hold)
        return subscription

    def test_subscribe(self):
        """
        The subscriber gets the 200 and the first NOTIFY, answers it 200,
        and C{result} fires; both ends share one dialog.
        """
        subscription = self.subscribe()
        self.assertIs(self.successResultOf(subscription.result), subscription)
        self.assertEqual(subscription.state, ACTIVE)
        self.assertEqual(subscription.expires, 3600)
        self.assertEqual(self.notified, [("active", None, 3600, WAITING, SUMMARY)])
        [notifier] = self.n.server.subscriptions
        self.assertEqual(subscription.dialog.id, (notifier.dialog.callId, notifier.dialog.remoteTag,
                                                  notifier.dialog.localTag))
        self.assertIs(self.s.agent._calls[subscription.dialog.id], subscription)
        self.assertEqual([r.code for r in self.s.responses()], [200])
        [request] = self.s.requests("SUBSCRIBE")
        self.assertEqual(request.headers.get("Event"), "message-summary")
        self.assertEqual(request.headers.get("Expires"), "3600")
        self.n.server.stop()
        self.network.pump()
        self.assertEqual(self.ended, ["deactivated"])
        self.finish()

    def test_stateChange(self):
        """
        A new message reaches the subscriber's C{onNotify} with the new body.
        """
        subscription = self.subscribe()
        self.package.counts["alice"] = (3, 8)
        self.n.server.notifyAll("message-summary")
        self.network.pump()
        self.assertEqual(self.notified[-1][3], b"Messages-Waiting: yes\r\nVoice-Message: 3/8\r\n")
        self.assertEqual(subscription.state, ACTIVE)
        subscription.unsubscribe()
        self.network.pump()
        self.finish()

    def test_refreshTiming(self):
        """
        The subscription is refreshed 30 s before it expires, and again
        after each refresh, so it never lapses at the notifier.
        """
        subscription = self.subscribe()
        self.clock.advance(3569)
        self.network.pump()
        self.assertEqual(len(self.s.requests("SUBSCRIBE")), 1)
        self.clock.advance(1)
        self.network.pump()
        first, refresh = self.s.requests("SUBSCRIBE")
        self.assertEqual(refresh.toAddress().tag, subscription.dialog.remoteTag)
        self.assertEqual(refresh.cseq(), (2, "SUBSCRIBE"))
        self.assertEqual(refresh.headers.get("Expires"), "3600")
        self.assertEqual(len(self.notified), 2)
        self.clock.advance(3570)
        self.network.pump()
        self.assertEqual(len(self.s.requests("SUBSCRIBE")), 3)
        self.assertEqual(subscription.state, ACTIVE)
        self.assertEqual(self.n.server.subscriptions[0].expires, 3600)
        subscription.unsubscribe()
        self.network.pump()
        self.finish()

    def test_shortSubscriptionRefreshedHalfway(self):
        """
        A subscription granted less than a minute is refreshed halfway.
        """
        self.n.server.minExpires = 10
        subscription = self.subscribe(expires=40)
        self.clock.advance(19)
        self.assertEqual(len(self.s.requests("SUBSCRIBE")), 1)
        self.clock.advance(1)
        self.assertEqual(len(self.s.requests("SUBSCRIBE")), 2)
        self.network.pump()
        self.assertEqual(subscription.state, ACTIVE)
        subscription.unsubscribe()
        self.network.pump()
        self.finish()

    def test_unsubscribe(self):
        """
        L{Subscription.unsubscribe} sends Expires 0; the terminated NOTIFY
        ends the subscription at both ends.
        """
        subscription = self.subscribe()
        subscription.unsubscribe()
        self.network.pump()
        self.assertEqual(self.s.requests("SUBSCRIBE")[-1].headers.get("Expires"), "0")
        self.assertEqual(self.notified[-1][:2], ("terminated", "timeout"))
        self.assertEqual((subscription.state, self.ended), (TERMINATED, ["timeout"]))
        self.assertEqual(self.n.server.subscriptions, [])
        self.assertEqual(self.successResultOf(subscription.unsubscribe()), None)
        self.finish()

    def test_notifyBeforeOK(self):
        """
        A NOTIFY that overtakes the 200 creates the dialog and fires
        C{result}; the 200 that follows changes nothing (RFC 6665 section
        4.1.2.4).
        """
        def okToSubscribe(message):
            return isinstance(message, Response) and message.cseq()[1] == "SUBSCRIBE"

        subscription = self.subscribe(hold=okToSubscribe)
        self.assertEqual(len(self.network.held), 1)
        self.assertIs(self.successResultOf(subscription.result), subscription)
        self.assertEqual(subscription.state, ACTIVE)
        self.assertEqual([r.code for r in self.s.responses()], [200])
        dialogId = subscription.dialog.id
        self.assertEqual(list(self.s.agent._calls), [dialogId])
        self.network.release()
        self.assertEqual(subscription.dialog.id, dialogId)
        self.assertEqual(list(self.s.agent._calls), [dialogId])
        self.clock.advance(3570)
        self.network.pump()
        self.assertEqual(self.s.requests("SUBSCRIBE")[-1].cseq(), (2, "SUBSCRIBE"))
        self.assertEqual(self.n.responses()[-1].code, 200)
        subscription.unsubscribe()
        self.network.pump()
        self.finish()

    def test_expiredAtNotifier(self):
        """
        A terminated NOTIFY from the notifier ends the subscription with
        its reason.
        """
        subscription = self.subscribe()
        self.n.server.subscriptions[0].terminate("noresource")
        self.network.pump()
        self.assertEqual((subscription.state, self.ended), (TERMINATED, ["noresource"]))
        self.assertEqual(self.s.agent._calls, {})
        self.finish()

    def test_refused(self):
        """
        A refused SUBSCRIBE fails C{result} with the status, and the
        subscription is forgotten.
        """
        subscription = subscribe(self.s.agent, self.clock, "sip:carol@192.0.2.1",
                                 "sip:alice@example.test", "message-summary")
        self.network.pump()
        failure = self.failureResultOf(subscription.result, SubscriptionFailed)
        self.assertEqual(failure.value.code, 404)
        self.assertEqual(subscription.state, TERMINATED)
        self.finish()

    def test_badEvent(self):
        """
        A SUBSCRIBE for a package the notifier does not serve fails with 489.
        """
        subscription = subscribe(self.s.agent, self.clock, MAILBOX, "sip:alice@example.test",
                                 "presence")
        self.network.pump()
        self.assertEqual(self.failureResultOf(subscription.result, SubscriptionFailed).value.code, 489)
        self.finish()


class SubscriberTests(Case):
    """
    L{Subscription} against a notifier these tests play by hand.
    """

    def setUp(self):
        Case.setUp(self)
        self.s = self.endpoint(SUBSCRIBER, SUBSCRIBER_CONTACT)
        self.notified = []
        self.ended = []
        self.subscription = subscribe(
            self.s.agent, self.clock, MAILBOX, "sip:alice@example.test", "message-summary",
            expires=600, onNotify=lambda *args: self.notified.append(args))
        self.subscription.onEnded = self.ended.append

    def ok(self, request, expires="600", toTag="nt1"):
        """
        Answer C{request} 200 with a To tag, our Contact and Expires.
        """
        headers = [("Contact", NOTIFIER_CONTACT)]
        if expires is not None:
            headers.append(("Expires", expires))
        self.s.receive(answer(request, 200, headers, None if request.toAddress().tag else toTag),
                       NOTIFIER)

    def notify(self, state="active;expires=600", cseq=1, event="message-summary", fromTag="nt1",
               body=WAITING, branch=None, headers=()):
        """
        Receive a NOTIFY in the subscription's dialog and return the
        response to it.
        """
        request = self.s.requests("SUBSCRIBE")[0]
        lines = [
            "NOTIFY sip:alice@198.51.100.7:5060 SIP/2.0",
            "Via: SIP/2.0/UDP 192.0.2.1:5060;branch=" + (branch or "z9hG4bKn%d" % (cseq,)),
            "Max-Forwards: 70",
            "From: <%s>;tag=%s" % (MAILBOX, fromTag),
            "To: " + request.headers.get("From"),
            "Call-ID: " + request.callId,
            "CSeq: %d NOTIFY" % (cseq,),
            "Contact: " + NOTIFIER_CONTACT,
        ]
        if event is not None:
            lines.append("Event: " + event)
        if state is not None:
            lines.append("Subscription-State: " + state)
        lines.extend("%s: %s" % header for header in headers)
        if body:
            lines.append("Content-Type: " + SUMMARY)
        head = "\r\n".join(lines) + "\r\nContent-Length: %d\r\n\r\n" % (len(body),)
        before = len(self.s.udp.sent)
        self.s.receive(parseMessage(head.encode("ascii") + body), NOTIFIER)
        [response] = [m for m, _ in self.s.udp.sent[before:] if isinstance(m, Response)]
        return response

    def established(self):
        """
        Answer the SUBSCRIBE and send the first NOTIFY.
        """
        self.ok(self.s.requests("SUBSCRIBE")[0])
        self.assertEqual(self.notify().code, 200)

    def unsubscribed(self):
        """
        Unsubscribe, answer it and send the terminated NOTIFY.
        """
        self.subscription.unsubscribe()
        self.ok(self.s.requests("SUBSCRIBE")[-1], "0")
        self.notify("terminated;reason=timeout", cseq=9)

    def test_request(self):
        """
        The SUBSCRIBE carries the Event, Expires and our Contact, and the
        subscription waits for a NOTIFY under its half dialog ID.
        """
        [(request, destination)] = self.s.sent(Request, "SUBSCRIBE")
        self.assertEqual(destination, NOTIFIER)
        self.assertEqual(request.headers.get("Event"), "message-summary")
        self.assertEqual(request.headers.get("Expires"), "600")
        self.assertEqual(request.headers.get("Contact"), SUBSCRIBER_CONTACT)
        self.assertEqual(self.subscription.state, NOTIFY_WAIT)
        self.assertEqual(list(self.s.agent._calls),
                         [(request.callId, request.fromAddress().tag, None)])
        self.established()
        self.unsubscribed()
        self.finish()

    def test_okThenNotify(self):
        """
        The 200 fires C{result} and creates the dialog; the NOTIFY is
        answered 200 and handed to C{onNotify}.
        """
        self.ok(self.s.requests("SUBSCRIBE")[0])
        self.assertIs(self.successResultOf(self.subscription.result), self.subscription)
        self.assertEqual(self.subscription.state, NOTIFY_WAIT)
        self.assertEqual(self.subscription.dialog.remoteTag, "nt1")
        self.assertEqual(self.notify().code, 200)
        self.assertEqual(self.notified, [("active", None, 600, WAITING, SUMMARY)])
        self.assertEqual(self.subscription.state, ACTIVE)
        self.unsubscribed()
        self.finish()

    def test_challenge(self):
        """
        A 401 is answered once with credentials; the dialog continues the
        CSeq of the retry.
        """
        self.s.agent._calls.clear()
        subscription = subscribe(self.s.agent, self.clock, "sip:bob@192.0.2.1",
                                 "sip:bob@example.test", "message-summary", expires=600,
                                 credentials=("bob", "secret"))
        first = self.s.requests("SUBSCRIBE")[-1]
        self.s.receive(answer(first, 401, [("WWW-Authenticate", 'Digest realm="x", nonce="n"')],
                              "c1"), NOTIFIER)
        retry = self.s.requests("SUBSCRIBE")[-1]
        self.assertEqual(retry.cseq(), (2, "SUBSCRIBE"))
        self.assertIsNotNone(retry.headers.get("Authorization"))
        self.ok(retry)
        self.assertEqual(subscription.dialog.localSeq, 2)
        subscription._end("shutdown")
        self.subscription._end("shutdown")
        self.failureResultOf(self.subscription.result, SubscriptionFailed)
        self.finish()

    def test_refused(self):
        """
        A final error to the SUBSCRIBE fails C{result} with its status and
        ends the subscription.
        """
        self.s.receive(answer(self.s.requests("SUBSCRIBE")[0], 403, (), "x"), NOTIFIER)
        self.assertEqual(self.failureResultOf(self.subscription.result).value.code, 403)
        self.assertEqual(self.ended, ["failed"])
        self.assertEqual(self.s.agent._calls, {})
        self.finish()

    def test_noAnswer(self):
        """
        A SUBSCRIBE never answered fails with a local 408.
        """
        self.clock.advance(64 * 0.5)
        self.assertEqual(self.failureResultOf(self.subscription.result).value.code, 408)
        self.assertEqual(self.subscription.state, TERMINATED)
        self.finish()

    def test_noNotify(self):
        """
        A 200 with no NOTIFY within 64*T1 ends the subscription (Timer N,
        RFC 6665 section 4.1.2.4).
        """
        self.ok(self.s.requests("SUBSCRIBE")[0])
        self.clock.advance(31.9)
        self.assertEqual(self.subscription.state, NOTIFY_WAIT)
        self.clock.advance(0.1)
        self.assertEqual((self.subscription.state, self.ended), (TERMINATED, ["no notify"]))
        self.finish()

    def test_notifyBeforeOK(self):
        """
        A NOTIFY before the 200 creates the dialog from its From tag,
        Contact and Record-Route (RFC 6665 section 4.1.2.4).
        """
        response = self.notify(headers=[("Record-Route", PROXY)])
        self.assertEqual(response.code, 200)
        self.assertIs(self.successResultOf(self.subscription.result), self.subscription)
        dialog = self.subscription.dialog
        self.assertEqual((dialog.remoteTag, dialog.routeSet, dialog.localSeq), ("nt1", [PROXY], 1))
        self.assertEqual(str(dialog.remoteTarget), "sip:voicemail@192.0.2.1:5060")
        self.ok(self.s.requests("SUBSCRIBE")[0])
        self.assertIs(self.subscription.dialog, dialog)
        self.clock.advance(570)
        refresh = self.s.requests("SUBSCRIBE")[-1]
        self.assertEqual(refresh.headers.getAll("Route"), [PROXY])
        self.assertEqual(refresh.toAddress().tag, "nt1")
        self.assertEqual(refresh.headers.get("To"), "<%s>;tag=nt1" % (MAILBOX,))
        self.ok(refresh)
        self.notify(cseq=2)
        self.unsubscribed()
        self.finish()

    def test_badNotify(self):
        """
        A NOTIFY for another event gets 489 and one without a valid
        Subscription-State 400; neither changes the subscription.
        """
        self.established()
        self.assertEqual(self.notify(event="presence", cseq=2).code, 489)
        self.assertEqual(self.notify(state=None, cseq=3).code, 400)
        self.assertEqual(self.notify(state="active;expires=never", cseq=4).code, 400)
        self.assertEqual(self.notify(event=None, cseq=5).code, 400)
        self.assertEqual(len(self.notified), 1)
        self.assertEqual(self.subscription.state, ACTIVE)
        self.unsubscribed()
        self.finish()

    def test_notifyOutOfOrder(self):
        """
        A NOTIFY with a CSeq below the last one gets 500 (RFC 3261 section
        12.2.2).
        """
        self.established()
        self.assertEqual(self.notify(cseq=5).code, 200)
        self.assertEqual(self.notify(cseq=4).code, 500)
        self.unsubscribed()
        self.finish()

    def test_notifyExpiresReschedules(self):
        """
        The expires of a NOTIFY is authoritative: the refresh is moved to
        30 s before it (RFC 6665 section 4.1.3).
        """
        self.established()
        self.clock.advance(100)
        self.notify("active;expires=200", cseq=2)
        self.assertEqual(self.subscription.expires, 200)
        self.clock.advance(169)
        self.assertEqual(len(self.s.requests("SUBSCRIBE")), 1)
        self.clock.advance(1)
        self.assertEqual(len(self.s.requests("SUBSCRIBE")), 2)
        self.ok(self.s.requests("SUBSCRIBE")[-1])
        self.notify(cseq=3)
        self.unsubscribed()
        self.finish()

    def test_pending(self):
        """
        A pending NOTIFY leaves the subscription pending until an active one.
        """
        self.ok(self.s.requests("SUBSCRIBE")[0])
        self.notify("pending;expires=600")
        self.assertEqual(self.subscription.state, "pending")
        self.notify(cseq=2)
        self.assertEqual(self.subscription.state, ACTIVE)
        self.unsubscribed()
        self.finish()

    def test_refresh481Ends(self):
        """
        A refresh answered 481 ends the subscription (RFC 6665 section 4.1.2.2).
        """
        self.established()
        self.clock.advance(570)
        refresh = self.s.requests("SUBSCRIBE")[-1]
        self.s.receive(answer(refresh, 481), NOTIFIER)
        self.assertEqual((self.subscription.state, self.ended), (TERMINATED, ["gone"]))
        self.finish()

    def test_refreshFailureKeepsUntilExpiry(self):
        """
        A refresh refused otherwise leaves the subscription in force until
        it expires.
        """
        self.established()
        self.clock.advance(570)
        self.s.receive(answer(self.s.requests("SUBSCRIBE")[-1], 500), NOTIFIER)
        self.assertEqual(self.subscription.state, ACTIVE)
        self.clock.advance(29)
        self.assertEqual(self.subscription.state, ACTIVE)
        self.clock.advance(1)
        self.assertEqual((self.subscription.state, self.ended), (TERMINATED, ["expired"]))
        self.finish()

    def test_refreshWithoutNotify(self):
        """
        A refresh answered 200 but followed by no NOTIFY ends the
        subscription after 64*T1 (Timer N, RFC 6665 section 4.1.2.2).
        """
        self.established()
        self.clock.advance(570)
        self.ok(self.s.requests("SUBSCRIBE")[-1])
        self.clock.advance(32)
        self.assertEqual(self.ended, ["no notify"])
        self.finish()

    def test_terminatedNotify(self):
        """
        A terminated NOTIFY ends the subscription, keeping its reason and
        retry-after.
        """
        self.established()
        self.notify("terminated;reason=probation;retry-after=300", cseq=2, body=b"")
        self.assertEqual(self.notified[-1], ("terminated", "probation", None, b"", None))
        self.assertEqual((self.subscription.reason, self.subscription.retryAfter), ("probation", 300))
        self.assertEqual(self.s.agent._calls, {})
        self.assertEqual(self.notify(cseq=3).code, 481)
        self.finish()

    def test_unsubscribeBeforeAnswer(self):
        """
        Unsubscribing before any answer ends the subscription at once; a
        NOTIFY that comes later gets 481.
        """
        self.assertIsNone(self.successResultOf(self.subscription.unsubscribe()))
        self.assertEqual(self.failureResultOf(self.subscription.result).value.reason, "unsubscribed")
        self.assertEqual(self.notify().code, 481)
        self.ok(self.s.requests("SUBSCRIBE")[0])
        self.finish()

    def test_unsubscribeRefused(self):
        """
        An unsubscribe answered with an error ends the subscription anyway.
        """
        self.established()
        d = self.subscription.unsubscribe()
        self.s.receive(answer(self.s.requests("SUBSCRIBE")[-1], 481), NOTIFIER)
        self.assertEqual(self.successResultOf(d).code, 481)
        self.assertEqual(self.ended, ["unsubscribed"])
        self.finish()

    def test_onNotifyFails(self):
        """
        An C{onNotify} that raises is logged; the NOTIFY is still answered 200.
        """
        def broken(*args):
            raise RuntimeError("bug")

        self.subscription.onNotify = broken
        self.established()
        self.assertEqual(len(self.flushLoggedErrors(RuntimeError)), 1)
        self.assertEqual(self.s.responses()[-1].code, 200)
        self.unsubscribed()
        self.flushLoggedErrors(RuntimeError)
        self.finish()

    def test_otherMethod(self):
        """
        A request other than NOTIFY in the subscriber's dialog gets 405.
        """
        self.established()
        response = self.notify(cseq=2)
        self.assertEqual(response.code, 200)
        request = self.s.requests("SUBSCRIBE")[0]
        info = parseMessage((
            "INFO sip:alice@198.51.100.7:5060 SIP/2.0\r\n"
            "Via: SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bKinfo\r\n"
            "From: <%s>;tag=nt1\r\nTo: %s\r\nCall-ID: %s\r\nCSeq: 3 INFO\r\n"
            "Content-Length: 0\r\n\r\n" % (MAILBOX, request.headers.get("From"), request.callId)
        ).encode("ascii"))
        self.s.receive(info, NOTIFIER)
        self.assertEqual(self.s.responses()[-1].code, 405)
        self.unsubscribed()
        self.finish()
