"""The file-download signature: base64 HMAC-SHA256 of "{owner} {id} {expiry}"."""

from __future__ import annotations

import base64
import hashlib
import hmac

import pytest

from areplicate._core.files_sign import sign_download, verify_download


class TestSignDownload:
    def test_is_the_hmac_the_api_describes(self) -> None:
        expected = base64.b64encode(
            hmac.new(
                b"s3cret", b"mattt cneqzikepnug6xezperrr4z55o 1708515345", hashlib.sha256
            ).digest()
        ).decode()
        assert (
            sign_download("s3cret", "mattt", "cneqzikepnug6xezperrr4z55o", 1708515345) == expected
        )
        assert (
            sign_download(b"s3cret", "mattt", "cneqzikepnug6xezperrr4z55o", 1708515345) == expected
        )

    def test_every_part_changes_it(self) -> None:
        base = sign_download("k", "o", "f", 1)
        assert (
            len(
                {
                    base,
                    sign_download("x", "o", "f", 1),
                    sign_download("k", "p", "f", 1),
                    sign_download("k", "o", "g", 1),
                    sign_download("k", "o", "f", 2),
                }
            )
            == 5
        )

    @pytest.mark.parametrize("expiry", [1.0, "1", True])
    def test_expiry_must_be_whole_seconds(self, expiry: object) -> None:
        with pytest.raises(TypeError, match="whole seconds"):
            sign_download("k", "o", "f", expiry)  # type: ignore[arg-type]

    @pytest.mark.parametrize(
        ("owner", "file_id"), [("", "f"), ("a b", "f"), ("o", ""), ("o", "a/b")]
    )
    def test_bad_owner_or_id(self, owner: str, file_id: str) -> None:
        with pytest.raises(ValueError):
            sign_download("k", owner, file_id, 1)


class TestVerifyDownload:
    def test_accepts_its_own_signature_until_expiry(self) -> None:
        sig = sign_download("k", "o", "f", 100)
        assert verify_download("k", "o", "f", 100, sig, now=100.0)
        assert not verify_download("k", "o", "f", 100, sig, now=100.5)

    def test_rejects_another_signature(self) -> None:
        sig = sign_download("k", "o", "f", 100)
        assert not verify_download("other", "o", "f", 100, sig, now=0)
        assert not verify_download("k", "o", "g", 100, sig, now=0)
        assert not verify_download("k", "o", "f", 100, "", now=0)
