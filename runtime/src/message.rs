//! What travels through a channel: data and the control events that order it.

/// A checkpoint barrier: separates the records before checkpoint `id` from those after it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Barrier {
    /// The checkpoint this barrier belongs to.
    pub checkpoint_id: u64,
    /// When the checkpoint was triggered, in milliseconds since the Unix epoch.
    pub timestamp: i64,
    /// Whether the barrier is unaligned: it overtakes the data queued ahead of it, and a task
    /// snapshots at the first one it receives (see
    /// [`CheckpointConfig::with_unaligned`](crate::checkpoint::CheckpointConfig::with_unaligned)).
    pub unaligned: bool,
}

/// One message on a channel. Data and control events share a channel so they stay in order.
#[derive(Debug, Clone)]
pub enum Message<B> {
    /// A batch of records.
    Data(B),
    /// No record with a timestamp at or below this one will follow on this channel.
    Watermark(i64),
    /// The sender became idle (`true`): it holds back no watermark until it is active again
    /// (`false`, or any data or watermark).
    Idle(bool),
    /// A checkpoint barrier.
    Barrier(Barrier),
    /// The sender has finished; nothing follows on this channel.
    EndOfInput,
}
