"""ltc-claims: the command line (`ltc`), the top floor. Nothing else in the project imports it."""

import common  # noqa: F401  (masks ID numbers in every log record)
