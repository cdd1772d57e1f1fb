"""The result-row schema: one row per cell attempt, one parquet file per row.

This module is the only part of ``bench`` that ``analysis`` imports. Columns carry their unit
in their name. ``SCHEMA_VERSION`` is stored in each parquet file's metadata (key
``qssm.schema_version``) together with the environment (key ``qssm.env``, JSON); readers refuse
to merge files of different versions.
"""
from __future__ import annotations

SCHEMA_VERSION = 4
# Older versions this one reads, upgraded on reading (bench.store): version 1 lacked precision,
# track_activations, the learning protocol and the divergence/activation columns; version 2 lacked
# repeat, circuit_probe_steps and circuit_share (new metrics null there; precision from dtype);
# version 3 lacked nodes (1 there) and hostnames (null).
READABLE_VERSIONS = (1, 2, 3, 4)
# Values of the cell fields added since version 1 in older rows (precision: fp64 for float64, else fp32).
UPGRADE_DEFAULTS = {"track_activations": 0, "lr_schedule": "constant", "eval_every": 0, "repeat": 0,
                    "circuit_probe_steps": 0, "nodes": 1}
META_SCHEMA_KEY = b"qssm.schema_version"
META_ENV_KEY = b"qssm.env"

STATUSES = ("ok", "failed", "oom", "timeout", "nan")

# (name, pandas dtype, description). Cell fields first: they identify the cell.
CELL_COLUMNS = [
    ("model", "string", "registry name of the model (quantum_mamba_ssm, ...)"),
    ("task", "string", "synthetic task (marked_recall, selective_copy, adding, order) or 'file:<path>'"),
    ("seq_len", "int64", "T, timesteps per sample (the models' n_timesteps)"),
    ("batch_size", "int64", "global batch size (split evenly across ranks)"),
    ("world_size", "int64", "number of DDP ranks"),
    ("nodes", "int64", "nodes the ranks are spread over, world_size / nodes on each (SLURM only when > 1; in "
     "cell_id only when > 1)"),
    ("device", "string", "cpu or cuda"),
    ("dtype", "string", "float32 or float64: the parameters' dtype (float64 exactly when precision is fp64)"),
    ("precision", "string", "fp32, fp64, bf16-mixed or fp16-mixed (autocast with float32 parameters; fp16 "
     "with loss scaling)"),
    ("steps", "int64", "optimiser steps requested (warm-up included)"),
    ("warmup_steps", "int64", "leading steps excluded from timing"),
    ("lr", "float64", "AdamW learning rate (the peak, under a schedule)"),
    ("lr_schedule", "string", "constant, or cosine: linear warm-up over max(1, steps // 20) steps, then cosine "
     "decay to 0 at steps"),
    ("eval_every", "int64", "held-out accuracy every k optimiser steps (eval_curve; 0: only at the end)"),
    ("target_accuracy", "float64", "stop once a periodic evaluation reaches this held-out accuracy (null: "
     "train for steps)"),
    ("seed", "int64", "seed of data, initialisation and dropout"),
    ("eval_samples", "int64", "held-out samples scored for accuracy"),
    ("num_threads", "int64", "torch intra-op threads per rank; 0 = auto (the rank's share of the node's "
     "cores; the value used is threads_per_rank)"),
    ("time_budget_s", "float64", "wall-time budget of the attempt in seconds (null: none); a run limit, "
     "not part of cell_id"),
    ("track_activations", "int64", "record each block's output RMS every k steps (0: off; see activation_curve)"),
    ("repeat", "int64", "replicate index: the same cell (same seed) run again as a separate cell; analysis "
     "treats repeats as replicates (in cell_id only when non-zero)"),
    ("circuit_probe_steps", "int64", "quantum models: after the timed steps, this many interleaved pairs of "
     "forward+backward passes with and without the circuits measure circuit_share (0: off)"),
    ("n_qubits", "Int64", "q (quantum models only; null otherwise)"),
    ("qlcu_layers", "Int64", "l, circuit layers (quantum models only)"),
    ("feature_dim", "int64", "D, input features per timestep"),
    ("d_model", "Int64", "d (SSM models only)"),
    ("d_state", "Int64", "N (SSM models only)"),
    ("n_layers", "Int64", "L, blocks (SSM models only)"),
    ("output_dim", "int64", "O, classes"),
    ("dropout", "float64", "dropout probability"),
    ("hidden_dim", "Int64", "H (Gated models only)"),
    ("chunk_size", "Int64", "C (Gated models only)"),
    ("quantum_steps", "Int64", "timesteps given to the circuits (QuantumMambaSSM only)"),
    ("quantum_backend", "string", "torch or pennylane (quantum models only)"),
    ("qml_device", "string", "PennyLane device (pennylane backend only)"),
    ("scan", "string", "selective-scan implementation: chunked or reference (SSM models only)"),
]

