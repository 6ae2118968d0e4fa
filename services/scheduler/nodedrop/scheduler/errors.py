"""Store errors become the common domain errors, which the server maps to statuses."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from nodedrop.common import errors as common
from nodedrop.store import InvalidJob, NotFound, PermissionDenied, Unavailable


@contextmanager
def store_errors() -> Iterator[None]:
    try:
        yield
    except InvalidJob as e:
        raise common.InvalidArgument.field(e.field, e.reason) from None
    except NotFound as e:
        raise common.NotFound(str(e)) from None
    except PermissionDenied as e:
        raise common.PermissionDenied(str(e)) from None
    except Unavailable as e:
        # The cause stays in the chain for the server's log; the caller may retry.
        raise common.Unavailable("the queue store is unavailable") from e
