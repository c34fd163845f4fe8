"""What every floor of ltc-claims shares, below tasks/, storage/ and flows/: settings, the ID number vault,
money and masking formats, log masking, fault points and the reading of inbound text. It imports nothing of the
project but `rules.errors`; the command line (`ltc/`) is above it and nothing here imports it."""

from common.privacy import install_log_masking

install_log_masking()
