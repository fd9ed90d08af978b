from __future__ import annotations

import copy
import datetime
import pickle
import platform
import socket
import ssl
from pathlib import Path
from urllib.parse import quote

import pytest

from txamqp091._version import __version__
from txamqp091.exceptions import AuthenticationError
from txamqp091.params import (
    ConnectionParameters,
    ExternalCredentials,
    PlainCredentials,
    SSLOptions,
    URLParameters,
    apply_tcp_options,
    client_properties,
    default_ssl_context,
    normalize_parameters,
)

# -- credentials ---------------------------------------------------------------------


def test_plain_credentials_response_is_nul_separated_utf8() -> None:
    creds = PlainCredentials("üser", "pässword")
    assert creds.mechanism == "PLAIN"
    assert creds.response_for(b"AMQPLAIN PLAIN") == b"\0\xc3\xbcser\0p\xc3\xa4ssword"
    assert creds.response_for("PLAIN EXTERNAL") == b"\0\xc3\xbcser\0p\xc3\xa4ssword"


def test_plain_credentials_refuse_when_broker_does_not_offer_plain() -> None:
    with pytest.raises(AuthenticationError, match="EXTERNAL"):
        PlainCredentials("u", "p").response_for(b"EXTERNAL")


def test_plain_credentials_reject_nul_and_non_str() -> None:
    with pytest.raises(ValueError, match="username"):
        PlainCredentials("a\0b", "p")
    with pytest.raises(ValueError, match="password"):
        PlainCredentials("u", "p\0")
    with pytest.raises(ValueError, match="password"):
        PlainCredentials("u", 5)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="erase_on_connect"):
        PlainCredentials("u", "p", erase_on_connect="yes")  # type: ignore[arg-type]


def test_plain_credentials_repr_hides_password_and_eq_compares_all() -> None:
    creds = PlainCredentials("alice", "s3cret-pw")
    assert "s3cret-pw" not in repr(creds)
    assert "alice" in repr(creds)
    assert creds == PlainCredentials("alice", "s3cret-pw")
    assert creds != PlainCredentials("alice", "other")
    assert creds != PlainCredentials("alice", "s3cret-pw", erase_on_connect=True)
    assert creds != ExternalCredentials()


def test_plain_credentials_erase() -> None:
    kept = PlainCredentials("u", "p")
    kept.erase_credentials()
    assert (kept.username, kept.password) == ("u", "p")
    erased = PlainCredentials("u", "p", erase_on_connect=True)
    erased.erase_credentials()
    assert (erased.username, erased.password) == (None, None)
    assert erased.response_for(b"PLAIN") == b"\0\0"


def test_external_credentials() -> None:
    creds = ExternalCredentials()
    assert creds.mechanism == "EXTERNAL"
    assert creds.response_for(b"PLAIN EXTERNAL") == b""
    assert creds == ExternalCredentials()
    assert repr(creds) == "ExternalCredentials()"
    with pytest.raises(AuthenticationError):
        creds.response_for(b"PLAIN AMQPLAIN")


# -- SSLOptions ------------------------------------------------------------------------


def test_ssl_options_default_context_verifies() -> None:
    opts = SSLOptions()
    assert isinstance(opts.context, ssl.SSLContext)
    assert opts.context.verify_mode == ssl.CERT_REQUIRED
    assert opts.context.check_hostname is True
    assert opts.server_hostname is None
    ctx = default_ssl_context()
    assert ctx.verify_mode == ssl.CERT_REQUIRED and ctx.check_hostname


def test_ssl_options_validates_and_compares_by_context_identity() -> None:
    ctx = default_ssl_context()
    assert SSLOptions(ctx, "h") == SSLOptions(ctx, "h")
    assert SSLOptions(ctx, "h") != SSLOptions(ctx, "g")
    assert SSLOptions(ctx) != SSLOptions(default_ssl_context())
    with pytest.raises(ValueError, match="context"):
        SSLOptions("not a context")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="server_hostname"):
        SSLOptions(ctx, "")
    assert repr(SSLOptions(ctx, "h")) == (
        "SSLOptions(context=<SSLContext verify_mode=CERT_REQUIRED check_hostname=True>,"
        " server_hostname='h')"
    )


