"""
Tests for L{appliance.sip.refer}: REFER (RFC 3515) received inside a dialog,
with the NOTIFYs of its implicit subscription, and REFER sent with
L{appliance.sip.session.Session.refer}, on a real transaction layer and user
agent over fake transports driven by a L{task.Clock}.
"""

from twisted.internet.defer import succeed
from twisted.trial.unittest import SynchronousTestCase

from appliance.sip.message import URI, Address, ParseError
from appliance.sip.refer import SIPFRAG, Transfers, parseSipfrag, sipfrag
from appliance.sip.useragent import ACTIVE, ENDED
from tests.sip.test_uac import ME, peerRequest, reply
from tests.sip.test_useragent import CALLER, FROM_TAG, OFFER, OUR_CONTACT, Harness

CAROL = "sip:carol@198.51.100.30"
CAROL_AT = ("198.51.100.30", 5060)
CAROL_CONTACT = "<sip:carol@198.51.100.30:5060>"


def notifyHeaders(state="active;expires=60", event="refer"):
    """
    The Event and Subscription-State of a NOTIFY from the peer.
    """
    headers = [("Subscription-State", state)]
    if event is not None:
        headers.insert(0, ("Event", event))
    return headers


class SipfragTests(SynchronousTestCase):
    """
    L{sipfrag} and L{parseSipfrag}: the status line bodies of RFC 3515
    section 2.4.5.
    """

    def test_sipfrag(self):
        """
        A sipfrag is one status line with the standard reason phrase, or
        the one given.
        """
        self.assertEqual(sipfrag(100), b"SIP/2.0 100 Trying\r\n")
        self.assertEqual(sipfrag(486), b"SIP/2.0 486 Busy Here\r\n")
        self.assertEqual(sipfrag(503, "No route"), b"SIP/2.0 503 No route\r\n")

    def test_parse(self):
        """
        The code of a status line is read, with or without a reason or
        headers after it.
        """
        self.assertEqual(parseSipfrag(b"SIP/2.0 180 Ringing\r\n"), 180)
        self.assertEqual(parseSipfrag(b"SIP/2.0 200\r\n"), 200)
        self.assertEqual(parseSipfrag(b"SIP/2.0 603 Declined\r\nContent-Length: 0\r\n\r\n"), 603)

    def test_parseInvalid(self):
        """
        A body that is not a SIP status line is a L{ParseError}.
        """
        for body in [b"", b"hello", b"INVITE sip:a@b SIP/2.0\r\n", b"SIP/2.0 99 Low\r\n",
                     b"SIP/2.0 700 High\r\n"]:
            self.assertRaises(ParseError, parseSipfrag, body)


