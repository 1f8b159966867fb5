"""The names of the former `_verify` module (private, transitional).

Attentional Feature Fusion, https://arxiv.org/abs/2009.14082

The exporters' shared machinery now lives in one module per concern
(`model_io`, `rebuild`, `checks`, `runners`, `staging`, `environment`,
`report`, `pipeline`); `keras_aff.cli` still imports `input_names`,
`normalize_inputs` and `median_latency_ms` from here. Delete this module
once nothing imports it.
"""

from keras_aff._validation import check_bool
from keras_aff.export import checks
from keras_aff.export import environment
from keras_aff.export import model_io
from keras_aff.export import rebuild
from keras_aff.export import report
from keras_aff.export import runners
from keras_aff.export import staging

INT8_MEAN_RTOL = checks.INT8_MEAN_RTOL
MIN_TOP1_AGREEMENT = checks.MIN_TOP1_AGREEMENT
RTOL = checks.RTOL
Stats = checks.Stats
check = checks.check
error_stats = checks.error_stats
merge_stats = checks.merge_stats
tolerance_for = checks.tolerance_for
import_litert_interpreter = environment.import_litert_interpreter
import_onnx_tools = environment.import_onnx_tools
DEFAULT_SPATIAL = model_io.DEFAULT_SPATIAL
check_model = model_io.check_model
input_names = model_io.input_names
input_specs = model_io.input_specs
keras_outputs = model_io.keras_outputs
normalize_inputs = model_io.normalize_inputs
random_inputs = model_io.random_inputs
take = model_io.take
HALF_RTOL = rebuild.HALF_RTOL
float32_model = rebuild.float32_model
is_mixed_precision = rebuild.is_mixed_precision
prepare_float32 = rebuild.prepare_float32
relax_spatial_dims = rebuild.relax_spatial_dims
ExportReport = report.ExportReport
ExportVerificationError = report.ExportVerificationError
LATENCY_RUNS = runners.LATENCY_RUNS
LATENCY_WARMUP = runners.LATENCY_WARMUP
Runner = runners.Runner
median_latency_ms = runners.median_latency_ms
output_order = runners.output_order
StagedPath = staging.StagedPath
path_size = staging.path_size
require_tensorflow_backend = environment.require_tensorflow_backend
validate_flag = check_bool
