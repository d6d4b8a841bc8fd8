"""
Tests for L{appliance.sip.dialog}: dialog state on both sides of a call
(RFC 3261 section 12) and the requests sent inside a dialog.
"""

from twisted.trial.unittest import SynchronousTestCase

from appliance.sip.dialog import (
    CONFIRMED,
    EARLY,
    TERMINATED,
    Dialog,
    DialogError,
    newCallId,
)
from appliance.sip.message import URI, Address, ParseError, makeResponse, parseMessage
from appliance.sip.transaction import MAGIC_COOKIE

CALL_ID = "a84b4c76e66710@pc33.example.com"
ALICE_TAG = "1928301774"
BOB_TAG = "a6c85cf"
ALICE_CONTACT = "<sip:alice@pc33.example.com>"
BOB_CONTACT = "<sip:bob@192.0.2.4>"
P1 = "<sip:p1.example.com;lr>"
P2 = "<sip:p2.example.com;lr>"


def invite(
    uri="sip:bob@example.com",
    toTag=None,
    fromTag=ALICE_TAG,
    cseq=314159,
    method="INVITE",
    contact=ALICE_CONTACT,
    recordRoutes=(),
    extra=(),
):
    """
    Parse a request from Alice to Bob with the given fields.
    """
    to = "Bob <sip:bob@example.com>"
    if toTag is not None:
        to += ";tag=" + toTag
    sender = "Alice <sip:alice@example.com>"
    if fromTag is not None:
        sender += ";tag=" + fromTag
    lines = [
        "%s %s SIP/2.0" % (method, uri),
        "Via: SIP/2.0/UDP pc33.example.com;branch=z9hG4bKnashds8",
        "Max-Forwards: 70",
        "To: " + to,
        "From: " + sender,
        "Call-ID: " + CALL_ID,
        "CSeq: %d %s" % (cseq, method),
    ]
    if contact is not None:
        lines.append("Contact: " + contact)
    lines.extend("Record-Route: " + value for value in recordRoutes)
    lines.extend("%s: %s" % header for header in extra)
    text = "\r\n".join(lines) + "\r\nContent-Length: 0\r\n\r\n"
    return parseMessage(text.encode("ascii"))


def answer(request, code=200, toTag=BOB_TAG, contact=BOB_CONTACT, recordRoutes=()):
    """
    A response to C{request} from Bob, with a Contact and Record-Route.
    """
    response = makeResponse(request, code, toTag=toTag)
    for value in recordRoutes:
        response.headers.add("Record-Route", value)
    if contact is not None:
        response.headers.add("Contact", contact)
    return response


def serverDialog(**kwargs):
    """
    The dialog Bob's UAS creates for an INVITE from Alice.
    """
    return Dialog.forServer(invite(**kwargs), BOB_TAG, BOB_CONTACT)


