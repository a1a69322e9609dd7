import pytest

from eco2 import url_guard
from eco2.errors import InvalidInput

ALLOWED = ("cdn.eco2.local",)


async def test_an_allow_listed_host_is_accepted_without_a_lookup() -> None:
    await url_guard.check("https://CDN.eco2.local/scan/a.jpg", ALLOWED)


@pytest.mark.parametrize(
    ("url", "why"),
    [
        ("file:///etc/passwd", "http"),
        ("https://127.0.0.1/a.jpg", "IP address"),
        ("https://[::1]/a.jpg", "IP address"),
        ("http://169.254.169.254/latest/meta-data", "IP address"),
        ("https://localhost/a.jpg", "non-public"),
        ("https:///nohost.jpg", "no host"),
        ("https://a:b@cdn.eco2.local/a.jpg", "credentials"),
        ("https://cdn.eco2.local/" + "a" * 2100, "longer than"),
    ],
)
async def test_unsafe_urls_are_refused_with_a_reason(url: str, why: str) -> None:
    with pytest.raises(InvalidInput, match=why) as refused:
        await url_guard.check(url, ALLOWED)
    assert refused.value.code == "invalid_image_url"