class ReferReceivedTests(SynchronousTestCase):
    """
    A REFER inside a call we answered (RFC 3515 section 2.4.2): the
    application places the referred call, whose progress goes back to the
    referrer in NOTIFYs.
    """

    def setUp(self):
        self.h = Harness(self)
        self.referred = []
        self.placed = []
        self.onRefer = self.place
        self.answered = 0
        self.h.agent.transfers = Transfers(self.h.agent, lambda *a: self.onRefer(*a))
        self.call = self.h.invite()
        self.h.ack(self.call)

    def place(self, session, target, request):
        """
        Place the call to the referred C{target}, as an application would.
        """
        self.referred.append((session, target, request))
        call = self.h.agent.invite(str(target.uri), ME, OFFER)
        self.placed.append(call)
        return call

    def refer(self, *referTo, cseq=2):
        """
        Receive a REFER with the given Refer-To values; return its
        responses.
        """
        return self.h.inDialog(self.call, "REFER", cseq, "z9hG4bKrefer%d" % (cseq,),
                               headers=[("Refer-To", value) for value in referTo])

    def notifies(self):
        """
        The NOTIFYs sent so far, those not yet answered now answered 200
        by the referrer.
        """
        sent = [notify for notify, _ in self.h.requests("NOTIFY")]
        for notify in sent[self.answered:]:
            self.h.answerRequest(notify)
        self.answered = len(sent)
        return sent

    def assertNotify(self, notify, body, state):
        """
        C{notify} is a NOTIFY of the refer subscription in the call's
        dialog, with the sipfrag C{body} and Subscription-State C{state}.
        """
        self.assertEqual(notify.body, body)
        self.assertEqual(notify.headers.get("Event"), "refer")
        self.assertEqual(notify.headers.get("Subscription-State"), state)
        self.assertEqual(notify.headers.get("Content-Type"), SIPFRAG)
        self.assertEqual(notify.headers.get("Content-Type"), "message/sipfrag;version=2.0")
        self.assertEqual(notify.fromAddress().tag, self.call.dialog.localTag)
        self.assertEqual(notify.toAddress().tag, FROM_TAG)
        self.assertEqual(notify.callId, self.call.callId)
        self.assertEqual(notify.uri, URI.parse("sip:alice@198.51.100.7:5060"))

    def test_accepted(self):
        """
        An accepted REFER gets 202 with our Contact, then a NOTIFY "SIP/2.0
        100 Trying" with an active subscription; C{onRefer} hears the
        session, the Refer-To address and the request.
        """
        [accepted] = self.refer("<%s>" % (CAROL,))
        self.assertEqual(accepted.code, 202)
        self.assertEqual(accepted.headers.get("Contact"), OUR_CONTACT)
        self.assertEqual(accepted.toAddress().tag, self.call.dialog.localTag)
        [(session, target, request)] = self.referred
        self.assertIs(session, self.call)
        self.assertEqual(target, Address.parse("<%s>" % (CAROL,)))
        self.assertEqual(request.method, "REFER")
        sent = self.h.udp.sentMessages()
        [(notify, destination)] = self.h.requests("NOTIFY")
        self.assertLess(sent.index(accepted), sent.index(notify))
        self.assertEqual(destination, CALLER)
        self.assertNotify(notify, b"SIP/2.0 100 Trying\r\n", "active;expires=60")
        self.assertEqual(notify.cseq(), (1, "NOTIFY"))
        self.assertEqual(notify.headers.get("Contact"), OUR_CONTACT)
        self.assertEqual(self.h.stats.get("refer.accepted"), 1)
        [(invite, where)] = self.h.requests("INVITE")
        self.assertEqual((invite.uri, where), (URI.parse(CAROL), CAROL_AT))
        self.notifies()
        reply(self.h, invite, 486, toTag="c1")
        self.notifies()
        self.h.finish()

    def test_answered(self):
        """
        The referred call's 180 gives a progress NOTIFY, and its 200 the
        final NOTIFY "SIP/2.0 200 OK" that terminates the subscription; the
        NOTIFYs carry growing CSeqs.
        """
        self.refer("<%s>" % (CAROL,))
        [invite] = [r for r, _ in self.h.requests("INVITE")]
        reply(self.h, invite, 100)
        reply(self.h, invite, 180, toTag="c1", contact=CAROL_CONTACT)
        reply(self.h, invite, 200, toTag="c1", contact=CAROL_CONTACT, body=OFFER)
        trying, ringing, ok = self.notifies()
        self.assertNotify(ringing, b"SIP/2.0 180 Ringing\r\n", "active;expires=60")
        self.assertNotify(ok, b"SIP/2.0 200 OK\r\n", "terminated;reason=noresource")
        self.assertEqual([n.cseq()[0] for n in (trying, ringing, ok)], [1, 2, 3])
        [referred] = self.placed
        self.assertEqual(referred.state, ACTIVE)
        self.assertEqual(self.call.state, ACTIVE)
        referred.hangup()
        reply(self.h, self.h.requests("BYE")[0][0], 200)
        self.h.finish()

    def test_sessionProgress(self):
        """
        A 183 of the referred call is reported with its reason phrase.
        """
        self.refer("<%s>" % (CAROL,))
        [invite] = [r for r, _ in self.h.requests("INVITE")]
        reply(self.h, invite, 183, toTag="c1", contact=CAROL_CONTACT)
        _, progress = self.notifies()
        self.assertNotify(progress, b"SIP/2.0 183 Session Progress\r\n", "active;expires=60")
        reply(self.h, invite, 603, toTag="c1")
        self.notifies()
        self.h.finish()

    def test_failed(self):
        """
        A referred call that fails is reported in a final NOTIFY with its
        status line, terminating the subscription.
        """
        self.refer("<%s>" % (CAROL,))
        [invite] = [r for r, _ in self.h.requests("INVITE")]
        reply(self.h, invite, 486, toTag="c1")
        _, final = self.notifies()
        self.assertNotify(final, b"SIP/2.0 486 Busy Here\r\n", "terminated;reason=noresource")
        self.assertEqual(self.call.state, ACTIVE)
        self.h.finish()

    def test_timedOut(self):
        """
        A referred call nobody answers is reported as 408 once its INVITE
        times out.
        """
        self.refer("<%s>" % (CAROL,))
        self.notifies()
        self.h.clock.advance(64 * self.h.timers.T1)
        _, final = self.notifies()
        self.assertEqual(parseSipfrag(final.body), 408)
        self.assertEqual(final.headers.get("Subscription-State"), "terminated;reason=noresource")
        self.h.finish()

    def test_failsAtOnce(self):
        """
        A referred call that fails while C{onRefer} places it (no route)
        is reported after the 100 Trying, in order.
        """
        resolve = self.h.agent._resolve
        self.h.agent._resolve = lambda uri: succeed([]) if uri.host == "198.51.100.30" else resolve(uri)
        [accepted] = self.refer("<%s>" % (CAROL,))
        self.assertEqual(accepted.code, 202)
        trying, final = self.notifies()
        self.assertEqual(parseSipfrag(trying.body), 100)
        self.assertEqual(parseSipfrag(final.body), 503)
        self.assertEqual(final.headers.get("Subscription-State"), "terminated;reason=noresource")
        self.h.finish()

    def test_referrerGone(self):
        """
        Once the referring call has ended, the referred call's progress
        sends no NOTIFY.
        """
        self.refer("<%s>" % (CAROL,))
        self.notifies()
        self.h.inDialog(self.call, "BYE", 3, "z9hG4bKbye1", contact=None)
        self.assertEqual(self.call.state, ENDED)
        [invite] = [r for r, _ in self.h.requests("INVITE")]
        reply(self.h, invite, 180, toTag="c1", contact=CAROL_CONTACT)
        reply(self.h, invite, 486, toTag="c1")
        self.assertEqual(len(self.h.requests("NOTIFY")), 1)
        self.h.finish()

    def test_noReferTo(self):
        """
        A REFER without Refer-To gets 400 and reaches no application.
        """
        [response] = self.refer()
        self.assertEqual(response.code, 400)
        self.assertEqual((self.referred, self.h.requests("NOTIFY")), ([], []))
        self.h.finish()

    def test_twoReferTo(self):
        """
        A REFER with two Refer-To gets 400 (RFC 3515 section 2.4.1).
        """
        [response] = self.refer("<%s>" % (CAROL,), "<sip:dave@198.51.100.31>")
        self.assertEqual(response.code, 400)
        self.assertEqual((self.referred, self.h.requests("NOTIFY")), ([], []))
        self.h.finish()

    def test_badReferTo(self):
        """
        A Refer-To that is not an address gets 400; one that is not a SIP
        URI gets 416.
        """
        [bad] = self.refer("<sip:carol@", cseq=2)
        [web] = self.refer("<http://example.test/carol>", cseq=3)
        self.assertEqual((bad.code, web.code), (400, 416))
        self.assertEqual(self.referred, [])
        self.h.finish()

    def test_declined(self):
        """
        A REFER the application declines (C{onRefer} returns C{None}) gets
        603 and no NOTIFY.
        """
        self.onRefer = lambda *a: None
        [response] = self.refer("<%s>" % (CAROL,))
        self.assertEqual(response.code, 603)
        self.assertEqual(self.h.requests("NOTIFY"), [])
        self.assertEqual(self.h.stats.get("refer.accepted"), 0)
        self.h.finish()

    def test_applicationFails(self):
        """
        An C{onRefer} that raises is logged and the REFER declined with
        603.
        """
        def fail(*a):
            raise RuntimeError("bug")

        self.onRefer = fail
        [response] = self.refer("<%s>" % (CAROL,))
        self.assertEqual(response.code, 603)
        self.assertEqual(len(self.flushLoggedErrors(RuntimeError)), 1)
        self.h.finish()

    def test_withoutTransfers(self):
        """
        A user agent without L{Transfers} answers a REFER with 501.
        """
        self.h.agent.transfers = None
        [response] = self.refer("<%s>" % (CAROL,))
        self.assertEqual(response.code, 501)
        self.h.finish()