class ServerDialogTests(SynchronousTestCase):
    """
    L{Dialog.forServer}: the UAS side (RFC 3261 section 12.1.1).
    """

    def test_identifiers(self):
        """
        A UAS dialog takes the Call-ID, its own tag as local tag and the From
        tag as remote tag, and its ID is (Call-ID, local tag, remote tag).
        """
        dialog = serverDialog()
        self.assertEqual(
            (dialog.callId, dialog.localTag, dialog.remoteTag),
            (CALL_ID, BOB_TAG, ALICE_TAG),
        )
        self.assertEqual(dialog.id, (CALL_ID, BOB_TAG, ALICE_TAG))

    def test_uris(self):
        """
        The UAS's local URI is the To value and its remote URI the From
        value, both without the tag.
        """
        dialog = serverDialog()
        self.assertEqual(Address.parse(dialog.localURI).uri, URI.parse("sip:bob@example.com"))
        self.assertEqual(Address.parse(dialog.remoteURI).uri, URI.parse("sip:alice@example.com"))
        self.assertIsNone(Address.parse(dialog.remoteURI).tag)
        self.assertIsNone(Address.parse(dialog.localURI).tag)

    def test_sequenceNumbers(self):
        """
        The remote sequence number is the INVITE's CSeq and the local one
        starts empty (zero), so the UAS's first request has CSeq 1.
        """
        dialog = serverDialog(cseq=4711)
        self.assertEqual((dialog.localSeq, dialog.remoteSeq), (0, 4711))
        self.assertEqual(dialog.createRequest("BYE").cseq(), (1, "BYE"))

    def test_remoteTargetAndContact(self):
        """
        The remote target is the INVITE's Contact and the local contact the
        one the UAS gave.
        """
        dialog = serverDialog()
        self.assertEqual(dialog.remoteTarget, URI.parse("sip:alice@pc33.example.com"))
        self.assertEqual(dialog.localContact, BOB_CONTACT)

    def test_routeSetKeepsRecordRouteOrder(self):
        """
        The UAS route set is the INVITE's Record-Route in order, parameters
        included (RFC 3261 section 12.1.1).
        """
        dialog = serverDialog(recordRoutes=[P1 + ", " + P2])
        self.assertEqual(dialog.routeSet, [P1, P2])

    def test_earlyAndNotCaller(self):
        """
        A UAS dialog starts early, is not the caller's, and is confirmed by
        L{Dialog.confirm} without a response.
        """
        dialog = serverDialog()
        self.assertEqual((dialog.state, dialog.isCaller), (EARLY, False))
        dialog.confirm()
        self.assertEqual(dialog.state, CONFIRMED)
        dialog.terminate()
        self.assertEqual(dialog.state, TERMINATED)

    def test_secure(self):
        """
        A dialog created by a SIPS Request-URI is secure; one by a SIP URI
        is not.
        """
        self.assertTrue(serverDialog(uri="sips:bob@example.com").secure)
        self.assertFalse(serverDialog().secure)

    def test_noFromTag(self):
        """
        An RFC 2543 INVITE without a From tag gives a dialog with no remote
        tag (RFC 3261 section 12.1.1).
        """
        self.assertIsNone(serverDialog(fromTag=None).remoteTag)

    def test_noContact(self):
        """
        An INVITE without a Contact cannot create a dialog: 400.
        """
        error = self.assertRaises(DialogError, serverDialog, contact=None)
        self.assertEqual(error.status, 400)

    def test_twoContacts(self):
        """
        An INVITE with two Contacts cannot create a dialog: 400.
        """
        error = self.assertRaises(DialogError, serverDialog, contact=ALICE_CONTACT + ", <sip:a@b>")
        self.assertEqual(error.status, 400)

    def test_nonSIPContact(self):
        """
        A Contact that is not a SIP URI cannot be a remote target: 400.
        """
        error = self.assertRaises(DialogError, serverDialog, contact="<http://example.com/>")
        self.assertEqual(error.status, 400)

    def test_dialogErrorIsParseError(self):
        """
        L{DialogError} is a L{ParseError}, so a transaction user's generic
        handler answers it with its status.
        """
        self.assertTrue(issubclass(DialogError, ParseError))