# -- ConnectionParameters ----------------------------------------------------------------


def test_defaults_match_pika() -> None:
    p = ConnectionParameters()
    assert p.host == "localhost"
    assert p.port == 5672
    assert p.virtual_host == "/"
    assert p.credentials == PlainCredentials("guest", "guest")
    assert p.auth_mechanism == "PLAIN"
    assert p.channel_max == 2047
    assert p.frame_max == 131072
    assert p.heartbeat is None
    assert p.ssl_options is None and p.is_tls is False
    assert p.tls_server_hostname is None
    assert p.connection_attempts == 1
    assert p.retry_delay == 2.0
    assert p.socket_timeout == 10.0
    assert p.stack_timeout == 15.0
    assert p.locale == "en_US"
    assert p.blocked_connection_timeout is None
    assert p.client_properties is None
    assert p.connection_name is None
    assert p.tcp_options is None


def test_every_keyword_is_stored() -> None:
    creds = PlainCredentials("u", "p")
    ctx = default_ssl_context()
    p = ConnectionParameters(
        host="rabbit.example",
        port=5999,
        virtual_host="vh",
        credentials=creds,
        channel_max=100,
        frame_max=4096,
        heartbeat=0,
        ssl_options=SSLOptions(ctx, "sni.example"),
        connection_attempts=3,
        retry_delay=0,
        socket_timeout=1,
        stack_timeout=2.5,
        locale="de_DE",
        blocked_connection_timeout=30,
        client_properties={"app": "x"},
        connection_name="worker-1",
        tcp_options={"TCP_KEEPIDLE": 60},
        auth_mechanism="plain",
    )
    assert (p.host, p.port, p.virtual_host) == ("rabbit.example", 5999, "vh")
    assert p.credentials == creds
    assert (p.channel_max, p.frame_max, p.heartbeat) == (100, 4096, 0)
    assert p.is_tls and p.ssl_options is not None and p.ssl_options.context is ctx
    assert p.tls_server_hostname == "sni.example"
    assert (p.connection_attempts, p.retry_delay) == (3, 0.0)
    assert isinstance(p.retry_delay, float) and isinstance(p.socket_timeout, float)
    assert (p.socket_timeout, p.stack_timeout) == (1.0, 2.5)
    assert p.locale == "de_DE"
    assert p.blocked_connection_timeout == 30.0
    assert p.client_properties == {"app": "x"}
    assert p.connection_name == "worker-1"
    assert p.tcp_options == {"TCP_KEEPIDLE": 60}
    assert p.auth_mechanism == "PLAIN"


def test_tls_default_port_and_bare_context() -> None:
    ctx = default_ssl_context()
    p = ConnectionParameters(host="h", ssl_options=ctx)
    assert p.port == 5671
    assert p.ssl_options == SSLOptions(ctx)
    assert p.tls_server_hostname == "h"
    assert ConnectionParameters(ssl_options=ctx, port=5672).port == 5672


def test_bracketed_ipv6_host_is_unwrapped() -> None:
    assert ConnectionParameters(host="[::1]").host == "::1"
    assert ConnectionParameters(host="::1").host == "::1"