class ReferSentTests(SynchronousTestCase):
    """
    A REFER we send with L{appliance.sip.session.Session.refer}, and the
    NOTIFYs that report on it (RFC 3515 section 2.4.4).
    """

    def setUp(self):
        self.h = Harness(self)
        self.h.agent.transfers = Transfers(self.h.agent, lambda *a: None)
        self.call = self.h.invite()
        self.h.ack(self.call)
        self.progress = []

    def notify(self, cseq, body, state="active;expires=60", event="refer"):
        """
        Receive a NOTIFY from the peer; return its response.
        """
        [response] = self.h.inDialog(
            self.call, "NOTIFY", cseq, "z9hG4bKnotify%d" % (cseq,), body=body, contentType=SIPFRAG,
            headers=notifyHeaders(state, event))
        return response

    def test_refer(self):
        """
        C{refer} sends a REFER inside the dialog with the target in
        Refer-To, Referred-By when given, and our Contact.
        """
        d = self.call.refer(CAROL, referredBy=ME)
        [(refer, destination)] = self.h.requests("REFER")
        self.assertEqual(destination, CALLER)
        self.assertEqual(refer.headers.getAll("Refer-To"), ["<%s>" % (CAROL,)])
        self.assertEqual(refer.headers.get("Referred-By"), "<%s>" % (ME,))
        self.assertEqual(refer.headers.get("Contact"), OUR_CONTACT)
        self.assertEqual(refer.cseq(), (1, "REFER"))
        self.assertEqual((refer.fromAddress().tag, refer.toAddress().tag),
                         (self.call.dialog.localTag, FROM_TAG))
        self.h.answerRequest(refer, 202)
        self.assertNoResult(d)
        self.notify(2, b"SIP/2.0 200 OK\r\n", "terminated;reason=noresource")
        self.successResultOf(d)
        self.h.finish()

    def test_referToAddress(self):
        """
        A target given as an address with angle brackets is used as it is.
        """
        self.call.refer('"Carol" <%s>' % (CAROL,))
        [(refer, _)] = self.h.requests("REFER")
        self.assertEqual(refer.headers.getAll("Refer-To"), ['"Carol" <%s>' % (CAROL,)])
        self.assertIsNone(refer.headers.get("Referred-By"))
        self.h.answerRequest(refer, 603)
        self.h.finish()

    def test_notifications(self):
        """
        Each NOTIFY is answered 200 and its status reaches C{onProgress};
        the final one fires the L{Deferred} with its code.
        """
        d = self.call.refer(CAROL, onProgress=self.progress.append)
        [(refer, _)] = self.h.requests("REFER")
        self.h.answerRequest(refer, 202)
        codes = [
            self.notify(2, b"SIP/2.0 100 Trying\r\n").code,
            self.notify(3, b"SIP/2.0 180 Ringing\r\n").code,
        ]
        self.assertNoResult(d)
        codes.append(self.notify(4, b"SIP/2.0 200 OK\r\n", "terminated;reason=noresource").code)
        self.assertEqual(codes, [200, 200, 200])
        self.assertEqual(self.progress, [100, 180, 200])
        self.assertEqual(self.successResultOf(d), 200)
        self.h.finish()

    def test_referredCallFailed(self):
        """
        A final NOTIFY with a failure status fires the L{Deferred} with it.
        """
        d = self.call.refer(CAROL)
        self.h.answerRequest(self.h.requests("REFER")[0][0], 202)
        self.notify(2, b"SIP/2.0 486 Busy Here\r\n", "terminated;reason=noresource")
        self.assertEqual(self.successResultOf(d), 486)
        self.h.finish()

    def test_finalStatusEnds(self):
        """
        A final status ends the wait even while the subscription is said
        to be active.
        """
        d = self.call.refer(CAROL)
        self.h.answerRequest(self.h.requests("REFER")[0][0], 202)
        self.notify(2, b"SIP/2.0 603 Decline\r\n")
        self.assertEqual(self.successResultOf(d), 603)
        self.h.finish()

    def test_terminatedEnds(self):
        """
        A NOTIFY that terminates the subscription ends the wait with its
        status, even a provisional one.
        """
        d = self.call.refer(CAROL)
        self.h.answerRequest(self.h.requests("REFER")[0][0], 202)
        self.notify(2, b"SIP/2.0 100 Trying\r\n", "terminated;reason=timeout")
        self.assertEqual(self.successResultOf(d), 100)
        self.h.finish()

    def test_notifyBefore202(self):
        """
        A NOTIFY that overtakes the 202 is accepted.
        """
        d = self.call.refer(CAROL)
        self.assertEqual(self.notify(2, b"SIP/2.0 100 Trying\r\n").code, 200)
        self.h.answerRequest(self.h.requests("REFER")[0][0], 202)
        self.notify(3, b"SIP/2.0 200 OK\r\n", "terminated;reason=noresource")
        self.assertEqual(self.successResultOf(d), 200)
        self.h.finish()

    def test_refused(self):
        """
        A REFER refused with a final failure fires the L{Deferred} with
        that status, and later NOTIFYs get 481.
        """
        d = self.call.refer(CAROL)
        self.h.answerRequest(self.h.requests("REFER")[0][0], 603)
        self.assertEqual(self.successResultOf(d), 603)
        self.assertEqual(self.notify(2, b"SIP/2.0 100 Trying\r\n").code, 481)
        self.h.finish()

    def test_referTimesOut(self):
        """
        A REFER that gets no response fires the L{Deferred} with 408.
        """
        d = self.call.refer(CAROL)
        self.h.clock.advance(64 * self.h.timers.T1)
        self.assertEqual(self.successResultOf(d), 408)
        self.h.finish()

    def test_badBody(self):
        """
        A NOTIFY whose body is not a status line gets 400 and does not end
        the wait.
        """
        d = self.call.refer(CAROL, onProgress=self.progress.append)
        self.h.answerRequest(self.h.requests("REFER")[0][0], 202)
        self.assertEqual(self.notify(2, b"hello").code, 400)
        self.assertEqual(self.progress, [])
        self.assertNoResult(d)
        self.notify(3, b"SIP/2.0 200 OK\r\n", "terminated;reason=noresource")
        self.successResultOf(d)
        self.h.finish()

    def test_nobodyWaits(self):
        """
        A refer NOTIFY when no REFER of ours is pending gets 481, also
        after the final one.
        """
        self.assertEqual(self.notify(2, b"SIP/2.0 100 Trying\r\n").code, 481)
        d = self.call.refer(CAROL)
        self.h.answerRequest(self.h.requests("REFER")[0][0], 202)
        self.notify(3, b"SIP/2.0 200 OK\r\n", "terminated;reason=noresource")
        self.successResultOf(d)
        self.assertEqual(self.notify(4, b"SIP/2.0 200 OK\r\n", "terminated").code, 481)
        self.h.finish()

    def test_otherEvent(self):
        """
        A NOTIFY for another event package, or without Event, gets 489
        (RFC 6665 section 8.3.1), even while a REFER is pending.
        """
        d = self.call.refer(CAROL)
        self.h.answerRequest(self.h.requests("REFER")[0][0], 202)
        self.assertEqual(self.notify(2, b"SIP/2.0 100 Trying\r\n", event="dialog").code, 489)
        self.assertEqual(self.notify(3, b"SIP/2.0 100 Trying\r\n", event=None).code, 489)
        self.assertNoResult(d)
        self.assertEqual(self.notify(4, b"SIP/2.0 200 OK\r\n", event="refer;id=93809824").code, 200)
        self.assertEqual(self.successResultOf(d), 200)
        self.h.finish()


