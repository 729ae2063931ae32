"""What the engine raises to the application."""

from __future__ import annotations

from missile.errors import MslError, MslException, ResponseCode
from missile.messages.error_header import ErrorHeader

__all__ = ["MslErrorResponse", "MslMessageLimitExceeded", "ReadTimeout"]


class MslErrorResponse(MslException):
    """The peer answered with an error message the engine could not recover from."""

    def __init__(self, error_header: ErrorHeader) -> None:
        error = error_header.error or MslError.NONE
        detail = f"peer error {error_header.error_code.name}"
        if error_header.error_message:
            detail += f": {error_header.error_message}"
        super().__init__(error, detail, user_message=error_header.user_message)
        self.error_header = error_header
        self.message_id = error_header.message_id

    @property
    def response_code(self) -> ResponseCode:
        """The peer's response code."""
        return self.error_header.error_code

    @property
    def error_message(self) -> str | None:
        """The peer's developer-facing message, if any."""
        return self.error_header.error_message


class MslMessageLimitExceeded(MslException):
    """The 12-message budget of one application request ran out (control.md §6)."""

    def __init__(self, last: MslException | None) -> None:
        super().__init__(last.error if last is not None else MslError.MSL_COMMS_FAILURE, "message budget exhausted")
        self.last_error = last


class ReadTimeout(MslException):
    """The peer sent nothing for longer than the read timeout (MSL_COMMS_FAILURE)."""

    def __init__(self, seconds: float) -> None:
        super().__init__(MslError.MSL_COMMS_FAILURE, f"no data for {seconds:g} s")
        self.seconds = seconds