@pytest.mark.parametrize(
    ("option", "value"),
    [
        ("host", ""),
        ("host", 5),
        ("host", "[]"),
        ("port", 0),
        ("port", 65536),
        ("port", "5672"),
        ("port", True),
        ("virtual_host", None),
        ("virtual_host", "v" * 256),
        ("credentials", ("guest", "guest")),
        ("channel_max", 0),
        ("channel_max", 65536),
        ("channel_max", 10.0),
        ("frame_max", 10),
        ("frame_max", 4095),
        ("frame_max", 2**31),
        ("frame_max", "131072"),
        ("heartbeat", -1),
        ("heartbeat", 65536),
        ("heartbeat", 1.5),
        ("heartbeat", True),
        ("heartbeat", "30"),
        ("ssl_options", {"verify": False}),
        ("ssl_options", True),
        ("connection_attempts", 0),
        ("connection_attempts", 1.0),
        ("retry_delay", -0.1),
        ("retry_delay", "2"),
        ("retry_delay", float("nan")),
        ("socket_timeout", 0),
        ("socket_timeout", None),
        ("socket_timeout", float("inf")),
        ("socket_timeout", 10**400),
        ("stack_timeout", -1),
        ("stack_timeout", False),
        ("locale", ""),
        ("locale", b"en_US"),
        ("blocked_connection_timeout", 0),
        ("blocked_connection_timeout", -5),
        ("blocked_connection_timeout", "60"),
        ("client_properties", ["a"]),
        ("client_properties", {1: "x"}),
        ("connection_name", 7),
        ("tcp_options", ["TCP_KEEPIDLE"]),
        ("tcp_options", {"TCP_NODELAY": 1}),
        ("tcp_options", {"TCP_KEEPIDLE": -1}),
        ("auth_mechanism", "AMQPLAIN"),
        ("auth_mechanism", 1),
    ],
)
def test_invalid_keyword_values_raise_value_error_naming_the_option(
    option: str, value: object
) -> None:
    with pytest.raises(ValueError, match=option):
        ConnectionParameters(**{option: value})  # type: ignore[arg-type]


def test_frame_max_message_is_precise() -> None:
    with pytest.raises(ValueError) as info:
        ConnectionParameters(frame_max=10)
    assert str(info.value) == "frame_max must be an int between 4096 and 2147483647, got 10"


def test_unknown_keyword_is_a_value_error_naming_it() -> None:
    with pytest.raises(ValueError, match="heartbeat_interval"):
        ConnectionParameters(heartbeat_interval=30)  # type: ignore[arg-type]


def test_keyword_only() -> None:
    with pytest.raises(TypeError):
        ConnectionParameters("localhost")  # type: ignore[call-arg]


def test_auth_mechanism_keyword_chooses_and_checks_credentials() -> None:
    p = ConnectionParameters(auth_mechanism="external")
    assert p.credentials == ExternalCredentials()
    assert p.auth_mechanism == "EXTERNAL"
    p = ConnectionParameters(credentials=ExternalCredentials())
    assert p.auth_mechanism == "EXTERNAL"
    with pytest.raises(ValueError, match="auth_mechanism"):
        ConnectionParameters(credentials=PlainCredentials("u", "p"), auth_mechanism="EXTERNAL")
    assert ConnectionParameters(auth_mechanism="PLAIN") == ConnectionParameters()


def test_connection_name_conflicting_with_client_properties() -> None:
    with pytest.raises(ValueError, match="connection_name"):
        ConnectionParameters(connection_name="a", client_properties={"connection_name": "b"})
    p = ConnectionParameters(connection_name="a", client_properties={"connection_name": "a"})
    assert p.connection_name == "a"


def test_heartbeat_callable_and_heartbeat_for() -> None:
    seen: list[tuple[ConnectionParameters, int]] = []

    def choose(params: ConnectionParameters, server: int) -> int:
        seen.append((params, server))
        return min(server, 15)

    p = ConnectionParameters(heartbeat=choose)
    assert p.heartbeat is choose
    assert p.heartbeat_for(60) == 15
    assert seen == [(p, 60)]
    assert ConnectionParameters().heartbeat_for(60) == 60
    assert ConnectionParameters(heartbeat=0).heartbeat_for(60) == 0
    assert ConnectionParameters(heartbeat=120).heartbeat_for(60) == 120
    bad = ConnectionParameters(heartbeat=lambda params, server: -1)
    with pytest.raises(ValueError, match="heartbeat"):
        bad.heartbeat_for(60)


def test_parameters_are_immutable() -> None:
    p = ConnectionParameters()
    with pytest.raises(AttributeError):
        p.heartbeat = 30  # type: ignore[misc]
    with pytest.raises(AttributeError):
        p.other = 1  # type: ignore[attr-defined]
    assert p.heartbeat is None


