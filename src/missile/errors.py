"""MSL error codes, response codes and the exception hierarchy.

Every failure in missile is an :class:`MslException` carrying one :class:`MslError`:
the reference's error constant, with its numeric code (``internal_code`` is the wire
value ``100000 + code``), the :class:`ResponseCode` a peer receives in an error
header, and a short description. Exceptions also carry the protocol context the
reference attaches (master token, entity auth data, user ID token, user auth data,
message ID) so a failure can later be turned into the right error message on the wire.

Exception messages never contain key material or plaintext.
"""

from __future__ import annotations

from enum import Enum, IntEnum
from typing import Any

__all__ = [
    "ResponseCode",
    "MslError",
    "MslException",
    "MslEncodingException",
    "MslCryptoException",
    "MslMasterTokenException",
    "MslUserIdTokenException",
    "MslEntityAuthException",
    "MslUserAuthException",
    "MslKeyExchangeException",
    "MslMessageException",
    "MslInternalException",
]


class ResponseCode(IntEnum):
    """The ``errorcode`` of an error header: how the receiver should recover (errors.md §2)."""

    FAIL = 1
    TRANSIENT_FAILURE = 2
    ENTITY_REAUTH = 3
    USER_REAUTH = 4
    KEYX_REQUIRED = 5
    ENTITYDATA_REAUTH = 6
    USERDATA_REAUTH = 7
    EXPIRED = 8
    REPLAYED = 9
    SSOTOKEN_REJECTED = 10

    @classmethod
    def from_wire(cls, value: int) -> ResponseCode:
        """Map a received ``errorcode``; unknown values are treated as FAIL (errors.md §1)."""
        try:
            return cls(value)
        except ValueError:
            return cls.FAIL