class ClientDialogTests(SynchronousTestCase):
    """
    L{Dialog.forClient}: the UAC side (RFC 3261 section 12.1.2).
    """

    def test_identifiers(self):
        """
        A UAC dialog has the From tag as local tag and the response's To tag
        as remote tag.
        """
        request = invite()
        dialog = Dialog.forClient(request, answer(request))
        self.assertEqual(dialog.id, (CALL_ID, ALICE_TAG, BOB_TAG))
        self.assertTrue(dialog.isCaller)

    def test_uris(self):
        """
        The UAC's local URI is the From value, its remote URI the To value,
        without tags.
        """
        request = invite()
        dialog = Dialog.forClient(request, answer(request))
        self.assertEqual(Address.parse(dialog.localURI).uri, URI.parse("sip:alice@example.com"))
        self.assertEqual(Address.parse(dialog.remoteURI).uri, URI.parse("sip:bob@example.com"))
        self.assertIsNone(Address.parse(dialog.localURI).tag)
        self.assertIsNone(Address.parse(dialog.remoteURI).tag)

    def test_sequenceNumbers(self):
        """
        The local sequence number is the request's CSeq, the remote one
        empty; the next request has the CSeq after it.
        """
        request = invite(cseq=10)
        dialog = Dialog.forClient(request, answer(request))
        self.assertEqual((dialog.localSeq, dialog.remoteSeq), (10, None))
        self.assertEqual(dialog.createRequest("BYE").cseq(), (11, "BYE"))

    def test_routeSetReversed(self):
        """
        The UAC route set is the response's Record-Route in reverse order.
        """
        request = invite()
        response = answer(request, recordRoutes=[P2, P1])
        dialog = Dialog.forClient(request, response)
        self.assertEqual(dialog.routeSet, [P1, P2])

    def test_remoteTargetAndContact(self):
        """
        The remote target is the response's Contact; the local contact the
        request's.
        """
        request = invite()
        dialog = Dialog.forClient(request, answer(request))
        self.assertEqual(dialog.remoteTarget, URI.parse("sip:bob@192.0.2.4"))
        self.assertEqual(dialog.localContact, ALICE_CONTACT)

    def test_stateFromResponse(self):
        """
        A 2xx makes a confirmed dialog, a 1xx an early one.
        """
        request = invite()
        self.assertEqual(Dialog.forClient(request, answer(request, 200)).state, CONFIRMED)
        self.assertEqual(Dialog.forClient(request, answer(request, 180)).state, EARLY)

    def test_noToTag(self):
        """
        A response without a To tag cannot create a dialog.
        """
        request = invite()
        self.assertRaises(DialogError, Dialog.forClient, request, answer(request, 180, toTag=None))

    def test_noContact(self):
        """
        A response without a Contact cannot create a dialog.
        """
        request = invite()
        self.assertRaises(DialogError, Dialog.forClient, request, answer(request, contact=None))

    def test_confirmReplacesRouteSetAndTarget(self):
        """
        Confirming an early UAC dialog with the 2xx takes the 2xx's route
        set (reversed) and Contact over those of the provisional response.
        """
        request = invite()
        dialog = Dialog.forClient(request, answer(request, 180, recordRoutes=[P1]))
        final = answer(request, 200, contact="<sip:bob@192.0.2.9>", recordRoutes=[P2, P1])
        dialog.confirm(final)
        self.assertEqual(dialog.state, CONFIRMED)
        self.assertEqual(dialog.routeSet, [P1, P2])
        self.assertEqual(dialog.remoteTarget, URI.parse("sip:bob@192.0.2.9"))

    def test_confirmServerIgnoresResponse(self):
        """
        Confirming a UAS dialog leaves its route set and target alone, even
        when a response is given.
        """
        dialog = serverDialog(recordRoutes=[P1])
        dialog.confirm(answer(invite(), recordRoutes=[P2]))
        self.assertEqual(dialog.routeSet, [P1])
        self.assertEqual(dialog.remoteTarget, URI.parse("sip:alice@pc33.example.com"))

    def test_refreshTarget(self):
        """
        A 2xx with a Contact to a target refresh request we sent updates the
        remote target; one without Contact leaves it.
        """
        request = invite()
        dialog = Dialog.forClient(request, answer(request))
        dialog.refreshTarget(answer(request, contact=None))
        self.assertEqual(dialog.remoteTarget, URI.parse("sip:bob@192.0.2.4"))
        dialog.refreshTarget(answer(request, contact="<sip:bob@198.51.100.3:5070>"))
        self.assertEqual(dialog.remoteTarget, URI.parse("sip:bob@198.51.100.3:5070"))


