"""Docker SDK exceptions turned into gefreg errors, so an unreachable engine is always exit 3
with how to start it."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from gefreg.engine.types import START_HINT, EngineUnavailable
from gefreg.errors import EnvironmentFailure


@contextmanager
def translated(action: str) -> Iterator[None]:
    """An engine that does not answer (connection refused, no socket, an SDK failure without an
    HTTP answer) becomes :class:`EngineUnavailable`; API errors with an answer pass through."""
    import docker.errors
    import requests.exceptions

    try:
        yield
    except (requests.exceptions.ConnectionError, docker.errors.DockerException) as exc:
        if isinstance(exc, docker.errors.APIError) and exc.response is not None:
            raise
        raise EngineUnavailable(
            f"the Docker engine does not answer while {action}: {exc}", START_HINT
        ) from None


@contextmanager
def refused(action: str) -> Iterator[None]:
    """For the container section: an engine that answers with an error (``APIError``, or an
    SDK refusal such as an unsupported API version) becomes EnvironmentFailure with the
    engine's explanation; a stream cut off mid-answer is the engine going away. Used inside
    :func:`translated`, which handles an engine that does not answer at all."""
    import docker.errors
    import requests.exceptions

    try:
        yield
    except docker.errors.APIError as exc:
        raise EnvironmentFailure(
            f"the engine failed while {action}: {exc.explanation or exc}"
        ) from None
    except (docker.errors.InvalidVersion, docker.errors.InvalidArgument) as exc:
        raise EnvironmentFailure(f"the engine cannot do this while {action}: {exc}") from None
    except requests.exceptions.RequestException as exc:
        if isinstance(exc, requests.exceptions.ConnectionError):
            raise  # translated: the engine does not answer
        raise EngineUnavailable(
            f"the Docker engine stopped answering while {action}: {exc}", START_HINT
        ) from None
