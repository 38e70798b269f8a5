"""Exports of a run: the merged model, the adapter alone, a bitsandbytes 4/8-bit model, a GGUF file.

Everything lands under saves/<run>/exports/<name>/ (plus <name>.zip), written into a hidden
temporary folder first and renamed when complete, so nothing half-written lists as an export.
"""

from .common import (
    DTYPES,
    EXPORTS_DIR,
    GGUF_TYPES,
    KINDS,
    MERGED_DTYPES,
    QUANT_BITS,
    SHARD_SIZES,
    ExportEntry,
    ExportError,
    ExportResult,
    check_disk_space,
    delete_export,
    export_entries,
    export_name,
    exports_dir,
    list_exports,
    zip_folder,
)
from .kinds import (
    expected_size,
    export_adapter,
    export_gguf,
    export_merged,
    export_quantized,
    merge_adapter,
    run_export,
)
from .parity import PARITY_FILE, read_parity
from .source import source_folder

__all__ = [
    "DTYPES",
    "EXPORTS_DIR",
    "GGUF_TYPES",
    "KINDS",
    "MERGED_DTYPES",
    "PARITY_FILE",
    "QUANT_BITS",
    "SHARD_SIZES",
    "ExportEntry",
    "expected_size",
    "read_parity",
    "ExportError",
    "ExportResult",
    "check_disk_space",
    "delete_export",
    "export_adapter",
    "export_entries",
    "export_gguf",
    "export_merged",
    "export_name",
    "export_quantized",
    "exports_dir",
    "list_exports",
    "merge_adapter",
    "run_export",
    "source_folder",
    "zip_folder",
]
