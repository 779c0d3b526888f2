"""The one exception the evidence package raises for bad bundles.

A bundle may be years old, copied by hand or truncated by a killed run; whatever is wrong with
it surfaces as a single :class:`BundleError` whose message names the file, the field and what to
do, so a CLI can print it as is and exit 2:

>>> try:
...     raise BundleError("runs/x/manifest.json: field 'nonce' is missing; re-run pcert")
... except BundleError as error:
...     print(error)
runs/x/manifest.json: field 'nonce' is missing; re-run pcert
"""


class BundleError(Exception):
    """A bundle (or a file meant for one) is missing, unreadable or does not match the format."""


class InputError(BundleError):
    """A file given alongside a bundle (waivers, catalog snapshot, key, run index) is missing,
    unreadable or malformed. A :class:`BundleError`, so a CLI that prints bundle errors and
    exits 2 handles it the same way; the message names the file, the entry and the field."""