class MatchTests(SynchronousTestCase):
    """
    L{Dialog.matches} (RFC 3261 section 12.2.2).
    """

    def test_incoming(self):
        """
        An incoming request matches when its To tag is the local tag, its
        From tag the remote tag and the Call-ID is the dialog's.
        """
        dialog = serverDialog()
        self.assertTrue(dialog.matches(invite(method="BYE", toTag=BOB_TAG)))
        self.assertFalse(dialog.matches(invite(method="BYE", toTag="other")))
        self.assertFalse(dialog.matches(invite(method="BYE", toTag=BOB_TAG, fromTag="other")))

    def test_otherCallId(self):
        """
        Same tags with another Call-ID do not match.
        """
        dialog = serverDialog()
        dialog.callId = "other@example.com"
        self.assertFalse(dialog.matches(invite(method="BYE", toTag=BOB_TAG)))

    def test_outgoing(self):
        """
        An outgoing message (a response to a request we sent) matches with
        From and To tags the other way round.
        """
        request = invite()
        dialog = Dialog.forClient(request, answer(request))
        self.assertTrue(dialog.matches(answer(request), incoming=False))
        self.assertFalse(dialog.matches(answer(request), incoming=True))

    def test_malformed(self):
        """
        A message whose From cannot be parsed matches no dialog.
        """
        dialog = serverDialog()
        request = invite(method="BYE", toTag=BOB_TAG)
        request.headers.set("From", "<sip:alice@example.com")
        self.assertFalse(dialog.matches(request))


class ReceiveRequestTests(SynchronousTestCase):
    """
    L{Dialog.receiveRequest} (RFC 3261 section 12.2.2).
    """

    def test_inOrder(self):
        """
        A request with a higher CSeq is accepted and becomes the remote
        sequence number.
        """
        dialog = serverDialog(cseq=5)
        dialog.receiveRequest(invite(method="INFO", toTag=BOB_TAG, cseq=6))
        self.assertEqual(dialog.remoteSeq, 6)

    def test_outOfOrder(self):
        """
        A request with a CSeq lower than the remote sequence number is
        refused with 500 and does not change it.
        """
        dialog = serverDialog(cseq=5)
        error = self.assertRaises(
            DialogError, dialog.receiveRequest, invite(method="BYE", toTag=BOB_TAG, cseq=4))
        self.assertEqual(error.status, 500)
        self.assertEqual(dialog.remoteSeq, 5)

    def test_ackAndCancelDoNotCount(self):
        """
        ACK and CANCEL carry the CSeq of the INVITE they belong to and
        neither are checked against nor update the remote sequence number.
        """
        dialog = serverDialog(cseq=5)
        dialog.receiveRequest(invite(method="INFO", toTag=BOB_TAG, cseq=8))
        dialog.receiveRequest(invite(method="ACK", toTag=BOB_TAG, cseq=5))
        dialog.receiveRequest(invite(method="CANCEL", toTag=BOB_TAG, cseq=5))
        self.assertEqual(dialog.remoteSeq, 8)

    def test_emptyRemoteSequence(self):
        """
        On a UAC dialog, whose remote sequence number is empty, the first
        request sets it whatever its value.
        """
        request = invite(cseq=100)
        dialog = Dialog.forClient(request, answer(request))
        dialog.receiveRequest(invite(method="BYE", toTag=BOB_TAG, cseq=1))
        self.assertEqual(dialog.remoteSeq, 1)

    def test_targetRefresh(self):
        """
        A re-INVITE with a Contact replaces the remote target.
        """
        dialog = serverDialog(cseq=5)
        dialog.receiveRequest(
            invite(toTag=BOB_TAG, cseq=6, contact="<sip:alice@198.51.100.8:5080>"))
        self.assertEqual(dialog.remoteTarget, URI.parse("sip:alice@198.51.100.8:5080"))

    def test_targetRefreshWithoutContact(self):
        """
        A re-INVITE without a Contact leaves the remote target.
        """
        dialog = serverDialog(cseq=5)
        dialog.receiveRequest(invite(toTag=BOB_TAG, cseq=6, contact=None))
        self.assertEqual(dialog.remoteTarget, URI.parse("sip:alice@pc33.example.com"))

    def test_notATargetRefresh(self):
        """
        A Contact in an INFO, which is not a target refresh request, leaves
        the remote target.
        """
        dialog = serverDialog(cseq=5)
        dialog.receiveRequest(
            invite(method="INFO", toTag=BOB_TAG, cseq=6, contact="<sip:alice@198.51.100.8>"))
        self.assertEqual(dialog.remoteTarget, URI.parse("sip:alice@pc33.example.com"))

    def test_outOfOrderReinviteDoesNotRefresh(self):
        """
        A re-INVITE refused for its CSeq does not change the remote target.
        """
        dialog = serverDialog(cseq=5)
        self.assertRaises(
            DialogError, dialog.receiveRequest,
            invite(toTag=BOB_TAG, cseq=3, contact="<sip:alice@198.51.100.8>"))
        self.assertEqual(dialog.remoteTarget, URI.parse("sip:alice@pc33.example.com"))


