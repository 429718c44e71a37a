"""The error hierarchy. Each error says what went wrong and, where it matters, whether to retry."""

from __future__ import annotations


class RarewatchError(Exception):
    """Base class of every error rarewatch raises on purpose."""


class ConfigError(RarewatchError):
    """The configuration is invalid. `file` and `line` point at the offending value when known;
    `variable` names the `RAREWATCH_...` environment variable the value came from instead."""

    def __init__(
        self,
        message: str,
        *,
        file: str | None = None,
        line: int | None = None,
        variable: str | None = None,
    ) -> None:
        self.message = message
        self.file = file
        self.line = line
        self.variable = variable
        super().__init__(self.__str__())

    def __str__(self) -> str:
        where = f"environment variable {self.variable}" if self.variable else _location(self.file, self.line)
        return f"{where}: {self.message}" if where else self.message


class RuleError(RarewatchError):
    """A rule file is invalid: names the file, the line (1-based) and the rule id when known."""

    def __init__(
        self, message: str, *, file: str | None = None, line: int | None = None, rule_id: str | None = None
    ) -> None:
        self.message = message
        self.file = file
        self.line = line
        self.rule_id = rule_id
        super().__init__(self.__str__())

    def __str__(self) -> str:
        where = _location(self.file, self.line)
        rule = f" [rule {self.rule_id}]" if self.rule_id else ""
        return f"{where}{rule}: {self.message}" if where or rule else self.message


class SourceError(RarewatchError):
    """Fetching or parsing one source failed. `retry_after` (seconds) comes from a 429/503 Retry-After."""

    def __init__(self, message: str, *, retry_after: float | None = None) -> None:
        self.retry_after = retry_after
        super().__init__(message)


class DeliveryError(RarewatchError):
    """A notifier could not deliver an alert.

    `retryable` tells the outbox whether another attempt can succeed (5xx, timeouts, 429) or not
    (4xx such as a bad payload). `retry_after` (seconds) is the receiver's own hint. `disable`
    means the destination is gone for good (HTTP 410) and should stop receiving deliveries.
    """

    def __init__(
        self,
        message: str,
        *,
        retryable: bool,
        retry_after: float | None = None,
        disable: bool = False,
    ) -> None:
        self.retryable = retryable
        self.retry_after = retry_after
        self.disable = disable
        super().__init__(message)


class StoreError(RarewatchError):
    """The state store (SQLite or Redis) failed; the operation may succeed when it is back."""


def _location(file: str | None, line: int | None) -> str:
    if file and line:
        return f"{file}:{line}"
    return file or ""
