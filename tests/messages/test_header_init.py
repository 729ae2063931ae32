"""The written-out ``__init__`` of HeaderData and MessageHeader matches their fields.

Both are frozen dataclasses whose ``__init__`` fills the instance dictionary at once
instead of being generated (messages/header.py); a field added without its parameter,
or a default that drifted, would make them differ from a generated dataclass.
"""

from __future__ import annotations

import dataclasses
import inspect

import pytest

from missile.encoding import EncoderFormat
from missile.messages.builder import build_request
from missile.messages.header import HeaderData, MessageHeader

from .conftest import Session


def _expected_parameters(cls: type) -> list[tuple[str, object]]:
    return [
        (f.name, inspect.Parameter.empty if f.default is dataclasses.MISSING else f.default)
        for f in dataclasses.fields(cls)
    ]


@pytest.mark.parametrize("cls", [HeaderData, MessageHeader])
def test_init_parameters_are_the_fields_with_their_defaults(cls: type) -> None:
    params = list(inspect.signature(cls).parameters.values())
    assert [(p.name, p.default) for p in params] == _expected_parameters(cls)
    assert all(f.default_factory is dataclasses.MISSING for f in dataclasses.fields(cls))


def test_header_data_behaves_like_a_generated_dataclass() -> None:
    data = HeaderData(7, timestamp=9, renewable=True)
    assert vars(data) == {f.name: getattr(data, f.name) for f in dataclasses.fields(HeaderData)}
    assert data == HeaderData(message_id=7, renewable=True, timestamp=9)
    assert hash(data) == hash(HeaderData(message_id=7, renewable=True, timestamp=9))
    assert data != HeaderData(7, timestamp=9)
    assert dataclasses.replace(data, handshake=True).handshake
    assert repr(data).startswith("HeaderData(message_id=7, renewable=True, handshake=False")
    with pytest.raises(dataclasses.FrozenInstanceError):
        data.message_id = 8  # type: ignore[misc]
    with pytest.raises(TypeError):
        HeaderData()  # type: ignore[call-arg]
    with pytest.raises(TypeError):
        HeaderData(1, bogus=2)  # type: ignore[call-arg]


@pytest.mark.parametrize("fmt", [EncoderFormat.JSON, EncoderFormat.MISSILE_CBOR])
def test_message_header_keeps_secrets_out_of_its_repr_and_stays_frozen(session: Session, fmt: EncoderFormat) -> None:
    header = build_request(session.client, encoder_format=fmt).header
    text = repr(header)
    assert "crypto_context" not in text and "signature=" not in text and "headerdata=" not in text
    assert vars(dataclasses.replace(header)) == vars(header)
    with pytest.raises(dataclasses.FrozenInstanceError):
        header.encrypting = False  # type: ignore[misc]
    assert isinstance(header, MessageHeader)
