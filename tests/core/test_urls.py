"""Base URLs get ``/v1``; follow-up links are rebased so the token stays on the configured host."""

from __future__ import annotations

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from areplicate._core.urls import DEFAULT_BASE_URL, normalize_base_url, rebase, same_origin

LOWER = "abcdefghijklmnopqrstuvwxyz"
SEGMENT = LOWER + LOWER.upper() + "0123456789_-"
BASES = st.sampled_from(
    [
        "https://api.replicate.com/v1",
        "https://api.cometapi.com/replicate/v1",
        "http://127.0.0.1:8123/v1",
        "http://[::1]:9000/v1",
    ]
)


class TestNormalizeBaseUrl:
    @pytest.mark.parametrize(
        ("given", "expected"),
        [
            ("https://api.replicate.com", DEFAULT_BASE_URL),
            ("https://api.replicate.com/", DEFAULT_BASE_URL),
            ("https://api.replicate.com/v1", DEFAULT_BASE_URL),
            ("https://api.replicate.com/v1/", DEFAULT_BASE_URL),
            ("  https://api.replicate.com/v1//  ", DEFAULT_BASE_URL),
            ("https://api.cometapi.com/replicate", "https://api.cometapi.com/replicate/v1"),
            ("https://api.cometapi.com/replicate/v1", "https://api.cometapi.com/replicate/v1"),
            ("http://127.0.0.1:8123", "http://127.0.0.1:8123/v1"),
            ("https://host/v10", "https://host/v10/v1"),
        ],
    )
    def test_adds_v1_once(self, given: str, expected: str) -> None:
        assert normalize_base_url(given) == expected
        assert normalize_base_url(normalize_base_url(given)) == expected

    @pytest.mark.parametrize(
        "bad",
        ["", "api.replicate.com", "/v1", "ftp://api.replicate.com", "https://", "https://:443/",
         "https://host:port/", "http://[::1/"],
    )  # fmt: skip
    def test_not_an_absolute_http_url(self, bad: str) -> None:
        with pytest.raises(ValueError, match="absolute http"):
            normalize_base_url(bad)

    @pytest.mark.parametrize("bad", ["https://h/v1?x=1", "https://h/v1#frag"])
    def test_no_query_or_fragment(self, bad: str) -> None:
        with pytest.raises(ValueError, match="query or fragment"):
            normalize_base_url(bad)

    @given(
        scheme=st.sampled_from(["http", "https"]),
        host=st.builds(
            "".join,
            st.tuples(
                st.sampled_from(LOWER),
                st.text(LOWER + "0123456789-", max_size=20),
                st.sampled_from(["", ".com", ".example", ".replicate.com"]),
            ),
        ),
        path=st.lists(st.text(LOWER + "0123456789_-", min_size=1, max_size=8), max_size=3),
        slashes=st.integers(0, 2),
    )
    def test_always_ends_in_v1_on_the_same_host(
        self, scheme: str, host: str, path: list[str], slashes: int
    ) -> None:
        url = f"{scheme}://{host}" + "".join(f"/{p}" for p in path) + "/" * slashes
        base = normalize_base_url(url)
        # /v1 is added exactly when the path does not already end in it (a path of /v1/v1 is kept)
        trimmed = url.rstrip("/")
        assert base == (trimmed if trimmed.endswith("/v1") else f"{trimmed}/v1")
        assert same_origin(base, url)