def test_inputs_are_copied() -> None:
    props = {"app": {"nested": 1}}
    creds = PlainCredentials("u", "p", erase_on_connect=True)
    p = ConnectionParameters(client_properties=props, credentials=creds)
    props["app"]["nested"] = 2
    assert p.client_properties == {"app": {"nested": 1}}
    p.credentials.erase_credentials()
    assert creds.username == "u"


def test_equality_and_repr_hides_password() -> None:
    a = ConnectionParameters(host="h", credentials=PlainCredentials("bob", "hunter2"))
    b = ConnectionParameters(host="h", credentials=PlainCredentials("bob", "hunter2"))
    assert a == b
    assert a != ConnectionParameters(host="h", credentials=PlainCredentials("bob", "x"))
    assert a != b.replace(port=1)
    assert "hunter2" not in repr(a)
    assert "bob" in repr(a) and "host='h'" in repr(a)
    url = URLParameters("amqp://bob:hunter2@h/")
    assert "hunter2" not in repr(url)
    assert repr(url).startswith("URLParameters(")
    assert url == a  # a URL and keywords describing the same broker are equal
    assert a != "amqp://bob:hunter2@h/"
    assert PlainCredentials("u", "p") != "u:p"
    assert ExternalCredentials() != "EXTERNAL"
    with pytest.raises(TypeError):
        hash(a)


def test_replace() -> None:
    p = ConnectionParameters(host="h", heartbeat=10)
    q = p.replace(heartbeat=20)
    assert (q.host, q.heartbeat) == ("h", 20)
    assert p.heartbeat == 10
    tls = p.replace(ssl_options=SSLOptions())
    assert tls.port == 5671 and tls.is_tls
    assert tls.replace(ssl_options=None).port == 5672
    assert p.replace(port=1234).replace(ssl_options=SSLOptions()).port == 1234
    ext = p.replace(auth_mechanism="EXTERNAL")
    assert ext.credentials == ExternalCredentials()
    back = ext.replace(credentials=PlainCredentials("u", "p"))
    assert back.auth_mechanism == "PLAIN"
    assert type(URLParameters("amqp://h/").replace(heartbeat=5)) is ConnectionParameters
    with pytest.raises(ValueError, match="frame_max"):
        p.replace(frame_max=1)
    with pytest.raises(ValueError, match="bogus"):
        p.replace(bogus=1)


def test_copy_and_deepcopy() -> None:
    p = URLParameters("amqps://u:p@h/?client_properties={'a':[1]}")
    assert copy.copy(p) is p
    clone = copy.deepcopy(p)
    assert type(clone) is URLParameters
    assert clone == p
    assert clone.client_properties is not p.client_properties
    assert clone.ssl_options is p.ssl_options


# -- URLParameters -------------------------------------------------------------------------


def test_url_minimal() -> None:
    p = URLParameters("amqp://")
    assert isinstance(p, ConnectionParameters) and isinstance(p, URLParameters)
    assert p == ConnectionParameters()


def test_url_host_port_credentials_vhost() -> None:
    p = URLParameters("amqp://user:pass@rabbit.example:5673/vhost")
    assert (p.host, p.port, p.virtual_host) == ("rabbit.example", 5673, "vhost")
    assert p.credentials == PlainCredentials("user", "pass")
    assert not p.is_tls


def test_url_percent_decoding() -> None:
    p = URLParameters("amqp://us%40er%3Ax:p%40ss%3Aw%2Fd+%20@h/my%2Fvhost%20x")
    assert p.credentials == PlainCredentials("us@er:x", "p@ss:w/d+ ")
    assert p.virtual_host == "my/vhost x"


def test_url_username_without_password() -> None:
    assert URLParameters("amqp://bob@h").credentials == PlainCredentials("bob", "")


@pytest.mark.parametrize(
    ("url", "vhost"),
    [
        ("amqp://h", "/"),
        ("amqp://h/", "/"),
        ("amqp://h/%2F", "/"),
        ("amqp://h/%2f", "/"),
        ("amqp://h/%2Fprod", "/prod"),
        ("amqp://h/prod", "prod"),
    ],
)
def test_url_vhost_rules(url: str, vhost: str) -> None:
    assert URLParameters(url).virtual_host == vhost


