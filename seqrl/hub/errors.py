"""Errors of Hub pushes and pulls, and the translation of huggingface_hub's exceptions into them.

huggingface_hub raises HTTP errors (with a status code), token errors, offline-mode errors and the
transport errors of its HTTP client (``requests`` or ``httpx`` depending on its version). Users need to
know which of a few things went wrong and what to do, so each becomes one of the classes below with
a message that says it.
"""

from __future__ import annotations

from contextlib import contextmanager

from huggingface_hub.errors import (
    HfHubHTTPError,
    HFValidationError,
    LocalTokenNotFoundError,
    OfflineModeIsEnabled,
    RepositoryNotFoundError,
    RevisionNotFoundError,
)
from huggingface_hub.utils import validate_repo_id

from seqrl.errors import SeqRLError

LOGIN_HINT = "Log in with `hf auth login` or set HF_TOKEN to a token with write access"
FORCE_HINT = "Choose another repo id, or pass --force (overwrite=True) to push into it anyway"
_HTTP_CLIENT_MODULES = ("httpx", "httpx2", "requests", "urllib3")


class HubError(SeqRLError):
    """A push to or a pull from the Hugging Face Hub failed; the message says why and what to do."""


class HubAuthError(HubError):
    """No token, or the Hub rejected it (401/403)."""


class HubConnectionError(HubError):
    """The Hub could not be reached (network down, timeout, or HF_HUB_OFFLINE set)."""


class ForeignRepoError(HubError):
    """The target repo already holds content that is not a seqrl policy or dataset."""


def check_repo_id(repo_id: str) -> None:
    """Fail before any work on an id the Hub would reject; a push needs 'namespace/name'."""
    with translated_hub_errors("checking the repo id", repo_id):
        validate_repo_id(repo_id)
    if repo_id.count("/") != 1:
        raise HubError(f"'{repo_id}' has no namespace. Use 'namespace/name', e.g. 'your-username/{repo_id}'.")


@contextmanager
def translated_hub_errors(action: str, repo_id: str, after: str = ""):
    """Turn huggingface_hub exceptions raised inside the block into :class:`HubError` subclasses.

    ``action`` says what was being done ("pushing the policy to 'user/repo'"), ``after`` is appended to every message
    (e.g. that the local run folder was not changed). Exceptions that are not about the Hub (bugs)
    pass through unchanged.
    """
    try:
        yield
    except HubError:
        raise
    except Exception as error:  # noqa: BLE001 - classified below; anything unrecognised is re-raised
        translated = _translate(error, action, repo_id)
        if translated is None:
            raise
        message = f"{translated.args[0]} {after}".strip()
        raise type(translated)(message) from error


def _translate(error: Exception, action: str, repo_id: str) -> HubError | None:
    if isinstance(error, HFValidationError):
        return HubError(f"'{repo_id}' is not a valid Hub repo id ({error}). Use 'namespace/name', "
                        "e.g. 'your-username/dt-pendulum'.")
    if isinstance(error, LocalTokenNotFoundError):
        return HubAuthError(f"No Hugging Face token found while {action}. {LOGIN_HINT}.")
    if isinstance(error, OfflineModeIsEnabled):
        return HubConnectionError(f"HF_HUB_OFFLINE is set, so seqrl cannot reach the Hub while {action}. "
                                  "Unset HF_HUB_OFFLINE and run again.")
    if isinstance(error, HfHubHTTPError):
        status = getattr(getattr(error, "response", None), "status_code", None)
        detail = str(error).splitlines()[0]
        if status == 401:
            return HubAuthError(f"The Hub rejected the credentials (401 Unauthorized) while {action}. {LOGIN_HINT}.")
        if status == 403:
            return HubAuthError(
                f"Not allowed (403 Forbidden) while {action}: the token cannot write to '{repo_id}'. Check the repo id "
                f"(its namespace must be your user name or an organisation you can write to). {LOGIN_HINT}."
            )
        if isinstance(error, RevisionNotFoundError):
            return HubError(f"Revision not found while {action} ({detail}). "
                            "Check the revision (branch, tag or commit).")
        if isinstance(error, RepositoryNotFoundError) or status == 404:
            return HubError(
                f"Repo '{repo_id}' was not found while {action}, or the token cannot see it ({detail}). Check the repo id; "
                f"for a private repo, {LOGIN_HINT[0].lower()}{LOGIN_HINT[1:]}."
            )
        if status == 412:
            return HubError(f"'{repo_id}' changed on the Hub while {action} (412 Precondition Failed). Run the command again.")
        return HubError(f"The Hub answered HTTP {status} while {action} ({detail}). Try again later.")
    if isinstance(error, OSError) or type(error).__module__.split(".")[0] in _HTTP_CLIENT_MODULES:
        return HubConnectionError(
            f"Could not reach the Hugging Face Hub while {action} ({type(error).__name__}: {error}). Check the network "
            "connection (and HF_ENDPOINT / proxy settings) and run again."
        )
    return None
