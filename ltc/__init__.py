"""ltc-claims: the claims side of long-term care insurance."""

from ltc.privacy import install_log_masking

install_log_masking()