class MslError(Enum):
    """Every error constant of the reference, as ``(code, response code, description)``."""

    code: int
    response_code: ResponseCode
    message: str

    def __init__(self, code: int, response_code: ResponseCode, message: str) -> None:
        self.code = code
        self.response_code = response_code
        self.message = message

    @property
    def internal_code(self) -> int:
        """The wire ``internalcode``: ``100000 + code``."""
        return 100000 + self.code

    @classmethod
    def from_internal_code(cls, internal_code: int) -> MslError | None:
        """Look an error up by its wire ``internalcode``; None when unknown."""
        return _BY_INTERNAL_CODE.get(internal_code)

    MSL_PARSE_ERROR = (0, ResponseCode.FAIL, "A received MSL structure could not be decoded or a required field is missing/mistyped.")
    MSL_ENCODE_ERROR = (1, ResponseCode.FAIL, "An MSL structure could not be encoded.")
    ENVELOPE_HASH_MISMATCH = (2, ResponseCode.FAIL, "Ciphertext envelope hash check failed (legacy; not raised by current code).")
    INVALID_PUBLIC_KEY = (3, ResponseCode.FAIL, "A public key is malformed or unusable.")
    INVALID_PRIVATE_KEY = (4, ResponseCode.FAIL, "A private key is malformed or unusable.")
    PLAINTEXT_ILLEGAL_BLOCK_SIZE = (5, ResponseCode.FAIL, "Plaintext length is not acceptable for the cipher (e.g. key wrap input not a multiple of 8).")
    PLAINTEXT_BAD_PADDING = (6, ResponseCode.FAIL, "Padding problem while encrypting (should not happen).")
    CIPHERTEXT_ILLEGAL_BLOCK_SIZE = (7, ResponseCode.FAIL, "Ciphertext length is not a multiple of the cipher block size.")
    CIPHERTEXT_BAD_PADDING = (8, ResponseCode.FAIL, "Decryption produced invalid padding.")
    ENCRYPT_NOT_SUPPORTED = (9, ResponseCode.FAIL, "The crypto context cannot encrypt (no key).")
    DECRYPT_NOT_SUPPORTED = (10, ResponseCode.FAIL, "The crypto context cannot decrypt (no key).")
    ENVELOPE_KEY_ID_MISMATCH = (11, ResponseCode.FAIL, "Envelope key ID differs from the context key ID (defined, not enforced).")
    CIPHERTEXT_ENVELOPE_PARSE_ERROR = (12, ResponseCode.FAIL, "A ciphertext envelope could not be parsed.")
    CIPHERTEXT_ENVELOPE_ENCODE_ERROR = (13, ResponseCode.FAIL, "A ciphertext envelope could not be encoded.")
    SIGN_NOT_SUPPORTED = (14, ResponseCode.FAIL, "The crypto context cannot sign (no key).")
    VERIFY_NOT_SUPPORTED = (15, ResponseCode.FAIL, "The crypto context cannot verify (no key).")
    SIGNATURE_ERROR = (16, ResponseCode.FAIL, "Signature engine failure while signing or verifying.")
    HMAC_ERROR = (17, ResponseCode.FAIL, "HMAC computation failed.")
    ENCRYPT_ERROR = (18, ResponseCode.FAIL, "Encryption failed.")
    DECRYPT_ERROR = (19, ResponseCode.FAIL, "Decryption failed.")
    INSUFFICIENT_CIPHERTEXT = (20, ResponseCode.FAIL, "Not enough ciphertext (or IV) to decrypt.")
    SESSION_KEY_CREATION_FAILURE = (21, ResponseCode.FAIL, "Session keys could not be created or extracted.")
    INVALID_SYMMETRIC_KEY = (24, ResponseCode.FAIL, "A symmetric key (e.g. JWE content encryption key) is invalid.")
    INVALID_ENCRYPTION_KEY = (25, ResponseCode.FAIL, "The encryption key is invalid.")
    INVALID_HMAC_KEY = (26, ResponseCode.FAIL, "The HMAC/CMAC key is invalid.")
    WRAP_NOT_SUPPORTED = (27, ResponseCode.FAIL, "The crypto context cannot wrap.")
    UNWRAP_NOT_SUPPORTED = (28, ResponseCode.FAIL, "The crypto context cannot unwrap.")
    UNIDENTIFIED_JWK_TYPE = (29, ResponseCode.FAIL, "Unknown JWK kty value.")
    UNIDENTIFIED_JWK_USAGE = (30, ResponseCode.FAIL, "Unknown JWK use value.")
    UNIDENTIFIED_JWK_ALGORITHM = (31, ResponseCode.FAIL, "Unknown JWK alg value.")
    WRAP_ERROR = (32, ResponseCode.FAIL, "Wrapping failed.")
    UNWRAP_ERROR = (33, ResponseCode.FAIL, "Unwrapping failed (integrity check or GCM tag failure).")
    INVALID_JWK = (34, ResponseCode.FAIL, "Unwrapped data is not a valid JWK.")
    INVALID_JWK_KEYDATA = (35, ResponseCode.FAIL, "JWK key material is empty or invalid.")
    UNSUPPORTED_JWK_ALGORITHM = (36, ResponseCode.FAIL, "JWK algorithm not supported by this stack.")
    WRAP_KEY_CREATION_FAILURE = (37, ResponseCode.FAIL, "A wrapping key could not be created.")
    INVALID_WRAP_CIPHERTEXT = (38, ResponseCode.FAIL, "Wrapped data is invalid.")
    UNSUPPORTED_JWE_ALGORITHM = (39, ResponseCode.FAIL, "JWE enc/alg not supported.")
    JWE_ENCODE_ERROR = (40, ResponseCode.FAIL, "JWE serialization could not be produced.")
    JWE_PARSE_ERROR = (41, ResponseCode.FAIL, "JWE serialization or header could not be parsed.")
    INVALID_ALGORITHM_PARAMS = (42, ResponseCode.FAIL, "Invalid algorithm parameters (IV, tag length, ...).")
    JWE_ALGORITHM_MISMATCH = (43, ResponseCode.FAIL, "JWE header alg/enc differ from the expected values.")
    KEY_IMPORT_ERROR = (44, ResponseCode.FAIL, "Key import failed (JavaScript/Web Crypto).")
    KEY_EXPORT_ERROR = (45, ResponseCode.FAIL, "Key export failed (JavaScript/Web Crypto).")
    DIGEST_ERROR = (46, ResponseCode.FAIL, "Digest computation failed.")
    UNSUPPORTED_KEY = (47, ResponseCode.FAIL, "Key type or algorithm not supported.")
    UNSUPPORTED_JWE_SERIALIZATION = (48, ResponseCode.FAIL, "Unknown JWE serialization format.")
    INVALID_WRAPPING_KEY = (51, ResponseCode.FAIL, "The key-wrap key is invalid.")
    UNIDENTIFIED_CIPHERTEXT_ENVELOPE = (52, ResponseCode.FAIL, "Unknown ciphertext envelope version.")
    UNIDENTIFIED_SIGNATURE_ENVELOPE = (53, ResponseCode.FAIL, "Unknown signature envelope version.")
    UNSUPPORTED_CIPHERTEXT_ENVELOPE = (54, ResponseCode.FAIL, "Ciphertext envelope version not supported.")
    UNSUPPORTED_SIGNATURE_ENVELOPE = (55, ResponseCode.FAIL, "Signature envelope version not supported.")
    UNIDENTIFIED_CIPHERSPEC = (56, ResponseCode.FAIL, "Unknown cipherspec in a version 2 envelope.")
    UNIDENTIFIED_ALGORITHM = (57, ResponseCode.FAIL, "Unknown algorithm name (e.g. in master token session data).")
    SIGNATURE_ENVELOPE_PARSE_ERROR = (58, ResponseCode.FAIL, "Signature envelope could not be parsed.")
    SIGNATURE_ENVELOPE_ENCODE_ERROR = (59, ResponseCode.FAIL, "Signature envelope could not be encoded.")
    INVALID_SIGNATURE = (60, ResponseCode.FAIL, "Signature is invalid.")
    DERIVEKEY_ERROR = (61, ResponseCode.FAIL, "Key derivation failed.")
    UNIDENTIFIED_JWK_KEYOP = (62, ResponseCode.FAIL, "Unknown JWK key_ops value.")
    GENERATEKEY_ERROR = (63, ResponseCode.FAIL, "Key generation failed.")
    INVALID_IV = (64, ResponseCode.FAIL, "Initialization vector is invalid.")
    INVALID_CIPHERTEXT = (65, ResponseCode.FAIL, "Ciphertext is invalid.")
    MASTERTOKEN_UNTRUSTED = (1000, ResponseCode.ENTITY_REAUTH, "Master token cannot be verified/decrypted by an entity that needs to open it, or has no stored crypto context.")
    MASTERTOKEN_KEY_CREATION_ERROR = (1001, ResponseCode.ENTITY_REAUTH, "Session keys in the master token could not be reconstructed.")
    MASTERTOKEN_EXPIRES_BEFORE_RENEWAL = (1002, ResponseCode.ENTITY_REAUTH, "Master token expiration precedes its renewal window.")
    MASTERTOKEN_SESSIONDATA_MISSING = (1003, ResponseCode.ENTITY_REAUTH, "Master token session data is empty.")
    MASTERTOKEN_SEQUENCE_NUMBER_OUT_OF_RANGE = (1004, ResponseCode.ENTITY_REAUTH, "Master token sequence number outside 0..2^53.")
    MASTERTOKEN_SERIAL_NUMBER_OUT_OF_RANGE = (1005, ResponseCode.ENTITY_REAUTH, "Master token serial number outside 0..2^53.")
    MASTERTOKEN_TOKENDATA_INVALID = (1006, ResponseCode.ENTITY_REAUTH, "Master token data invalid.")
    MASTERTOKEN_SIGNATURE_INVALID = (1007, ResponseCode.ENTITY_REAUTH, "Master token signature invalid.")
    MASTERTOKEN_SESSIONDATA_INVALID = (1008, ResponseCode.ENTITY_REAUTH, "Master token session data invalid.")
    MASTERTOKEN_SEQUENCE_NUMBER_OUT_OF_SYNC = (1009, ResponseCode.ENTITY_REAUTH, "Master token sequence number not the expected value (issuer policy).")
    MASTERTOKEN_TOKENDATA_MISSING = (1010, ResponseCode.ENTITY_REAUTH, "Master token data is empty.")
    MASTERTOKEN_TOKENDATA_PARSE_ERROR = (1011, ResponseCode.ENTITY_REAUTH, "Master token data could not be parsed.")
    MASTERTOKEN_SESSIONDATA_PARSE_ERROR = (1012, ResponseCode.ENTITY_REAUTH, "Decrypted session data could not be parsed.")
    MASTERTOKEN_IDENTITY_REVOKED = (1013, ResponseCode.ENTITY_REAUTH, "The master token entity identity has been revoked.")
    MASTERTOKEN_REJECTED_BY_APP = (1014, ResponseCode.ENTITY_REAUTH, "The application rejected the master token (ENTITY_REJECTED with a master token).")
    MASTERTOKEN_ISSUERDATA_ENCODE_ERROR = (1015, ResponseCode.FAIL, "Issuer data could not be encoded/merged.")
    USERIDTOKEN_MASTERTOKEN_MISMATCH = (2000, ResponseCode.USER_REAUTH, "User ID token is not bound to the expected master token (or none supplied).")
    USERIDTOKEN_NOT_DECRYPTED = (2001, ResponseCode.USER_REAUTH, "User ID token could not be verified/decrypted where required.")
    USERIDTOKEN_MASTERTOKEN_NULL = (2002, ResponseCode.USER_REAUTH, "A user ID token was supplied without a master token.")
    USERIDTOKEN_EXPIRES_BEFORE_RENEWAL = (2003, ResponseCode.USER_REAUTH, "User ID token expiration precedes its renewal window.")
    USERIDTOKEN_USERDATA_MISSING = (2004, ResponseCode.USER_REAUTH, "User ID token user data is empty.")
    USERIDTOKEN_MASTERTOKEN_NOT_FOUND = (2005, ResponseCode.USER_REAUTH, "User ID token is bound to a master token not in the store.")
    USERIDTOKEN_MASTERTOKEN_SERIAL_NUMBER_OUT_OF_RANGE = (2006, ResponseCode.USER_REAUTH, "User ID token mtserialnumber outside 0..2^53.")
    USERIDTOKEN_SERIAL_NUMBER_OUT_OF_RANGE = (2007, ResponseCode.USER_REAUTH, "User ID token serial number outside 0..2^53.")
    USERIDTOKEN_TOKENDATA_INVALID = (2008, ResponseCode.USER_REAUTH, "User ID token data invalid.")
    USERIDTOKEN_SIGNATURE_INVALID = (2009, ResponseCode.USER_REAUTH, "User ID token signature invalid.")
    USERIDTOKEN_USERDATA_INVALID = (2010, ResponseCode.USER_REAUTH, "User ID token user data invalid.")
    USERIDTOKEN_IDENTITY_INVALID = (2011, ResponseCode.USER_REAUTH, "User identity in the token is empty or cannot be turned into a user.")
    RESERVED_2012 = (2012, ResponseCode.USER_REAUTH, "Reserved (historical: entity not associated with the user).")
    USERIDTOKEN_USERAUTH_DATA_MISMATCH = (2015, ResponseCode.USER_REAUTH, "User authentication data and user ID token name different users.")
    USERIDTOKEN_TOKENDATA_MISSING = (2016, ResponseCode.USER_REAUTH, "User ID token data is empty.")
    USERIDTOKEN_TOKENDATA_PARSE_ERROR = (2017, ResponseCode.USER_REAUTH, "User ID token data could not be parsed.")
    USERIDTOKEN_USERDATA_PARSE_ERROR = (2018, ResponseCode.USER_REAUTH, "Decrypted user data could not be parsed.")
    USERIDTOKEN_REVOKED = (2019, ResponseCode.USER_REAUTH, "User ID token has been revoked.")
    USERIDTOKEN_REJECTED_BY_APP = (2020, ResponseCode.USERDATA_REAUTH, "The application rejected the user ID token (USER_REJECTED with a user ID token).")
    SERVICETOKEN_MASTERTOKEN_MISMATCH = (3000, ResponseCode.FAIL, "Service token bound to a different (or absent) master token.")
    SERVICETOKEN_USERIDTOKEN_MISMATCH = (3001, ResponseCode.FAIL, "Service token bound to a different (or absent) user ID token.")
    SERVICETOKEN_SERVICEDATA_INVALID = (3002, ResponseCode.FAIL, "Service data invalid.")
    SERVICETOKEN_MASTERTOKEN_NOT_FOUND = (3003, ResponseCode.FAIL, "Service token bound to a master token not in the store.")
    SERVICETOKEN_USERIDTOKEN_NOT_FOUND = (3004, ResponseCode.FAIL, "Service token bound to a user ID token not in the store.")
    SERVICETOKEN_MASTERTOKEN_SERIAL_NUMBER_OUT_OF_RANGE = (3005, ResponseCode.FAIL, "Service token mtserialnumber outside 0..2^53.")
    SERVICETOKEN_USERIDTOKEN_SERIAL_NUMBER_OUT_OF_RANGE = (3006, ResponseCode.FAIL, "Service token uitserialnumber outside 0..2^53.")
    SERVICETOKEN_TOKENDATA_INVALID = (3007, ResponseCode.FAIL, "Service token data invalid.")
    SERVICETOKEN_SIGNATURE_INVALID = (3008, ResponseCode.FAIL, "Service token signature invalid.")
    SERVICETOKEN_TOKENDATA_MISSING = (3009, ResponseCode.FAIL, "Service token data is empty.")
    UNIDENTIFIED_ENTITYAUTH_SCHEME = (4000, ResponseCode.FAIL, "Unknown entity authentication scheme name.")
    ENTITYAUTH_FACTORY_NOT_FOUND = (4001, ResponseCode.FAIL, "No factory registered for the entity authentication scheme.")
    X509CERT_PARSE_ERROR = (4002, ResponseCode.ENTITYDATA_REAUTH, "X.509 certificate DER could not be parsed.")
    X509CERT_ENCODE_ERROR = (4003, ResponseCode.ENTITYDATA_REAUTH, "X.509 certificate could not be encoded.")
    X509CERT_VERIFICATION_FAILED = (4004, ResponseCode.ENTITYDATA_REAUTH, "X.509 certificate not issued by a trusted certificate.")
    ENTITY_NOT_FOUND = (4005, ResponseCode.FAIL, "No keys/record for the entity identity.")
    INCORRECT_ENTITYAUTH_DATA = (4006, ResponseCode.FAIL, "The entity may not use this entity authentication scheme.")
    RSA_PUBLICKEY_NOT_FOUND = (4007, ResponseCode.ENTITYDATA_REAUTH, "RSA public key for pubkeyid not found.")
    UNSUPPORTED_ENTITYAUTH_DATA = (4023, ResponseCode.FAIL, "Entity authentication data not supported.")
    ENTITY_REVOKED = (4025, ResponseCode.FAIL, "The entity identity is revoked.")
    ENTITY_REJECTED_BY_APP = (4026, ResponseCode.ENTITYDATA_REAUTH, "The application rejected the entity (ENTITY_REJECTED without a master token).")
    X509CERT_EXPIRED = (4028, ResponseCode.ENTITYDATA_REAUTH, "X.509 certificate expired.")
    X509CERT_NOT_YET_VALID = (4029, ResponseCode.ENTITYDATA_REAUTH, "X.509 certificate not yet valid.")
    X509CERT_INVALID = (4030, ResponseCode.ENTITYDATA_REAUTH, "X.509 certificate value is not valid base64.")
    RSA_PRIVATEKEY_NOT_FOUND = (4031, ResponseCode.ENTITYDATA_REAUTH, "Local RSA private key not found.")
    ENTITYAUTH_MASTERTOKEN_NOT_DECRYPTED = (4032, ResponseCode.FAIL, "MT_PROTECTED master token cannot be opened.")
    ENTITYAUTH_SIGNATURE_INVALID = (4033, ResponseCode.ENTITYDATA_REAUTH, "Entity authentication data signature invalid.")
    ENTITYAUTH_CIPHERTEXT_INVALID = (4034, ResponseCode.ENTITYDATA_REAUTH, "Entity authentication data ciphertext invalid.")
    ENTITYAUTH_VERIFICATION_FAILED = (4035, ResponseCode.ENTITYDATA_REAUTH, "Entity authentication data signature verification failed (MT_PROTECTED).")
    ENTITYAUTH_MASTERTOKEN_INVALID = (4036, ResponseCode.FAIL, "MT_PROTECTED master token could not be parsed.")
    ECC_PUBLICKEY_NOT_FOUND = (4037, ResponseCode.ENTITYDATA_REAUTH, "ECC public key for pubkeyid not found.")
    ECC_PRIVATEKEY_NOT_FOUND = (4038, ResponseCode.ENTITYDATA_REAUTH, "Local ECC private key not found.")
    UNIDENTIFIED_USERAUTH_SCHEME = (5003, ResponseCode.FAIL, "Unknown user authentication scheme name.")
    USERAUTH_FACTORY_NOT_FOUND = (5004, ResponseCode.FAIL, "No factory registered for the user authentication scheme.")
    EMAILPASSWORD_BLANK = (5005, ResponseCode.USERDATA_REAUTH, "Email or password empty after trimming.")
    EMAILPASSWORD_INCORRECT = (5007, ResponseCode.USERDATA_REAUTH, "Email/password not recognised.")
    UNSUPPORTED_USERAUTH_DATA = (5008, ResponseCode.FAIL, "User authentication data not supported.")
    USERAUTH_USERIDTOKEN_INVALID = (5011, ResponseCode.USERDATA_REAUTH, "USER_ID_TOKEN authdata user ID token invalid.")
    UNIDENTIFIED_USERAUTH_MECHANISM = (5013, ResponseCode.FAIL, "Unknown user authentication mechanism.")
    UNSUPPORTED_USERAUTH_MECHANISM = (5014, ResponseCode.FAIL, "User authentication mechanism not supported.")
    USERAUTH_MASTERTOKEN_MISSING = (5016, ResponseCode.USERDATA_REAUTH, "User authentication requires a master token that is missing.")
    USERAUTH_USERIDTOKEN_NOT_DECRYPTED = (5021, ResponseCode.USERDATA_REAUTH, "USER_ID_TOKEN authdata user ID token cannot be opened.")
    USERAUTH_MASTERTOKEN_INVALID = (5024, ResponseCode.USERDATA_REAUTH, "USER_ID_TOKEN authdata master token invalid.")
    USERAUTH_MASTERTOKEN_NOT_DECRYPTED = (5025, ResponseCode.USERDATA_REAUTH, "USER_ID_TOKEN authdata master token cannot be opened.")
    USERAUTH_USERIDTOKEN_MISSING = (5030, ResponseCode.USERDATA_REAUTH, "User authentication requires a user ID token that is missing.")
    USERAUTH_ENTITY_MISMATCH = (5032, ResponseCode.USERDATA_REAUTH, "User authentication data belongs to a different entity.")
    USERAUTH_ENTITY_INCORRECT_DATA = (5033, ResponseCode.FAIL, "The entity may not use this user authentication scheme.")
    USER_REJECTED_BY_APP = (5037, ResponseCode.USERDATA_REAUTH, "The application rejected the user (USER_REJECTED without a user ID token).")
    USERIDTOKEN_IDENTITY_NOT_ASSOCIATED_WITH_ENTITY = (5040, ResponseCode.USERDATA_REAUTH, "User is not associated with the entity.")
    USERAUTH_ENTITYUSER_INCORRECT_DATA = (5041, ResponseCode.USERDATA_REAUTH, "This entity/user combination may not use the scheme.")
    USERAUTH_VERIFICATION_FAILED = (5042, ResponseCode.USERDATA_REAUTH, "User authentication data signature verification failed.")
    USERAUTH_USERIDTOKEN_REVOKE_CHECK_ERROR = (5043, ResponseCode.USERDATA_REAUTH, "Revocation check of a user ID token failed.")
    UNSUPPORTED_COMPRESSION = (6000, ResponseCode.FAIL, "Compression algorithm has no implementation.")
    COMPRESSION_ERROR = (6001, ResponseCode.FAIL, "Compression failed.")
    UNCOMPRESSION_ERROR = (6002, ResponseCode.FAIL, "Decompression failed or exceeded the deflate-ratio limit.")
    MESSAGE_ENTITY_NOT_FOUND = (6003, ResponseCode.FAIL, "Header has neither entity authentication data nor master token.")
    PAYLOAD_MESSAGE_ID_MISMATCH = (6004, ResponseCode.FAIL, "Payload chunk message ID differs from the header message ID.")
    PAYLOAD_SEQUENCE_NUMBER_MISMATCH = (6005, ResponseCode.FAIL, "Payload chunk sequence number is not the expected one.")
    PAYLOAD_VERIFICATION_FAILED = (6006, ResponseCode.FAIL, "Payload chunk signature verification failed.")
    MESSAGE_DATA_MISSING = (6007, ResponseCode.FAIL, "No message data (empty stream).")
    MESSAGE_FORMAT_ERROR = (6008, ResponseCode.FAIL, "Malformed message data.")
    MESSAGE_VERIFICATION_FAILED = (6009, ResponseCode.FAIL, "Error header signature verification failed.")
    HEADER_DATA_MISSING = (6010, ResponseCode.FAIL, "headerdata/errordata is empty.")
    PAYLOAD_DATA_MISSING = (6011, ResponseCode.FAIL, "Non-final payload chunk has empty data.")
    PAYLOAD_DATA_CORRUPT = (6012, ResponseCode.FAIL, "Non-final payload chunk data corrupt.")
    UNIDENTIFIED_COMPRESSION = (6013, ResponseCode.FAIL, "Unknown compression algorithm name.")
    MESSAGE_EXPIRED = (6014, ResponseCode.EXPIRED, "Expired master token and message not renewable or lacking key request data (generic).")
    MESSAGE_ID_OUT_OF_RANGE = (6015, ResponseCode.FAIL, "Header message ID outside 0..2^53.")
    INTERNAL_CODE_NEGATIVE = (6016, ResponseCode.FAIL, "Error header internalcode is negative.")
    UNEXPECTED_RESPONSE_MESSAGE_ID = (6017, ResponseCode.FAIL, "Response message ID is not request ID + 1 (possible replay).")
    RESPONSE_REQUIRES_ENCRYPTION = (6018, ResponseCode.KEYX_REQUIRED, "Responder must encrypt its response but cannot; requester should establish keys.")
    PAYLOAD_SEQUENCE_NUMBER_OUT_OF_RANGE = (6019, ResponseCode.FAIL, "Payload sequence number outside 0..2^53.")
    PAYLOAD_MESSAGE_ID_OUT_OF_RANGE = (6020, ResponseCode.FAIL, "Payload message ID outside 0..2^53.")
    MESSAGE_REPLAYED = (6021, ResponseCode.REPLAYED, "Non-replayable ID already seen or slightly behind; sender can recover by resending.")
    INCOMPLETE_NONREPLAYABLE_MESSAGE = (6022, ResponseCode.FAIL, "Non-replayable message without a master token.")
    HEADER_SIGNATURE_INVALID = (6023, ResponseCode.FAIL, "Header signature invalid.")
    HEADER_DATA_INVALID = (6024, ResponseCode.FAIL, "Header data invalid.")
    PAYLOAD_INVALID = (6025, ResponseCode.FAIL, "Payload invalid.")
    PAYLOAD_SIGNATURE_INVALID = (6026, ResponseCode.FAIL, "Payload signature invalid.")
    RESPONSE_REQUIRES_MASTERTOKEN = (6027, ResponseCode.KEYX_REQUIRED, "Responder must attach a user ID token but the requester has no master token.")
    RESPONSE_REQUIRES_USERIDTOKEN = (6028, ResponseCode.USER_REAUTH, "Response requires a user ID token.")
    REQUEST_REQUIRES_USERAUTHDATA = (6029, ResponseCode.FAIL, "User-associated request lacks user authentication data.")
    UNEXPECTED_MESSAGE_SENDER = (6030, ResponseCode.FAIL, "Header sender differs from the master token identity (legacy check).")
    NONREPLAYABLE_MESSAGE_REQUIRES_MASTERTOKEN = (6031, ResponseCode.FAIL, "Attempt to build a non-replayable message without a master token.")
    NONREPLAYABLE_ID_OUT_OF_RANGE = (6032, ResponseCode.FAIL, "Non-replayable ID outside 0..2^53.")
    MESSAGE_SERVICETOKEN_MISMATCH = (6033, ResponseCode.FAIL, "Service token binding does not match the message tokens.")
    MESSAGE_PEER_SERVICETOKEN_MISMATCH = (6034, ResponseCode.FAIL, "Peer service token binding does not match the message peer tokens.")
    RESPONSE_REQUIRES_INTEGRITY_PROTECTION = (6035, ResponseCode.KEYX_REQUIRED, "Responder must integrity-protect its response but cannot; requester should establish keys.")
    HANDSHAKE_DATA_MISSING = (6036, ResponseCode.FAIL, "Handshake message not renewable or without key request data.")
    MESSAGE_RECIPIENT_MISMATCH = (6037, ResponseCode.FAIL, "Header recipient is not the local entity (legacy check).")
    MESSAGE_ENTITYDATABASED_VERIFICATION_FAILED = (6038, ResponseCode.ENTITYDATA_REAUTH, "Header signature failed under entity authentication data.")
    MESSAGE_MASTERTOKENBASED_VERIFICATION_FAILED = (6039, ResponseCode.ENTITY_REAUTH, "Header signature failed under master token session keys.")
    MESSAGE_REPLAYED_UNRECOVERABLE = (6040, ResponseCode.ENTITY_REAUTH, "Non-replayable ID too far out of range to recover; entity must re-authenticate.")
    UNEXPECTED_LOCAL_MESSAGE_SENDER = (6041, ResponseCode.FAIL, "Message claims to come from the local entity (legacy check).")
    UNENCRYPTED_MESSAGE_WITH_USERAUTHDATA = (6042, ResponseCode.FAIL, "User authentication data in an unencrypted header.")
    MESSAGE_SENDER_MISMATCH = (6043, ResponseCode.FAIL, "Remote identity differs from the expected remote entity identity.")
    MESSAGE_EXPIRED_NOT_RENEWABLE = (6044, ResponseCode.EXPIRED, "Master token expired and the message is not renewable.")
    MESSAGE_EXPIRED_NO_KEYREQUEST_DATA = (6045, ResponseCode.EXPIRED, "Master token expired and the message has no key request data.")
    UNIDENTIFIED_KEYX_SCHEME = (7000, ResponseCode.FAIL, "Unknown key exchange scheme name.")
    KEYX_FACTORY_NOT_FOUND = (7001, ResponseCode.FAIL, "No factory for the key exchange scheme / no usable key request.")
    KEYX_REQUEST_NOT_FOUND = (7002, ResponseCode.FAIL, "No key request matches the key response.")
    UNIDENTIFIED_KEYX_KEY_ID = (7003, ResponseCode.FAIL, "Unknown SYMMETRIC_WRAPPED key ID.")
    UNSUPPORTED_KEYX_KEY_ID = (7004, ResponseCode.FAIL, "SYMMETRIC_WRAPPED key ID not supported.")
    UNIDENTIFIED_KEYX_MECHANISM = (7005, ResponseCode.FAIL, "Unknown key exchange mechanism.")
    UNSUPPORTED_KEYX_MECHANISM = (7006, ResponseCode.FAIL, "Key exchange mechanism not supported.")
    KEYX_RESPONSE_REQUEST_MISMATCH = (7007, ResponseCode.FAIL, "Key response does not correspond to the key request.")
    KEYX_PRIVATE_KEY_MISSING = (7008, ResponseCode.FAIL, "Requester private key for the exchange is missing.")
    UNKNOWN_KEYX_PARAMETERS_ID = (7009, ResponseCode.FAIL, "Unknown Diffie-Hellman parameters ID.")
    KEYX_MASTER_TOKEN_MISSING = (7010, ResponseCode.FAIL, "Key exchange needs a master token that is missing.")
    KEYX_INVALID_PUBLIC_KEY = (7011, ResponseCode.FAIL, "Key exchange public key invalid.")
    KEYX_PUBLIC_KEY_MISSING = (7012, ResponseCode.FAIL, "Key exchange public key missing.")
    KEYX_WRAPPING_KEY_MISSING = (7013, ResponseCode.FAIL, "Ladder wrapping key / wrap data missing or unknown.")
    KEYX_WRAPPING_KEY_ID_MISSING = (7014, ResponseCode.FAIL, "Wrapping key ID missing.")
    KEYX_INVALID_WRAPPING_KEY = (7015, ResponseCode.FAIL, "Wrapping key invalid.")
    KEYX_INCORRECT_DATA = (7016, ResponseCode.FAIL, "The entity may not use this key exchange scheme.")
    KEYX_INCORRECT_MECHANISM = (7017, ResponseCode.FAIL, "The entity may not use this key exchange mechanism.")
    KEYX_DERIVATION_KEY_MISSING = (7018, ResponseCode.FAIL, "Derivation key missing.")
    KEYX_INVALID_ENCRYPTION_KEY = (7019, ResponseCode.FAIL, "Exchanged encryption key invalid.")
    KEYX_INVALID_HMAC_KEY = (7020, ResponseCode.FAIL, "Exchanged HMAC key invalid.")
    KEYX_INVALID_WRAPDATA = (7021, ResponseCode.FAIL, "Wrap data invalid.")
    UNSUPPORTED_KEYX_SCHEME = (7022, ResponseCode.FAIL, "Key exchange scheme not supported.")
    KEYX_IDENTITY_NOT_FOUND = (7023, ResponseCode.FAIL, "Identity for the key exchange not found.")
    INTERNAL_EXCEPTION = (9000, ResponseCode.TRANSIENT_FAILURE, "Unexpected internal failure (response code asks the requester to retry later).")
    MSL_COMMS_FAILURE = (9001, ResponseCode.FAIL, "I/O failure communicating with the remote entity.")
    NONE = (9999, ResponseCode.FAIL, "Placeholder used by unit tests.")


