//! Checkpoints: consistent snapshots of a running job, and recovery from them.
//!
//! A coordinator triggers checkpoint `n` periodically. Every source subtask records its split
//! positions, acknowledges them, and emits barrier `n` in-band; an operator snapshots its state
//! when the barrier passes it; a task with several input channels first **aligns**: a channel whose
//! barrier arrived is held back until every channel delivered it. When every operator subtask
//! acknowledged, the checkpoint is complete: it is stored (with `_metadata` written last and
//! atomically) and every operator is notified, which is when exactly-once sinks publish. After a
//! failure the job restarts from the latest complete checkpoint: state restored, sources rewound.
//!
//! **Unaligned** checkpoints (see [`CheckpointConfig::with_unaligned`]) let barriers overtake the
//! data queued in the channels: a task snapshots at the first barrier, and the data its barriers
//! overtook is stored with the snapshot and replayed on restore. An aligned checkpoint can switch
//! to unaligned at a task whose alignment takes too long
//! ([`CheckpointConfig::with_aligned_checkpoint_timeout`]).
//!
//! Modules: `config` (what the user sets), `coordinator` (triggering and acknowledgements),
//! `storage` (memory or a directory), `align` (barrier alignment at multi-input tasks),
//! `unaligned` (the in-flight data an unaligned snapshot keeps).

mod align;
mod config;
mod coordinator;
mod storage;
mod unaligned;

pub(crate) use align::{Aligned, BarrierAligner};
pub use config::{CheckpointConfig, CheckpointingMode, RestartStrategy, SavepointRestore};
pub use coordinator::CheckpointStats;
pub(crate) use coordinator::{CheckpointAcks, Coordinator};
pub(crate) use storage::read_folder;
pub use storage::{CheckpointError, CompletedCheckpoint, InFlightData, SubtaskState};
pub(crate) use unaligned::InFlightLog;
