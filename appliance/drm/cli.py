"""
C{appliancectl drm ...}: protect, play, grant, revoke and show rights of
protected messages (docs/drm.md).

    appliancectl drm protect IN.wav --from alice@example.test --to bob@example.test \\
        [--plays N] [--expires 2026-12-31T00:00:00Z | --expires-days D] [--forward DEPTH | --no-forward] \\
        -o OUT.adrm
    appliancectl drm play FILE --user bob@example.test [--password P] -o OUT.wav
    appliancectl drm grant FILE|KEY-ID --user bob@example.test --to carol@example.test [--plays N] ...
    appliancectl drm revoke FILE|KEY-ID --user alice@example.test [--holder bob@example.test]
    appliancectl drm rights FILE|KEY-ID --user alice@example.test

All of them talk to the license server over HTTPS, trusting only the
appliance's certificate (C{--ca}, default the configured or generated one).
"""

import datetime
import getpass
import json
import os
import tempfile
import time
import uuid

from appliance.drm.client import ClientError, LicenseClient, baseUrlOf, playPackage
from appliance.drm.license import LicenseError, b64encode, loadPublicKey
from appliance.drm.package import DEFAULT_CHUNK_SIZE, PackageError, encryptChunks, newHeader, newKey, readHeader
from appliance.drm.service import licenseUrl

_CONTENT_TYPES = {"wav": "audio/wav", "au": "audio/basic"}


class DRMCommandError(Exception):
    """
    A failure reported in one line, exit status 1.
    """


def addParser(areas):
    """
    Add the C{drm} area to appliancectl's argument parser.
    """
    drm = areas.add_parser("drm", help="protected messages: package, play, delegate, revoke")
    commands = drm.add_subparsers(dest="command", required=True)

    def common(parser, user=True):
        parser.add_argument("--ca", help="the certificate to trust (default: the appliance's)")
        parser.add_argument("--server", help="the license server, https://HOST:PORT (default: from "
                            "the package or [drm])")
        if user:
            parser.add_argument("--user", required=True, help="name@domain")
            parser.add_argument("--password", help="the password (default: prompt or stdin)")

    def limits(parser):
        parser.add_argument("--plays", type=int, help="number of plays")
        parser.add_argument("--expires", help="expiry, ISO 8601 (UTC unless a zone is given)")
        parser.add_argument("--expires-days", type=float, help="expiry in days from now")
        parser.add_argument("--forward", type=int, metavar="DEPTH",
                            help="how many times the rights may be passed on")
        parser.add_argument("--no-forward", action="store_true", help="same as --forward 0")

    protect = commands.add_parser("protect", help="package an audio file and deposit its key")
    protect.add_argument("input", help="the audio file (.wav, .au)")
    protect.add_argument("--from", dest="sender", required=True, help="the sender, name@domain")
    protect.add_argument("--to", dest="recipients", action="append", required=True,
                         help="a recipient, name@domain (repeat for several)")
    protect.add_argument("-o", "--output", required=True, help="the protected file to write")
    limits(protect)
    common(protect, user=False)
    protect.set_defaults(drm=protectCommand)

    play = commands.add_parser("play", help="get a license and decrypt a protected file")
    play.add_argument("file", help="the protected file")
    play.add_argument("-o", "--output", required=True, help="the audio file to write")
    play.add_argument("--public-key", help="the server's license signing key (PEM; default: "
                      "<data_dir>/drm/signing.pub, else fetched over the verified connection)")
    common(play)
    play.set_defaults(drm=playCommand)

    grant = commands.add_parser("grant", help="pass on some of your rights")
    grant.add_argument("message", help="the protected file or its key id")
    grant.add_argument("--to", required=True, help="name@domain")
    limits(grant)
    common(grant)
    grant.set_defaults(drm=grantCommand)

    revoke = commands.add_parser("revoke", help="revoke rights, as the sender")
    revoke.add_argument("message", help="the protected file or its key id")
    revoke.add_argument("--holder", help="only this holder (and whom it delegated to)")
    common(revoke)
    revoke.set_defaults(drm=revokeCommand)

    rights = commands.add_parser("rights", help="show the rights on a message (JSON)")
    rights.add_argument("message", help="the protected file or its key id")
    common(rights)
    rights.set_defaults(drm=rightsCommand)


def run(config, options, stdin, stdout, stderr):
    """
    Run a C{drm} command; return the exit status.
    """
    try:
        options.drm(config, options, stdin, stdout)
    except (DRMCommandError, ClientError, LicenseError, PackageError) as e:
        stderr.write("appliancectl: %s\n" % (e,))
        return 1
    except OSError as e:
        stderr.write("appliancectl: %s\n" % (e,))
        return 1
    return 0


def _caFile(config, options):
    if options.ca:
        return options.ca
    return config.appliance.tls_cert or config.dataPath("tls", "cert.pem")


def _password(options, stdin):
    if options.password is not None:
        return options.password
    if stdin.isatty():
        return getpass.getpass("Password for %s: " % (options.user,))
    return stdin.readline().rstrip("\r\n")


def _client(config, options, stdin, server=None, **kwargs):
    base = options.server or server or baseUrlOf(licenseUrl(config.drm))
    if "user" not in kwargs and getattr(options, "user", None):
        kwargs["user"], kwargs["password"] = options.user, _password(options, stdin)
    return LicenseClient(base, _caFile(config, options), **kwargs)