class CreateRequestTests(SynchronousTestCase):
    """
    L{Dialog.createRequest}, L{Dialog.requestTarget} and L{Dialog.nextHop}
    (RFC 3261 section 12.2.1.1).
    """

    def test_noRouteSet(self):
        """
        Without a route set the request goes to the remote target, with no
        Route, and the next hop is the remote target.
        """
        dialog = serverDialog()
        bye = dialog.createRequest("BYE")
        self.assertEqual(bye.uri, URI.parse("sip:alice@pc33.example.com"))
        self.assertEqual(bye.headers.getAll("Route"), [])
        self.assertEqual(dialog.nextHop(), URI.parse("sip:alice@pc33.example.com"))

    def test_looseRouting(self):
        """
        When the first hop is a loose router (;lr) the Request-URI is the
        remote target and the Route the whole route set in order.
        """
        dialog = serverDialog(recordRoutes=[P1, P2])
        bye = dialog.createRequest("BYE")
        self.assertEqual(bye.uri, URI.parse("sip:alice@pc33.example.com"))
        self.assertEqual(bye.headers.getAll("Route"), [P1, P2])
        self.assertEqual(dialog.nextHop(), URI.parse("sip:p1.example.com;lr"))

    def test_strictRouting(self):
        """
        When the first hop is a strict router the Request-URI is its URI and
        the Route holds the rest of the route set followed by the remote
        target; the next hop is still the first route.
        """
        dialog = serverDialog(recordRoutes=["<sip:strict.example.com>", P2])
        bye = dialog.createRequest("BYE")
        self.assertEqual(bye.uri, URI.parse("sip:strict.example.com"))
        self.assertEqual(
            bye.headers.getAll("Route"), [P2, "<sip:alice@pc33.example.com>"])
        self.assertEqual(dialog.nextHop(), URI.parse("sip:strict.example.com"))

    def test_requestTarget(self):
        """
        L{Dialog.requestTarget} gives what createRequest uses.
        """
        dialog = serverDialog(recordRoutes=[P1])
        self.assertEqual(
            dialog.requestTarget(), (URI.parse("sip:alice@pc33.example.com"), [P1]))

    def test_headers(self):
        """
        An in-dialog request has the dialog's From (local tag), To (remote
        tag), Call-ID, Max-Forwards 70 and a Via with a new magic cookie
        branch.
        """
        dialog = serverDialog()
        info = dialog.createRequest("INFO")
        self.assertEqual(info.fromAddress().tag, BOB_TAG)
        self.assertEqual(info.fromAddress().uri, URI.parse("sip:bob@example.com"))
        self.assertEqual(info.toAddress().tag, ALICE_TAG)
        self.assertEqual(info.toAddress().uri, URI.parse("sip:alice@example.com"))
        self.assertEqual(info.callId, CALL_ID)
        self.assertEqual(info.maxForwards(), 70)
        self.assertTrue(info.topVia.branch.startswith(MAGIC_COOKIE))
        self.assertNotEqual(info.topVia.branch, dialog.createRequest("INFO").topVia.branch)

    def test_noRemoteTag(self):
        """
        With no remote tag (an RFC 2543 peer) the To has no tag.
        """
        dialog = serverDialog(fromTag=None)
        self.assertIsNone(dialog.createRequest("BYE").toAddress().tag)

    def test_cseqIncrements(self):
        """
        Each request but ACK and CANCEL takes the next local sequence
        number; ACK and CANCEL take the one they are given.
        """
        dialog = serverDialog()
        self.assertEqual(dialog.createRequest("INFO").cseq(), (1, "INFO"))
        self.assertEqual(dialog.createRequest("INVITE").cseq(), (2, "INVITE"))
        self.assertEqual(dialog.createRequest("ACK", cseq=2).cseq(), (2, "ACK"))
        self.assertEqual(dialog.createRequest("BYE").cseq(), (3, "BYE"))
        self.assertEqual(dialog.localSeq, 3)

    def test_contact(self):
        """
        Requests other than ACK, CANCEL and BYE carry the local contact.
        """
        dialog = serverDialog()
        self.assertEqual(dialog.createRequest("INVITE").headers.get("Contact"), BOB_CONTACT)
        self.assertIsNone(dialog.createRequest("BYE").headers.get("Contact"))
        self.assertIsNone(dialog.createRequest("ACK", cseq=1).headers.get("Contact"))

    def test_body(self):
        """
        A body gets a Content-Type, application/sdp unless told otherwise,
        and extra headers are added.
        """
        dialog = serverDialog()
        sdp = dialog.createRequest("INVITE", body=b"v=0\r\n")
        self.assertEqual((sdp.body, sdp.headers.get("Content-Type")), (b"v=0\r\n", "application/sdp"))
        info = dialog.createRequest(
            "INFO", body=b"Signal=1\r\n", contentType="application/dtmf-relay",
            headers=[("Subject", "dtmf")])
        self.assertEqual(info.headers.get("Content-Type"), "application/dtmf-relay")
        self.assertEqual(info.headers.get("Subject"), "dtmf")
        self.assertIsNone(dialog.createRequest("BYE").headers.get("Content-Type"))

    def test_roundTrip(self):
        """
        A created request serializes and parses back to an equal request.
        """
        dialog = serverDialog(recordRoutes=[P1, P2])
        bye = dialog.createRequest("BYE")
        parsed = parseMessage(bye.toBytes())
        self.assertEqual(parsed.uri, bye.uri)
        self.assertEqual(parsed.headers.getAll("Route"), [P1, P2])
        self.assertEqual(parsed.cseq(), (1, "BYE"))

    def test_peerMatches(self):
        """
        A request the UAS creates matches the UAC's dialog as incoming, and
        the other way round.
        """
        request = invite(recordRoutes=[P1])
        server = Dialog.forServer(request, BOB_TAG, BOB_CONTACT)
        client = Dialog.forClient(request, answer(request, recordRoutes=[P1]))
        self.assertTrue(client.matches(server.createRequest("BYE")))
        self.assertTrue(server.matches(client.createRequest("BYE")))


class CallIdTests(SynchronousTestCase):
    """
    L{newCallId}.
    """

    def test_unique(self):
        """
        Call-IDs end with the host and differ from one call to the next.
        """
        first, second = newCallId("192.0.2.1"), newCallId("192.0.2.1")
        self.assertTrue(first.endswith("@192.0.2.1"))
        self.assertNotEqual(first, second)
