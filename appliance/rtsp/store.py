"""
The media store (L{IMediaStore}): C{<data_dir>/media/<user>/<folder>/<id>.au}.

Request paths come from the network, so they are checked strictly before
they come near the file system: percent-decoding happens exactly once, the
path must have exactly three segments of safe characters (user, folder,
file name with an C{.au} or C{.wav} extension), C{.} and C{..} are refused
(also when encoded as C{%2e%2e}), and the resolved real path, symbolic links
followed, must still lie inside the store's root.
"""

import os
import re
from urllib.parse import unquote_to_bytes

import attrs
from zope.interface import implementer

from appliance.interfaces import IMediaStore
from appliance.media.audiofile import AudioFormatError, AudioReader, AudioWriter

_SEGMENT = re.compile(r"^[A-Za-z0-9_~+@-][A-Za-z0-9._~+@-]{0,127}$")
_EXTENSIONS = (".au", ".wav")


class InvalidPath(ValueError):
    """
    A request path that does not name a file of the store.
    """


class MediaNotFound(LookupError):
    """
    No such file in the store (or not a readable audio file).
    """


@attrs.frozen
class MediaPath:
    """
    A checked store path.

    @ivar owner: the mailbox owner, as in the URL (C{bob} or C{bob@domain}).
    @ivar folder: such as C{inbox} or C{greetings}.
    @ivar name: the file name, such as C{6532.au}.
    @ivar filename: the absolute file system path.
    """

    owner: str
    folder: str
    name: str
    filename: str

    @property
    def path(self):
        """
        The URL path, C{/owner/folder/name}.
        """
        return "/%s/%s/%s" % (self.owner, self.folder, self.name)


def splitPath(path):
    """
    Decode and split a URL path into its checked segments.

    @raise InvalidPath: for encodings, segments or characters not allowed.
    """
    try:
        decoded = unquote_to_bytes(path).decode("utf-8")
    except UnicodeDecodeError:
        raise InvalidPath("path is not UTF-8")
    if "\\" in decoded or "\x00" in decoded:
        raise InvalidPath("forbidden character in path")
    if not decoded.startswith("/"):
        raise InvalidPath("path is not absolute")
    segments = decoded[1:].split("/")
    for segment in segments:
        if segment in (".", ".."):
            raise InvalidPath("dot segment in path")
        if not _SEGMENT.match(segment):
            raise InvalidPath("bad path segment %r" % (segment[:40],))
    return segments


@implementer(IMediaStore)
class MediaStore:
    """
    Files under one root directory.

    @param root: C{<data_dir>/media}; created on first write.
    """

    def __init__(self, root):
        self.root = os.path.abspath(root)

    def resolve(self, path):
        segments = splitPath(path)
        if len(segments) != 3:
            raise InvalidPath("expected /user/folder/file")
        owner, folder, name = segments
        if os.path.splitext(name)[1].lower() not in _EXTENSIONS:
            raise InvalidPath("only .au and .wav files are stored")
        filename = os.path.join(self.root, owner, folder, name)
        self._confine(filename)
        return MediaPath(owner, folder, name, filename)

    def _confine(self, filename):
        root = os.path.realpath(self.root)
        real = os.path.realpath(filename)
        if os.path.commonpath([root, real]) != root or real == root:
            raise InvalidPath("path leaves the media store")

    def exists(self, media):
        self._confine(media.filename)
        return os.path.isfile(media.filename)

    def openForPlay(self, media):
        self._confine(media.filename)
        try:
            return AudioReader(media.filename)
        except (OSError, AudioFormatError) as e:
            raise MediaNotFound("%s: %s" % (media.path, e))

    def openForRecord(self, media, encoding):
        directory = os.path.dirname(media.filename)
        os.makedirs(directory, mode=0o750, exist_ok=True)
        self._confine(media.filename)
        return AudioWriter(media.filename, encoding)

    def list(self, owner, folder):
        directory = os.path.join(self.root, owner, folder)
        splitPath("/%s/%s" % (owner, folder))
        self._confine(directory)
        try:
            names = os.listdir(directory)
        except OSError:
            return []
        return sorted(
            name for name in names
            if os.path.splitext(name)[1].lower() in _EXTENSIONS
        )

    def delete(self, media):
        self._confine(media.filename)
        try:
            os.unlink(media.filename)
        except FileNotFoundError:
            return False
        return True
