"""
Tests for L{appliance.rtsp.store}.
"""

import os

from twisted.trial.unittest import SynchronousTestCase
from zope.interface.verify import verifyObject

from appliance.interfaces import IMediaStore
from appliance.media import audiofile
from appliance.rtsp.store import InvalidPath, MediaNotFound, MediaStore


class MediaStoreTests(SynchronousTestCase):
    """
    Paths, confinement, recording, playing, listing and deleting.
    """

    def setUp(self):
        self.base = os.path.abspath(self.mktemp())
        self.store = MediaStore(os.path.join(self.base, "media"))

    def test_interface(self):
        """
        L{MediaStore} provides L{IMediaStore}.
        """
        self.assertTrue(verifyObject(IMediaStore, self.store))

    def test_resolve(self):
        """
        A user / folder / file path maps to the file under the root.
        """
        media = self.store.resolve("/bob/inbox/6532.au")
        self.assertEqual((media.owner, media.folder, media.name), ("bob", "inbox", "6532.au"))
        self.assertEqual(media.filename, os.path.join(self.base, "media", "bob", "inbox", "6532.au"))
        self.assertEqual(self.store.resolve("/bob%40example.test/inbox/1.wav").owner, "bob@example.test")

    def test_traversalRefused(self):
        """
        Dot segments (plain or percent-encoded), absolute and short paths,
        other extensions and odd characters are refused.
        """
        for path in [
            "/bob/../alice/1.au", "/bob/%2e%2e/x/1.au", "/%2E%2E/%2e%2e/etc/passwd",
            "/bob/inbox/..", "//etc/passwd.au", "/bob/inbox/1.au/extra", "/bob/1.au",
            "/bob/inbox/passwd", "bob/inbox/1.au", "/bob/inbox/a%2fb.au",
            "/bob/inbox/%00.au", "/bob/in%5cbox/1.au", "/bob/inbox/%ff.au", "/bob/./inbox.au",
        ]:
            self.assertRaises(InvalidPath, self.store.resolve, path)

    def test_symlinkOutsideRefused(self):
        """
        A symbolic link inside the store that leads outside it is refused.
        """
        outside = os.path.join(self.base, "outside")
        os.makedirs(outside)
        os.makedirs(os.path.join(self.base, "media", "bob"))
        os.symlink(outside, os.path.join(self.base, "media", "bob", "inbox"))
        self.assertRaises(InvalidPath, self.store.resolve, "/bob/inbox/1.au")

    def test_recordPlayListDelete(self):
        """
        A recorded file plays back, is listed, and is gone once deleted.
        """
        media = self.store.resolve("/bob/inbox/1.au")
        self.assertFalse(self.store.exists(media))
        writer = self.store.openForRecord(media, "PCMU")
        writer.write(b"\x01" * 160)
        writer.close()
        self.assertTrue(self.store.exists(media))
        with self.store.openForPlay(media) as reader:
            self.assertEqual(reader.read(), b"\x01" * 160)
        self.assertEqual(self.store.list("bob", "inbox"), ["1.au"])
        self.assertTrue(self.store.delete(media))
        self.assertFalse(self.store.delete(media))
        self.assertRaises(MediaNotFound, self.store.openForPlay, media)
        self.assertEqual(self.store.list("carol", "inbox"), [])

    def test_playBadFile(self):
        """
        A file that is not audio is reported as not found.
        """
        media = self.store.resolve("/bob/inbox/2.au")
        os.makedirs(os.path.dirname(media.filename))
        with open(media.filename, "wb") as f:
            f.write(b"garbage")
        self.assertRaises(MediaNotFound, self.store.openForPlay, media)
        audiofile.writeFile(media.filename, b"")
        with self.store.openForPlay(media) as reader:
            self.assertEqual(reader.length, 0)
