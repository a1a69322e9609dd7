"""The image domain's rules without sockets: keys, signatures, content types, magic bytes."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from urllib.parse import parse_qs, urlsplit

import pytest

from domains.image import model
from eco2.errors import Forbidden, InvalidInput, NotFound, UnsupportedMediaType
from eco2.settings import Settings
from eco2.url_guard import check_shape
from tests.unit.domains.image import samples

ACCEPTED = ("image/jpeg", "image/png", "image/webp", "image/gif")
KEY = "scan/2025/01/31/" + "a" * 32 + ".png"
SECRET = b"test-signing-key"
NOW = datetime(2025, 1, 31, 12, 0, tzinfo=UTC)


def _ticket(**changes: object) -> model.UploadTicket:
    values: dict[str, object] = {
        "key": KEY,
        "expires": int(NOW.timestamp()) + 900,
        "uid": "user-1",
        "content_type": "image/png",
    }
    values.update(changes)
    return model.UploadTicket(**values)  # type: ignore[arg-type]


# --- channels, content types, file names, metadata -------------------------------------------


@pytest.mark.parametrize("channel", ["chat", "scan", "my"])
def test_known_channels_are_accepted(channel: str) -> None:
    assert model.check_channel(channel) == channel


def test_an_unknown_channel_is_not_found_and_the_message_lists_the_channels() -> None:
    with pytest.raises(NotFound, match="chat, scan, my"):
        model.check_channel("avatars")


@pytest.mark.parametrize(
    ("filename", "content_type", "extension"),
    [
        ("bottle.png", "image/png", ".png"),
        ("Bottle.JPG", "image/jpeg", ".jpg"),
        ("can.jpeg", "image/jpeg", ".jpeg"),
        ("dir/sub/anim.gif", "image/gif", ".gif"),
        ("C:\\photos\\x.webp", "image/webp", ".webp"),
    ],
)
def test_the_extension_must_belong_to_the_content_type(
    filename: str, content_type: str, extension: str
) -> None:
    assert model.extension_of(filename, content_type, ACCEPTED) == extension


@pytest.mark.parametrize("filename", ["bottle.jpg", "bottle", ".png", "bottle.png.exe"])
def test_a_mismatching_extension_is_refused_with_the_right_one(filename: str) -> None:
    with pytest.raises(InvalidInput, match=r"\*\.png") as caught:
        model.extension_of(filename, "image/png", ACCEPTED)
    assert caught.value.code == "extension_mismatch"


@pytest.mark.parametrize("content_type", ["image/svg+xml", "text/plain", "image/heic", ""])
def test_a_content_type_outside_the_accepted_list_is_refused_with_the_list(
    content_type: str,
) -> None:
    with pytest.raises(InvalidInput, match="image/jpeg, image/png, image/webp, image/gif"):
        model.extension_of("x.heic", content_type, ACCEPTED)


def test_an_accepted_type_this_service_cannot_verify_is_still_refused() -> None:
    with pytest.raises(InvalidInput, match="not accepted"):
        model.check_content_type("image/x-unknown", (*ACCEPTED, "image/x-unknown"))


@pytest.mark.parametrize("filename", ["", "a" * 252 + ".png" + "x", "bad\x00name.png", "a\nb.png"])
def test_empty_long_or_control_character_file_names_are_refused(filename: str) -> None:
    with pytest.raises(InvalidInput) as caught:
        model.extension_of(filename, "image/png", ACCEPTED)
    assert caught.value.code == "invalid_filename"


def test_small_metadata_passes_and_absent_metadata_is_empty() -> None:
    assert model.check_metadata(None) == {}
    assert model.check_metadata({"source": "camera", "n": 1}) == {"source": "camera", "n": 1}


@pytest.mark.parametrize(
    "metadata",
    [
        {f"k{i}": i for i in range(model.MAX_METADATA_KEYS + 1)},
        {"note": "x" * model.MAX_METADATA_BYTES},
        {"nul": "a\x00b"},
    ],
)
def test_large_or_unstorable_metadata_is_refused(metadata: dict[str, object]) -> None:
    with pytest.raises(InvalidInput, match="metadata"):
        model.check_metadata(metadata)


# --- keys and URLs -----------------------------------------------------------------------------


def test_a_key_is_channel_date_and_a_fresh_id_with_the_extension() -> None:
    upload_id = uuid.UUID(int=7)
    key = model.build_key("chat", ".jpg", NOW, upload_id)
    assert key == f"chat/2025/01/31/{upload_id.hex}.jpg"
    assert model.check_key(key) == key
    assert model.channel_of(key) == "chat"


@pytest.mark.parametrize(
    "key",
    [
        "../etc/passwd",
        "scan/2025/01/31/../../x.png",
        "other/2025/01/31/" + "a" * 32 + ".png",
        "scan/2025/01/31/" + "A" * 32 + ".png",
        "scan/2025/1/31/" + "a" * 32 + ".png",
        KEY + "/more",
        "/" + KEY,
    ],
)
def test_only_keys_of_the_built_shape_are_accepted(key: str) -> None:
    with pytest.raises(NotFound):
        model.check_key(key)


def test_the_cdn_url_is_the_base_plus_the_key() -> None:
    assert model.cdn_url("https://cdn.eco2.local/", KEY) == f"https://cdn.eco2.local/{KEY}"


def test_the_default_cdn_host_is_on_the_scan_pipelines_default_allow_list() -> None:
    defaults = Settings()
    url = model.cdn_url(defaults.image.cdn_base_url, KEY)
    assert defaults.image.cdn_base_url == "https://cdn.eco2.local"
    assert "cdn.eco2.local" in defaults.scan.allowed_image_hosts
    assert check_shape(url, defaults.scan.allowed_image_hosts) == ("cdn.eco2.local", True)


# --- signatures ----------------------------------------------------------------------------------


def test_the_upload_url_is_relative_and_carries_the_signed_parts() -> None:
    ticket = _ticket()
    url = ticket.upload_url(SECRET)
    parts = urlsplit(url)
    assert not parts.scheme
    assert not parts.netloc
    assert parts.path == f"/api/v1/images/upload/{KEY}"
    query = {name: values[0] for name, values in parse_qs(parts.query).items()}
    assert query == {
        "expires": str(ticket.expires),
        "uid": "user-1",
        "ct": "image/png",
        "sig": ticket.signature(SECRET),
    }
    assert len(query["sig"]) == 64
    int(query["sig"], 16)


def test_a_valid_signature_verifies_until_it_expires() -> None:
    ticket = _ticket()
    model.verify_ticket(ticket, ticket.signature(SECRET), SECRET, NOW)
    model.verify_ticket(
        ticket, ticket.signature(SECRET), SECRET, datetime.fromtimestamp(ticket.expires, UTC)
    )
    with pytest.raises(Forbidden, match="expired") as caught:
        model.verify_ticket(ticket, ticket.signature(SECRET), SECRET, NOW + timedelta(seconds=901))
    assert caught.value.code == "upload_url_expired"


@pytest.mark.parametrize(
    "changed",
    [
        {"key": "scan/2025/01/31/" + "b" * 32 + ".png"},
        {"expires": int(NOW.timestamp()) + 9000},
        {"uid": "user-2"},
        {"content_type": "image/jpeg"},
    ],
)
def test_changing_any_signed_part_breaks_the_signature(changed: dict[str, object]) -> None:
    signature = _ticket().signature(SECRET)
    with pytest.raises(Forbidden, match="signature") as caught:
        model.verify_ticket(_ticket(**changed), signature, SECRET, NOW)
    assert caught.value.code == "invalid_signature"


def test_another_signing_key_or_an_altered_digest_is_refused() -> None:
    ticket = _ticket()
    signature = ticket.signature(SECRET)
    for bad in (ticket.signature(b"other-key"), signature[:-1] + "0", "", "zz"):
        if bad == signature:
            continue
        with pytest.raises(Forbidden):
            model.verify_ticket(ticket, bad, SECRET, NOW)


def test_an_expired_url_with_a_forged_expiry_reports_the_signature() -> None:
    stale = _ticket(expires=int(NOW.timestamp()) - 1)
    forged = _ticket(expires=int(NOW.timestamp()) + 3600)
    with pytest.raises(Forbidden) as caught:
        model.verify_ticket(forged, stale.signature(SECRET), SECRET, NOW)
    assert caught.value.code == "invalid_signature"


@pytest.mark.parametrize(
    "query",
    [
        (None, "u", "image/png", "ab"),
        ("123", None, "image/png", "ab"),
        ("123", "u", None, "ab"),
        ("123", "u", "image/png", None),
        ("12x", "u", "image/png", "ab"),
        ("-1", "u", "image/png", "ab"),
    ],
)
def test_an_incomplete_upload_url_is_forbidden(
    query: tuple[str | None, str | None, str | None, str | None],
) -> None:
    with pytest.raises(Forbidden, match="incomplete"):
        model.ticket_of(KEY, *query)


def test_a_complete_query_gives_the_ticket() -> None:
    ticket, sig = model.ticket_of(KEY, "123", "u", "image/png", "ab")
    assert ticket == model.UploadTicket(KEY, 123, "u", "image/png")
    assert sig == "ab"


# --- declared type and magic bytes -------------------------------------------------------------


@pytest.mark.parametrize("header", ["image/png", "IMAGE/PNG", "image/png; charset=binary"])
def test_the_content_type_header_must_be_the_signed_type(header: str) -> None:
    model.check_declared_type(header, "image/png")


@pytest.mark.parametrize("header", [None, "", "image/jpeg", "application/octet-stream"])
def test_another_content_type_header_is_unsupported(header: str | None) -> None:
    with pytest.raises(UnsupportedMediaType, match="Content-Type: image/png"):
        model.check_declared_type(header, "image/png")


@pytest.mark.parametrize(
    ("body", "content_type"),
    [
        (samples.png(), "image/png"),
        (samples.jpeg(), "image/jpeg"),
        (samples.gif(), "image/gif"),
        (samples.webp(), "image/webp"),
    ],
)
def test_real_files_match_their_declared_type(body: bytes, content_type: str) -> None:
    assert model.sniffed_type(body) == content_type
    model.check_magic(body, content_type)


def test_an_animated_png_counts_as_a_png() -> None:
    apng = samples.png()[:33] + b"\x00\x00\x00\x08acTL" + b"\x00" * 12 + samples.png()[33:]
    assert model.sniffed_type(apng) == "image/png"


@pytest.mark.parametrize(
    ("body", "declared", "message"),
    [
        (samples.jpeg(), "image/png", r"not a PNG \(its bytes look like image/jpeg\)"),
        (samples.TEXT, "image/png", "not a PNG .its type is not recognisable"),
        (samples.png(), "image/jpeg", "not a JPEG"),
        (b"", "image/gif", "not a GIF"),
    ],
)
def test_bytes_of_another_type_are_unsupported(body: bytes, declared: str, message: str) -> None:
    with pytest.raises(UnsupportedMediaType, match=message) as caught:
        model.check_magic(body, declared)
    assert caught.value.code == "content_mismatch"


def test_nul_characters_anywhere_in_metadata_are_refused() -> None:
    with pytest.raises(InvalidInput, match="NUL"):
        model.check_metadata({"a": [{"b": ["ok", "bad\x00"]}]})
    with pytest.raises(InvalidInput, match="NUL"):
        model.check_metadata({"key\x00": 1})