_BY_INTERNAL_CODE: dict[int, MslError] = {e.internal_code: e for e in MslError}


class MslException(Exception):
    """Base of every missile failure; carries an :class:`MslError` and protocol context."""

    user_message: str | None = None
    """A message for the remote entity's user, sent in the error response's ``usermsg``
    (errors.md §1, §3) when this failure is answered; None: none, or the one a server's
    ``error_messages`` gives. Never put secrets in it: it travels in the clear."""

    def __init__(
        self,
        error: MslError,
        detail: str | None = None,
        *,
        cause: BaseException | None = None,
        user_message: str | None = None,
    ) -> None:
        self.error = error
        if user_message is not None:
            # Only when given: a subclass may answer it otherwise (the peer's own message
            # for an error response it received, missile.engine.errors.MslErrorResponse).
            self.user_message = user_message
        self.detail = detail
        self.master_token: Any = None
        self.entity_auth_data: Any = None
        self.user_id_token: Any = None
        self.user_auth_data: Any = None
        self.message_id: int | None = None
        text = f"{error.name} ({error.internal_code}): {error.message}"
        if detail:
            text = f"{text} [{detail}]"
        super().__init__(text)
        if cause is not None:
            self.__cause__ = cause

    @property
    def response_code(self) -> ResponseCode:
        """The response code a peer should receive for this failure."""
        return self.error.response_code

    # The setters keep the first value set, as the reference does: the innermost
    # layer knows best which token or message the failure belongs to.
    def set_master_token(self, master_token: Any) -> MslException:
        """Attach the master token this failure concerns (first one wins)."""
        if self.master_token is None and self.entity_auth_data is None:
            self.master_token = master_token
        return self

    def set_entity_auth_data(self, entity_auth_data: Any) -> MslException:
        """Attach the entity authentication data this failure concerns (first one wins)."""
        if self.master_token is None and self.entity_auth_data is None:
            self.entity_auth_data = entity_auth_data
        return self

    def set_user_id_token(self, user_id_token: Any) -> MslException:
        """Attach the user ID token this failure concerns (first one wins)."""
        if self.user_id_token is None and self.user_auth_data is None:
            self.user_id_token = user_id_token
        return self

    def set_user_auth_data(self, user_auth_data: Any) -> MslException:
        """Attach the user authentication data this failure concerns (first one wins)."""
        if self.user_id_token is None and self.user_auth_data is None:
            self.user_auth_data = user_auth_data
        return self

    def set_message_id(self, message_id: int) -> MslException:
        """Attach the message ID of the message that failed (first one wins)."""
        if not 0 <= message_id <= 2**53:
            raise ValueError("message ID out of range")
        if self.message_id is None:
            self.message_id = message_id
        return self


class MslEncodingException(MslException):
    """Malformed or unencodable MSL data."""


class MslCryptoException(MslException):
    """A cryptographic operation failed or was not possible."""


class MslMasterTokenException(MslException):
    """A master token is invalid, untrusted, expired or revoked."""


class MslUserIdTokenException(MslException):
    """A user ID token is invalid, untrusted or revoked."""


class MslEntityAuthException(MslException):
    """Entity authentication failed."""


class MslUserAuthException(MslException):
    """User authentication failed."""


class MslKeyExchangeException(MslException):
    """Key exchange failed."""


class MslMessageException(MslException):
    """A message or payload chunk is invalid."""


class MslInternalException(MslException):
    """An unexpected internal failure (reported to peers as INTERNAL_EXCEPTION)."""

    def __init__(self, detail: str | None = None, *, cause: BaseException | None = None) -> None:
        super().__init__(MslError.INTERNAL_EXCEPTION, detail, cause=cause)