class TestRebase:
    @pytest.mark.parametrize(
        ("link", "expected"),
        [
            (
                "https://api.replicate.com/v1/predictions/abc",
                "https://api.cometapi.com/replicate/v1/predictions/abc",
            ),
            (
                "https://api.replicate.com/v1/predictions/abc/cancel",
                "https://api.cometapi.com/replicate/v1/predictions/abc/cancel",
            ),
            (
                "https://api.replicate.com/v1/models?cursor=cD0yMDIzLTExLTE1",
                "https://api.cometapi.com/replicate/v1/models?cursor=cD0yMDIzLTExLTE1",
            ),
            (
                "https://api.cometapi.com/replicate/v1/predictions?cursor=x&y=1",
                "https://api.cometapi.com/replicate/v1/predictions?cursor=x&y=1",
            ),
            ("/v1/predictions/abc", "https://api.cometapi.com/replicate/v1/predictions/abc"),
            ("https://elsewhere.example/abc", "https://api.cometapi.com/replicate/v1/abc"),
            ("https://x/v1/files/a#frag", "https://api.cometapi.com/replicate/v1/files/a"),
            (
                "http://[bad/v1/predictions/a?c=1",
                "https://api.cometapi.com/replicate/v1/predictions/a?c=1",
            ),
        ],
    )
    def test_examples(self, link: str, expected: str) -> None:
        assert rebase(link, "https://api.cometapi.com/replicate/v1") == expected

    @given(link=st.text(max_size=120), base=BASES)
    @example(link="https://evil.example/v1//evil.example/x", base=DEFAULT_BASE_URL)
    @example(link="https://evil.example/v1/@evil.example/x", base=DEFAULT_BASE_URL)
    @example(link="https://evil.example/v1/..//evil.example", base=DEFAULT_BASE_URL)
    @example(link="//evil.example/v1/x", base=DEFAULT_BASE_URL)
    def test_any_link_lands_on_our_own_host(self, link: str, base: str) -> None:
        rebased = rebase(link, base)
        assert rebased.startswith(base + "/")
        assert same_origin(rebased, base)

    @given(
        host=st.sampled_from(["api.replicate.com", "evil.example", "api.cometapi.com"]),
        segments=st.lists(st.text(SEGMENT, min_size=1, max_size=12), min_size=1, max_size=5),
        query=st.just("") | st.text(SEGMENT + "%=", max_size=20).map(lambda c: f"cursor={c}"),
    )
    def test_path_after_v1_and_query_are_kept(
        self, host: str, segments: list[str], query: str
    ) -> None:
        tail = "/".join(segments) + (f"?{query}" if query else "")
        assert rebase(f"https://{host}/v1/{tail}", DEFAULT_BASE_URL) == f"{DEFAULT_BASE_URL}/{tail}"


class TestSameOrigin:
    @pytest.mark.parametrize(
        ("url", "same"),
        [
            ("https://api.replicate.com/v1/predictions", True),
            ("https://api.replicate.com/", True),
            ("https://API.Replicate.com/v1", True),
            ("https://api.replicate.com:443/v1", True),
            ("HTTPS://api.replicate.com/v1", True),
            ("http://api.replicate.com/v1", False),
            ("https://api.replicate.com:8443/v1", False),
            ("https://stream.replicate.com/v1/files/abc", False),
            ("https://replicate.delivery/pbxt/abc/out-0.png", False),
            ("https://api.replicate.com.evil.example/v1", False),
            ("https://api.replicate.com@evil.example/v1", False),
            ("https://api.replicate.com:443@evil.example/v1", False),
            ("https://evil.example/?https://api.replicate.com/v1", False),
            ("https://evil.example/api.replicate.com/v1", False),
            ("https://evil.example\\@api.replicate.com/v1", False),
            ("https://api.replicate.com:bad/v1", False),
            ("/v1/predictions", False),
            ("", False),
            ("data:text/plain,hi", False),
        ],
    )
    def test_cases(self, url: str, same: bool) -> None:
        assert same_origin(url, DEFAULT_BASE_URL) is same

    def test_explicit_default_port_in_base(self) -> None:
        assert same_origin("https://api.replicate.com/v1/x", "https://api.replicate.com:443/v1")
        assert same_origin("http://127.0.0.1/v1/x", "http://127.0.0.1:80/v1")
        assert not same_origin("http://127.0.0.1:8000/v1/x", "http://127.0.0.1/v1")

    @given(st.text(max_size=80))
    def test_never_raises(self, url: str) -> None:
        assert same_origin(url, DEFAULT_BASE_URL) in (True, False)


class TestCredentialsInTheBaseURL:
    @pytest.mark.parametrize(
        "url",
        [
            "https://user:pass@api.replicate.com",
            "https://user:pass@api.replicate.com/v1",
            "https://token@api.replicate.com/v1/",
            "http://:secret@127.0.0.1:8080/v1",
            "https://u:p%40ss@proxy.example/replicate",
        ],
    )
    def test_refused_with_what_to_do_and_without_the_password(self, url: str) -> None:
        with pytest.raises(ValueError, match="user name or password") as info:
            normalize_base_url(url)
        message = str(info.value)
        assert "api_token" in message
        assert "pass" not in message.replace("password", "")
        assert "secret" not in message

    def test_a_password_is_not_shown_in_other_errors_either(self) -> None:
        with pytest.raises(ValueError, match="query") as info:
            normalize_base_url("https://me:hunter2@api.replicate.com/v1?x=1")
        assert "hunter2" not in str(info.value)
        with pytest.raises(ValueError, match="absolute") as info:
            normalize_base_url("https://me:hunter2@api.replicate.com:notaport/v1")
        assert "hunter2" not in str(info.value)

    def test_an_at_sign_in_the_path_is_fine(self) -> None:
        assert normalize_base_url("https://proxy.example/@team") == "https://proxy.example/@team/v1"