METRIC_COLUMNS = [
    ("cell_id", "string", "short stable hash of exactly the cell fields"),
    ("status", "string", "one of ok, failed, oom, timeout, nan"),
    ("error", "string", "error text for a non-ok status (empty when ok)"),
    ("attempt", "int64", "1 for the first attempt of this cell in this folder, then 2, ..."),
    ("requeues", "int64", "times the cell was requeued (SLURM timeout/preemption)"),
    ("launcher", "string", "inline, local, torchrun, submitit, sbatch or mpi"),
    ("hostnames", "string", "the ranks' hosts, comma-separated in rank order (null in rows before schema 4)"),
    ("started_at", "string", "UTC ISO-8601 start time"),
    ("wall_time_s", "float64", "wall time of the whole attempt"),
    ("n_params", "int64", "trainable parameters (docs/models.md counting rule)"),
    ("steps_run", "int64", "optimiser steps actually run"),
    ("samples_per_s", "float64", "global training samples per second (timed steps)"),
    ("timesteps_per_s", "float64", "global training timesteps per second (samples * T)"),
    ("step_time_median_s", "float64", "median training step time (max over ranks per step)"),
    ("step_time_p90_s", "float64", "90th percentile training step time"),
    ("step_time_min_s", "float64", "fastest training step time"),
    ("infer_time_median_s", "float64", "median no-grad forward time of one batch"),
    ("peak_mem_train_bytes", "float64", "CUDA max_memory_allocated in training; on CPU the peak "
     "of live tensor bytes (see mem_source)"),
    ("peak_mem_infer_bytes", "float64", "as peak_mem_train_bytes, for the no-grad forward"),
    ("peak_rss_bytes", "float64", "peak resident set size, max over ranks"),
    ("saved_bytes_per_step", "float64", "bytes saved for backward in one training step (rank 0)"),
    ("mem_source", "string", "how peak_mem_* was measured: cuda or cpu-tensors"),
    ("final_loss", "float64", "training loss of the last step (mean over ranks)"),
    ("accuracy", "float64", "held-out accuracy after training"),
    ("device_name", "string", "CPU or GPU model name"),
    ("threads_per_rank", "int64", "torch intra-op threads per rank"),
    ("loss_curve", "string", "JSON list: training loss at every step run (mean over ranks)"),
    ("eval_curve", "string", "JSON list of [step, held-out accuracy, train_wall_s] every eval_every steps; "
     "train_wall_s sums training-step times only"),
    ("steps_to_target", "Int64", "optimiser steps run when the held-out accuracy first reached "
     "target_accuracy (null: never)"),
    ("time_to_target_s", "float64", "training wall time (steps only, evaluation excluded) until "
     "target_accuracy was reached (null: never)"),
    ("diverged_step", "Int64", "nan rows: the step (0-based) whose loss or gradient norm was not finite"),
    ("diverged_module", "string", "nan rows: first module whose output (forward) or whose backward (its input "
     "gradient) was non-finite when that step was replayed; '(loss)' when only the loss was"),
    ("diverged_phase", "string", "nan rows: forward or backward (null when the replay was finite)"),
    ("activation_rms_max", "string", "JSON {block: largest RMS of its output seen} (tracked steps and, on "
     "nan rows, the replayed step); blocks are the model's top-level modules, blocks.0, blocks.1, .."),
    ("activation_curve", "string", "JSON list of [step, {block: RMS}] every track_activations steps"),
    ("circuit_share", "float64", "share of a training forward+backward spent in the circuits: 1 - (median "
     "with zero-cost circuit stand-ins) / (median with the circuits), over circuit_probe_steps interleaved "
     "pairs, mean over ranks (null: not measured or not a quantum model)"),
]

COLUMNS = CELL_COLUMNS + METRIC_COLUMNS
COLUMN_NAMES = [c[0] for c in COLUMNS]
CELL_FIELD_NAMES = [c[0] for c in CELL_COLUMNS]
DTYPES = {name: dtype for name, dtype, _ in COLUMNS}