def test_url_vhost_with_raw_slash_is_rejected() -> None:
    with pytest.raises(ValueError, match="virtual_host"):
        URLParameters("amqp://h/a/b")


def test_url_ipv6_hosts() -> None:
    p = URLParameters("amqp://u:p@[::1]:5673/v")
    assert (p.host, p.port) == ("::1", 5673)
    assert URLParameters("amqps://[fe80::1%25eth0]/").host == "fe80::1%eth0"
    assert URLParameters("amqp://[2001:db8::2]").port == 5672


def test_url_must_be_str() -> None:
    with pytest.raises(ValueError, match="url"):
        URLParameters(b"amqp://h/")  # type: ignore[arg-type]


def test_url_scheme_is_case_insensitive() -> None:
    assert URLParameters("AMQPS://Host.Example/").is_tls


@pytest.mark.parametrize("url", ["http://h/", "amqp+ssl://h/", "h:5672", "rabbitmq://h"])
def test_url_bad_scheme(url: str) -> None:
    with pytest.raises(ValueError, match="scheme"):
        URLParameters(url)


@pytest.mark.parametrize("url", ["amqp://h:0/", "amqp://h:99999/", "amqp://h:port/"])
def test_url_bad_port(url: str) -> None:
    with pytest.raises(ValueError, match="port"):
        URLParameters(url)


def test_url_amqps_defaults() -> None:
    p = URLParameters("amqps://user:pw@secure.example/")
    assert p.port == 5671
    assert p.is_tls and p.ssl_options is not None
    assert isinstance(p.ssl_options.context, ssl.SSLContext)
    assert p.ssl_options.context.verify_mode == ssl.CERT_REQUIRED
    assert p.ssl_options.context.check_hostname
    assert p.ssl_options.server_hostname == "secure.example"
    assert p.tls_server_hostname == "secure.example"
    assert URLParameters("amqps://secure.example:443").port == 443


def test_url_every_query_option() -> None:
    p = URLParameters(
        "amqp://h/?heartbeat=30&channel_max=100&frame_max=8192&connection_attempts=3"
        "&retry_delay=0.5&socket_timeout=4&stack_timeout=7.5&blocked_connection_timeout=60"
        "&locale=fr_FR&client_properties={'app':'billing','n':[1,2]}"
        "&connection_name=my%20conn&auth_mechanism=plain"
        "&tcp_options={'TCP_KEEPIDLE':60,'TCP_KEEPINTVL':10}&ssl_options=None"
    )
    assert p.heartbeat == 30
    assert p.channel_max == 100
    assert p.frame_max == 8192
    assert p.connection_attempts == 3
    assert p.retry_delay == 0.5
    assert p.socket_timeout == 4.0
    assert p.stack_timeout == 7.5
    assert p.blocked_connection_timeout == 60.0
    assert p.locale == "fr_FR"
    assert p.client_properties == {"app": "billing", "n": [1, 2]}
    assert p.connection_name == "my conn"
    assert p.auth_mechanism == "PLAIN"
    assert p.tcp_options == {"TCP_KEEPIDLE": 60, "TCP_KEEPINTVL": 10}
    assert p.ssl_options is None


def test_url_heartbeat_zero_turns_off() -> None:
    assert URLParameters("amqp://h/?heartbeat=0").heartbeat_for(60) == 0


def test_url_external_auth() -> None:
    p = URLParameters("amqps://h/?auth_mechanism=EXTERNAL")
    assert p.credentials == ExternalCredentials()
    assert p.auth_mechanism == "EXTERNAL"
    # The client certificate names the user; URL userinfo is not used.
    q = URLParameters("amqps://ignored:pw@h/?auth_mechanism=external")
    assert q.credentials == ExternalCredentials()
    assert URLParameters("amqp://h/?auth_mechanism=Plain").credentials == PlainCredentials(
        "guest", "guest"
    )