class ReferOnPlacedCallTests(SynchronousTestCase):
    """
    REFER on a call we placed (the dialog of L{appliance.sip.uac.OutgoingCall}).
    """

    def test_referPlacedCall(self):
        """
        A call we placed sends its REFER to the callee's Contact with the
        dialog's next CSeq, and the callee's NOTIFYs are answered 200 and
        fire the L{Deferred} with the final status.
        """
        h = Harness(self)
        h.agent.transfers = Transfers(h.agent, lambda *a: None)
        call = h.agent.invite("sip:bob@198.51.100.20", ME, OFFER)
        [(invite, _)] = h.requests("INVITE")
        reply(h, invite, 200, toTag="b1", body=OFFER)
        d = call.refer(CAROL)
        [(refer, destination)] = h.requests("REFER")
        self.assertEqual(destination, ("198.51.100.20", 5070))
        self.assertEqual(refer.cseq(), (2, "REFER"))
        self.assertEqual(refer.toAddress().tag, "b1")
        reply(h, refer, 202)
        [ok] = peerRequest(h, call, "NOTIFY", 1, "z9hG4bKn1", body=b"SIP/2.0 200 OK\r\n",
                           contentType=SIPFRAG, headers=notifyHeaders("terminated;reason=noresource"))
        self.assertEqual(ok.code, 200)
        self.assertEqual(self.successResultOf(d), 200)
        self.assertEqual(call.state, ACTIVE)
        call.hangup()
        reply(h, h.requests("BYE")[0][0], 200)
        h.finish()
