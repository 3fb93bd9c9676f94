"""The wire contract between the server and everything that talks to it.

``schemas`` (request and response models, also the OpenAPI schema), ``client`` (the typed HTTP client),
``archive`` (the snapshot tar.gz format and its safety checks) and ``numbers`` (range checks on the
numbers an agent may claim). The server implements this contract; agents, the orchestrator and the CLI
use it. Nothing here imports ``aarlab.server``.
"""

from aarlab.api.archive import UnsafeArchiveError, pack_folder, safe_extract, validate_archive
from aarlab.api.client import Client, ServerError

__all__ = ["Client", "ServerError", "UnsafeArchiveError", "pack_folder", "safe_extract", "validate_archive"]