@pytest.mark.parametrize(
    ("option", "value"),
    [
        ("heartbeat", "abc"),
        ("heartbeat", "-1"),
        ("heartbeat", "1.5"),
        ("heartbeat", ""),
        ("channel_max", "0"),
        ("channel_max", "x"),
        ("frame_max", "10"),
        ("frame_max", "4096.0"),
        ("connection_attempts", "0"),
        ("retry_delay", "-1"),
        ("retry_delay", "soon"),
        ("socket_timeout", "0"),
        ("socket_timeout", "nan"),
        ("stack_timeout", "inf"),
        ("blocked_connection_timeout", "0"),
        ("blocked_connection_timeout", "None"),
        ("locale", ""),
        ("client_properties", "[1,2]"),
        ("client_properties", "{'a': open('x')}"),
        ("client_properties", "{1: 2}"),
        ("tcp_options", "{'TCP_BOGUS': 1}"),
        ("tcp_options", "not python"),
        ("auth_mechanism", "AMQPLAIN"),
        ("ssl_options", "{'verify': False}"),
    ],
)
def test_url_bad_values_name_the_option(option: str, value: str) -> None:
    with pytest.raises(ValueError, match=option):
        URLParameters(f"amqp://h/?{option}={value}")


def test_url_unknown_option() -> None:
    with pytest.raises(ValueError, match="heartbeat_interval"):
        URLParameters("amqp://h/?heartbeat_interval=30")
    with pytest.raises(ValueError, match="bogus"):
        URLParameters("amqp://h/?heartbeat=5&bogus")


def test_url_repeated_option() -> None:
    with pytest.raises(ValueError, match="heartbeat"):
        URLParameters("amqp://h/?heartbeat=5&heartbeat=10")


def test_url_ssl_options_on_plain_amqp_rejected() -> None:
    with pytest.raises(ValueError, match="ssl_options"):
        URLParameters("amqp://h/?ssl_options={'server_hostname':'x'}")


def test_url_ssl_options_none_contradicts_amqps() -> None:
    with pytest.raises(ValueError, match="ssl_options"):
        URLParameters("amqps://h/?ssl_options=None")


def test_url_ssl_options_verify_false_and_server_hostname() -> None:
    p = URLParameters("amqps://10.0.0.5/?ssl_options={'verify':False,'server_hostname':'mq.x'}")
    assert p.ssl_options is not None
    assert p.ssl_options.context.verify_mode == ssl.CERT_NONE
    assert p.ssl_options.context.check_hostname is False
    assert p.ssl_options.server_hostname == "mq.x"
    assert p.tls_server_hostname == "mq.x"
    q = URLParameters("amqps://mq.example/?ssl_options={}")
    assert q.ssl_options is not None
    assert q.ssl_options.server_hostname == "mq.example"
    assert q.ssl_options.context.verify_mode == ssl.CERT_REQUIRED


@pytest.mark.parametrize(
    "opts",
    [
        "{'protocol': 2}",
        "{'verify': 'no'}",
        "{'ca_certs': '/nonexistent/ca.pem'}",
        "{'certfile': '/nonexistent/cert.pem'}",
        "{'keyfile': '/tmp/k.pem'}",
        "{'ca_certs': 5}",
        "{'ciphers': 'NOT-A-CIPHER'}",
        "{'server_hostname': ''}",
        "{'cadata': 5}",
        "{'certfile': '/tmp/c.pem', 'password': 5}",
    ],
)
def test_url_bad_ssl_options(opts: str) -> None:
    with pytest.raises(ValueError, match="ssl_options"):
        URLParameters(f"amqps://h/?ssl_options={opts}")


@pytest.fixture
def cert_and_key(tmp_path: Path) -> tuple[Path, Path]:
    x509 = pytest.importorskip("cryptography.x509")
    hashes = pytest.importorskip("cryptography.hazmat.primitives.hashes")
    serialization = pytest.importorskip("cryptography.hazmat.primitives.serialization")
    ec = pytest.importorskip("cryptography.hazmat.primitives.asymmetric.ec")
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(x509.oid.NameOID.COMMON_NAME, "test-ca")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(1)
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path = tmp_path / "cert.pem"
    key_path = tmp_path / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path


