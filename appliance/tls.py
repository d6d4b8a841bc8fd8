"""
The appliance's TLS identity: the certificate and key that SIP over TLS and
HTTPS present.

An operator configures C{[appliance] tls_cert} and C{tls_key}; without them
the appliance makes a self-signed certificate on first start, valid for the
configured domains and the loopback addresses, and keeps it in the data
directory so that clients can pin it.
"""

import datetime
import ipaddress
import os

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from twisted.internet import ssl
from twisted.logger import Logger

from appliance import logs

_log = Logger(observer=logs.observer)

VALIDITY = datetime.timedelta(days=825)


class TLSError(Exception):
    """
    The configured certificate or key cannot be used.
    """


def makeSelfSigned(names, addresses=("127.0.0.1", "::1"), now=None):
    """
    Make a self-signed certificate for C{names} (DNS names) and
    C{addresses} (IP addresses), with a new P-256 key.

    @return: C{(certificatePEM, keyPEM)} as bytes.
    """
    now = now or datetime.datetime.now(datetime.timezone.utc)
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, names[0])])
    alternatives = [x509.DNSName(name) for name in names] + [
        x509.IPAddress(ipaddress.ip_address(address)) for address in addresses
    ]
    certificate = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + VALIDITY)
        .add_extension(x509.SubjectAlternativeName(alternatives), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    return (
        certificate.public_bytes(serialization.Encoding.PEM),
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        ),
    )


def ensureCertificate(certPath, keyPath, names):
    """
    Make a self-signed certificate at C{certPath} / C{keyPath} unless both
    exist; the key file is readable by its owner only.
    """
    if os.path.exists(certPath) and os.path.exists(keyPath):
        return False
    os.makedirs(os.path.dirname(certPath), mode=0o700, exist_ok=True)
    certificate, key = makeSelfSigned(names)
    descriptor = os.open(keyPath, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "wb") as f:
        f.write(key)
    with open(certPath, "wb") as f:
        f.write(certificate)
    _log.info(
        "Generated a self-signed TLS certificate for {names} in {path}",
        names=", ".join(names), path=certPath,
    )
    return True


def serverContext(certPath, keyPath):
    """
    Load the certificate and key into server context options for
    L{twisted.internet.ssl}, TLS 1.2 or newer.

    @raise TLSError: when either cannot be read or they do not match.
    """
    try:
        with open(certPath, "rb") as f:
            certificate = f.read()
        with open(keyPath, "rb") as f:
            key = f.read()
    except OSError as e:
        raise TLSError("cannot read TLS certificate or key: %s" % (e,))
    try:
        identity = ssl.PrivateCertificate.loadPEM(certificate + b"\n" + key)
        return identity.options()
    except Exception as e:
        raise TLSError(
            "TLS certificate %s and key %s cannot be used: %s"
            % (certPath, keyPath, e)
        )