def _expiry(options, default=None):
    if options.expires and options.expires_days is not None:
        raise DRMCommandError("give --expires or --expires-days, not both")
    if options.expires:
        try:
            moment = datetime.datetime.fromisoformat(options.expires.replace("Z", "+00:00"))
        except ValueError:
            raise DRMCommandError("--expires %r is not an ISO 8601 date" % (options.expires,))
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=datetime.timezone.utc)
        return moment.timestamp()
    if options.expires_days is not None:
        return time.time() + options.expires_days * 86400
    return default


def _forward(options, default=None):
    if options.no_forward:
        return 0
    return options.forward if options.forward is not None else default


def _mediaOf(path):
    try:
        from appliance.media.audiofile import AudioReader, formatFor

        container = formatFor(path)
        reader = AudioReader(path)
        try:
            bytesPerSecond = reader.rate * reader.channels * (2 if reader.encoding == "L16" else 1)
            return container, {"format": container, "codec": reader.encoding, "rate": reader.rate,
                               "channels": reader.channels,
                               "duration": round(reader.length / bytesPerSecond, 3)}
        finally:
            reader._file.close()
    except Exception:
        return "raw", {"format": "raw"}


def protectCommand(config, options, stdin, stdout):
    drm = config.drm
    tokenPath = config.dataPath("drm", "service.token")
    try:
        with open(tokenPath) as f:
            token = f.read().strip()
    except OSError as e:
        raise DRMCommandError("cannot read the service token (has the appliance run with the drm "
                              "service?): %s" % (e,))
    container, media = _mediaOf(options.input)
    url = licenseUrl(drm) if not options.server else options.server.rstrip("/") + "/drm/license"
    header = newHeader(url, media, _CONTENT_TYPES.get(container, "application/octet-stream"),
                       DEFAULT_CHUNK_SIZE)
    key = newKey()
    plays = drm.default_play_count if options.plays is None else options.plays
    if plays < 0:
        raise DRMCommandError("--plays must not be negative")
    days = drm.default_expiry_days
    notAfter = _expiry(options, time.time() + days * 86400 if days else None)
    forward = _forward(options, 1 if drm.default_forward else 0)
    rights = {"plays": plays, "forward_depth": forward}
    if notAfter is not None:
        rights["not_after"] = notAfter
    directory = os.path.dirname(os.path.abspath(options.output))
    descriptor, temporary = tempfile.mkstemp(dir=directory, prefix=".drm-")
    try:
        with open(options.input, "rb") as source, os.fdopen(descriptor, "wb") as out:
            for piece in encryptChunks(header, key, iter(lambda: source.read(65536), b"")):
                out.write(piece)
        client = _client(config, options, stdin, token=token)
        try:
            client.call("POST", "/drm/keys", {
                "key_id": header.keyId, "content_id": header.contentId, "owner": options.sender,
                "key": b64encode(key), "rights": {r: rights for r in options.recipients}},
                auth="token")
        finally:
            client.close()
        os.replace(temporary, options.output)
    except BaseException:
        if os.path.exists(temporary):
            os.unlink(temporary)
        raise
    stdout.write("protected %s as %s: key %s for %s (%d plays)\n" % (
        options.input, options.output, header.keyId, ", ".join(options.recipients), plays))


def playCommand(config, options, stdin, stdout):
    with open(options.file, "rb") as f:
        header = readHeader(f)
    client = _client(config, options, stdin, server=baseUrlOf(header.licenseUrl))
    try:
        publicPath = options.public_key or config.dataPath("drm", "signing.pub")
        if options.public_key or os.path.exists(publicPath):
            with open(publicPath, "rb") as f:
                publicKey = loadPublicKey(f.read())
        else:
            publicKey = client.publicKey()
        payload = playPackage(options.file, options.output, client, publicKey, time.time())
    finally:
        client.close()
    rights = payload["rights"]
    stdout.write("played %s into %s: %d plays left\n" % (options.file, options.output,
                                                         rights["plays_left"]))


def _message(config, options, stdin):
    """
    The key id and a client for a command naming a file or a key id.
    """
    try:
        keyId = str(uuid.UUID(options.message))
        server = None
    except ValueError:
        with open(options.message, "rb") as f:
            header = readHeader(f)
        keyId, server = header.keyId, baseUrlOf(header.licenseUrl)
    return keyId, _client(config, options, stdin, server=server)


def _print(stdout, body):
    stdout.write(json.dumps(body, indent=2, sort_keys=True) + "\n")


def grantCommand(config, options, stdin, stdout):
    keyId, client = _message(config, options, stdin)
    document = {"to": options.to}
    if options.plays is not None:
        document["plays"] = options.plays
    notAfter = _expiry(options)
    if notAfter is not None:
        document["not_after"] = notAfter
    forward = _forward(options)
    if forward is not None:
        document["forward_depth"] = forward
    try:
        _print(stdout, client.call("POST", "/drm/keys/%s/grants" % (keyId,), document))
    finally:
        client.close()


def revokeCommand(config, options, stdin, stdout):
    keyId, client = _message(config, options, stdin)
    document = {} if options.holder is None else {"holder": options.holder}
    try:
        body = client.call("POST", "/drm/keys/%s/revoke" % (keyId,), document)
    finally:
        client.close()
    stdout.write("revoked %d holder(s) of %s\n" % (body["revoked"], keyId))


def rightsCommand(config, options, stdin, stdout):
    keyId, client = _message(config, options, stdin)
    try:
        _print(stdout, client.call("GET", "/drm/keys/%s/rights" % (keyId,)))
    finally:
        client.close()