def test_url_ssl_options_with_files(cert_and_key: tuple[Path, Path]) -> None:
    cert, key = cert_and_key
    p = URLParameters(
        f"amqps://h/?ssl_options={{'ca_certs':'{cert}','certfile':'{cert}','keyfile':'{key}'}}"
        "&auth_mechanism=EXTERNAL"
    )
    assert p.ssl_options is not None
    ctx = p.ssl_options.context
    assert ctx.verify_mode == ssl.CERT_REQUIRED
    # Only the given CA is trusted, not the system store.
    assert [c["subject"] for c in ctx.get_ca_certs()] == [((("commonName", "test-ca"),),)]
    assert p.credentials == ExternalCredentials()
    q = URLParameters(f"amqps://h/?ssl_options={{'cafile':'{cert}'}}")
    assert q.ssl_options is not None
    assert len(q.ssl_options.context.get_ca_certs()) == 1
    pem = cert.read_text()
    r = URLParameters("amqps://h/?ssl_options=" + quote(repr({"cadata": pem})))
    assert r.ssl_options is not None
    assert len(r.ssl_options.context.get_ca_certs()) == 1


# -- pika parity ----------------------------------------------------------------------------

PARITY_URLS = [
    "amqp://",
    "amqp://localhost",
    "amqp://guest:guest@localhost:5672/%2F",
    "amqp://u:p@rabbit.example/prod?heartbeat=30&frame_max=8192",
    "amqp://us%40er:p%2Fw@[::1]:5680/v%2Fh?heartbeat=0",
    "amqps://secure.example/?heartbeat=600&frame_max=131072",
    "amqps://u:p@secure.example:9999/vh?connection_attempts=4&retry_delay=1.5",
    "amqp://h/?socket_timeout=3&stack_timeout=9&blocked_connection_timeout=20&locale=de_DE",
]


@pytest.mark.parametrize("url", PARITY_URLS)
def test_url_parity_with_pika(url: str) -> None:
    pika = pytest.importorskip("pika")
    theirs = pika.URLParameters(url)
    ours = URLParameters(url)
    assert ours.host == theirs.host
    assert ours.port == theirs.port
    assert ours.virtual_host == theirs.virtual_host
    assert ours.heartbeat == theirs.heartbeat
    assert ours.frame_max == theirs.frame_max
    assert ours.connection_attempts == theirs.connection_attempts
    assert ours.retry_delay == theirs.retry_delay
    assert ours.socket_timeout == theirs.socket_timeout
    assert ours.stack_timeout == theirs.stack_timeout
    assert ours.blocked_connection_timeout == theirs.blocked_connection_timeout
    assert ours.locale == theirs.locale
    assert ours.is_tls == (theirs.ssl_options is not None)
    assert ours.credentials.username == theirs.credentials.username  # type: ignore[union-attr]
    assert ours.credentials.password == theirs.credentials.password  # type: ignore[union-attr]


# -- normalize_parameters -----------------------------------------------------------------


def test_normalize_single_values() -> None:
    p = ConnectionParameters(host="a")
    assert normalize_parameters(p) == [p]
    assert normalize_parameters(p)[0] is p
    [url] = normalize_parameters("amqp://b:5673/")
    assert isinstance(url, URLParameters) and (url.host, url.port) == ("b", 5673)


def test_normalize_lists_keep_order_and_mix_types() -> None:
    p = ConnectionParameters(host="a")
    nodes = normalize_parameters([p, "amqp://b/", "amqps://c/"])
    assert [n.host for n in nodes] == ["a", "b", "c"]
    assert [n.is_tls for n in nodes] == [False, False, True]
    assert [n.host for n in normalize_parameters(("amqp://x", "amqp://y"))] == ["x", "y"]


