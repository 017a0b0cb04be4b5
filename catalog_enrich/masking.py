"""Passwords and secrets masked out of URLs and messages, so settings and errors are safe to print or log."""

from __future__ import annotations

import re

#: ``name=value`` parameters whose value is a secret, in a URL query or a libpq connection string
_SECRET_PARAMETER = re.compile(r"(?i)(\w*(?:password|passwd|secret|token))=[^&\s]*")

#: the ``scheme://user:password@`` of a URL inside free text (up to the word's last ``@``)
_URL_PASSWORD = re.compile(r"([A-Za-z][A-Za-z0-9+.-]*://[^\s:/@]*):\S*@")


def mask_url(url: str) -> str:
    """``url`` with every password replaced by ``***``, safe to print or log.

    This works on the text, not on a parse: an unescaped ``/``, ``?``, ``#`` or ``[`` in a password makes
    URL parsers see no password at all, while SQLAlchemy and redis-py still read one. Everything between
    the first ``:`` after the scheme and the last ``@`` is masked, which may hide more than the password but
    never less; so are ``password=`` style parameters (libpq and redis-py read those from the query).
    """
    masked = _SECRET_PARAMETER.sub(r"\1=***", url)
    scheme, separator, rest = masked.partition("://")
    userinfo, at, location = rest.rpartition("@")
    if separator and at and ":" in userinfo:
        user = userinfo.partition(":")[0]
        return f"{scheme}://{user}:***@{location}"
    return masked


def mask_secrets(text: str) -> str:
    """``text`` (an error message from a driver or client library) with the passwords of URLs in it masked."""
    return _URL_PASSWORD.sub(r"\1:***@", _SECRET_PARAMETER.sub(r"\1=***", text))