def test_normalize_rejects_bad_input() -> None:
    with pytest.raises(ValueError, match="empty"):
        normalize_parameters([])
    with pytest.raises(TypeError, match="parameters"):
        normalize_parameters(5)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="parameters"):
        normalize_parameters(b"amqp://h/")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match=r"parameters\[1\]"):
        normalize_parameters(["amqp://h/", None])  # type: ignore[list-item]
    with pytest.raises(ValueError, match=r"parameters\[0\].*heartbeat"):
        normalize_parameters(["amqp://h/?heartbeat=x"])
    with pytest.raises(ValueError, match="scheme"):
        normalize_parameters("http://h/")


# -- client_properties ----------------------------------------------------------------------


def test_client_properties_defaults() -> None:
    props = client_properties(ConnectionParameters())
    assert props["product"] == "txamqp091"
    assert props["version"] == __version__
    assert props["platform"] == f"Python {platform.python_version()}"
    assert isinstance(props["information"], str) and "http" not in props["information"]
    assert props["capabilities"] == {
        "publisher_confirms": True,
        "exchange_exchange_bindings": True,
        "basic.nack": True,
        "consumer_cancel_notify": True,
        "connection.blocked": True,
        "authentication_failure_close": True,
        "per_consumer_qos": True,
    }
    assert "connection_name" not in props


def test_client_properties_merges_user_values() -> None:
    params = ConnectionParameters(
        connection_name="orders-worker",
        client_properties={
            "product": "my app",
            "team": "payments",
            "capabilities": {"publisher_confirms": False, "x-custom": True},
        },
    )
    props = client_properties(params)
    assert props["connection_name"] == "orders-worker"
    assert props["product"] == "my app"
    assert props["team"] == "payments"
    assert props["version"] == __version__
    caps = props["capabilities"]
    assert caps["publisher_confirms"] is False
    assert caps["x-custom"] is True
    assert caps["basic.nack"] is True and caps["connection.blocked"] is True
    # Building the table never mutates the parameters.
    props["team"] = "changed"
    caps["basic.nack"] = False
    assert params.client_properties is not None
    assert params.client_properties["team"] == "payments"
    assert client_properties(params)["capabilities"]["basic.nack"] is True


def test_client_properties_connection_name_from_url() -> None:
    props = client_properties(URLParameters("amqp://h/?connection_name=from-url"))
    assert props["connection_name"] == "from-url"


# -- tcp options ----------------------------------------------------------------------------


@pytest.mark.skipif(not hasattr(socket, "TCP_KEEPIDLE"), reason="no TCP_KEEPIDLE here")
def test_apply_tcp_options_sets_socket_options() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        skipped = apply_tcp_options(sock, {"TCP_KEEPIDLE": 42, "TCP_KEEPINTVL": 7})
        assert skipped == []
        assert sock.getsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE) != 0
        assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPIDLE) == 42
        assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPINTVL) == 7
        assert apply_tcp_options(sock, None) == []


def test_pickle_round_trip() -> None:
    p = URLParameters("amqp://u:p@h:5673/v?heartbeat=7&client_properties={'a':1}")
    clone = pickle.loads(pickle.dumps(p))
    assert type(clone) is URLParameters
    assert clone == p
    with pytest.raises(AttributeError):
        clone.host = "x"  # type: ignore[misc]


def test_ssl_options_builds_its_context_from_the_files_when_none_is_given(tmp_path: Path) -> None:
    default = SSLOptions()
    assert default.context.verify_mode == ssl.CERT_REQUIRED and default.context.check_hostname
    relaxed = SSLOptions(verify=False)
    assert relaxed.context.verify_mode == ssl.CERT_NONE and not relaxed.context.check_hostname
    with pytest.raises(ValueError, match="could not be applied"):
        SSLOptions(cafile=str(tmp_path / "missing-ca.pem"))
    with pytest.raises(ValueError, match="keyfile needs a certfile"):
        SSLOptions(keyfile=str(tmp_path / "key.pem"))
    not_a_cert = tmp_path / "client.pem"
    not_a_cert.write_text("not a certificate")
    with pytest.raises(ValueError, match="could not be applied"):
        SSLOptions(certfile=str(not_a_cert))
