//! Checkpoint and restart settings.

use std::path::PathBuf;
use std::time::Duration;

/// How a job takes checkpoints.
///
/// ```
/// use std::time::Duration;
/// use rivulet_runtime::checkpoint::CheckpointConfig;
///
/// let config = CheckpointConfig::every(Duration::from_secs(10))
///     .with_timeout(Duration::from_secs(60))
///     .with_directory("/tmp/rivulet-checkpoints")
///     .with_retained(3);
/// assert_eq!(config.interval(), Duration::from_secs(10));
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckpointConfig {
    pub(crate) interval: Duration,
    pub(crate) timeout: Duration,
    pub(crate) min_pause: Duration,
    pub(crate) directory: Option<PathBuf>,
    pub(crate) retained: usize,
    pub(crate) resume: bool,
    pub(crate) mode: CheckpointingMode,
    pub(crate) unaligned: bool,
    pub(crate) aligned_timeout: Option<Duration>,
    pub(crate) max_concurrent: usize,
}

/// The consistency a checkpoint guarantees.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum CheckpointingMode {
    /// Aligned barriers: a task with several inputs holds back an input whose barrier arrived
    /// until all have, so the snapshot reflects each record exactly once.
    #[default]
    ExactlyOnce,
    /// No alignment: inputs keep flowing while the barriers arrive, and the snapshot is taken
    /// when the last one does. Faster under skew; after a restore some records are processed
    /// twice.
    AtLeastOnce,
}

impl CheckpointConfig {
    /// Checkpoints triggered every `interval`.
    pub fn every(interval: Duration) -> Self {
        CheckpointConfig {
            interval,
            timeout: Duration::from_secs(600),
            min_pause: Duration::ZERO,
            directory: None,
            retained: 2,
            resume: false,
            mode: CheckpointingMode::ExactlyOnce,
            unaligned: false,
            aligned_timeout: None,
            max_concurrent: 1,
        }
    }

    /// Sets how long a checkpoint may take before it is abandoned.
    ///
    /// Default: 10 minutes, as Flink's.
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Sets the least time between the end of one checkpoint and the start of the next.
    ///
    /// Default: zero.
    pub fn with_min_pause(mut self, pause: Duration) -> Self {
        self.min_pause = pause;
        self
    }

    /// Stores checkpoints in `directory`, one folder per checkpoint, instead of in memory.
    ///
    /// Default: in memory (lost with the process).
    pub fn with_directory(mut self, directory: impl Into<PathBuf>) -> Self {
        self.directory = Some(directory.into());
        self
    }

    /// Sets how many completed checkpoints are kept; older ones are deleted.
    ///
    /// Default: 2, so a corrupt latest checkpoint can fall back to the one before.
    pub fn with_retained(mut self, retained: usize) -> Self {
        self.retained = retained.max(1);
        self
    }

    /// Starts the job from the latest complete checkpoint in the directory (set with
    /// [`CheckpointConfig::with_directory`]), as a job that was stopped or killed resumes; a
    /// corrupt latest checkpoint falls back to the one before.
    ///
    /// Default: off; a new job starts from its sources' beginning.
    pub fn resume_from_latest(mut self) -> Self {
        self.resume = true;
        self
    }

    /// Sets the checkpointing mode.
    ///
    /// Default: [`CheckpointingMode::ExactlyOnce`].
    pub fn with_mode(mut self, mode: CheckpointingMode) -> Self {
        self.mode = mode;
        self
    }

    /// Takes exactly-once checkpoints **unaligned**: a barrier overtakes the data queued ahead of
    /// it in every channel (it travels in the channels' priority lane), a task with several
    /// inputs snapshots as soon as the first barrier arrives instead of waiting for all, and the
    /// overtaken data (per input channel, up to that channel's barrier) is stored with the
    /// snapshot and replayed into the operator on restore, before any new input. Checkpoints then
    /// complete quickly under backpressure, at the price of larger snapshots. Savepoints are
    /// always aligned. Ignored in [`CheckpointingMode::AtLeastOnce`].
    ///
    /// A checkpoint stored with in-flight data restores at the parallelism that took it only.
    ///
    /// Default: off (aligned).
    pub fn with_unaligned(mut self, unaligned: bool) -> Self {
        self.unaligned = unaligned;
        self
    }

    /// Starts every checkpoint aligned and switches it to unaligned at a task whose alignment
    /// took longer than `timeout` (as Flink's aligned checkpoint timeout): jobs without
    /// backpressure keep small aligned snapshots, and backpressured ones still complete their
    /// checkpoints. Turns unaligned checkpoints on (see [`CheckpointConfig::with_unaligned`]);
    /// `Duration::ZERO` means unaligned from the start.
    ///
    /// Default: none; with unaligned checkpoints on, every checkpoint is unaligned at once.
    pub fn with_aligned_checkpoint_timeout(mut self, timeout: Duration) -> Self {
        self.unaligned = true;
        self.aligned_timeout = (!timeout.is_zero()).then_some(timeout);
        self
    }

    /// Sets how many checkpoints may be in progress at once: a checkpoint is triggered on time
    /// as long as fewer are pending. A completed checkpoint subsumes the older ones still
    /// pending, which are abandoned. A minimum pause (see [`CheckpointConfig::with_min_pause`])
    /// still applies between a completion and the next trigger; savepoints wait until no
    /// checkpoint is pending. Values below 1 count as 1.
    ///
    /// Default: 1, as Flink's.
    pub fn with_max_concurrent_checkpoints(mut self, max: usize) -> Self {
        self.max_concurrent = max.max(1);
        self
    }

    /// The checkpoint interval.
    pub fn interval(&self) -> Duration {
        self.interval
    }
}

/// Where a job's first run takes its state from: a savepoint folder (as returned by
/// [`JobHandle::trigger_savepoint`](crate::JobHandle::trigger_savepoint)).
///
/// State is mapped to operators by their uid (set with `uid(..)`; operators without one get an
/// id from their position and name, which changes when the job changes). The job may run at
/// another parallelism than the one that took the savepoint: keyed state moves with its key
/// groups and source splits are redistributed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SavepointRestore {
    pub(crate) path: PathBuf,
    pub(crate) allow_non_restored_state: bool,
}

impl SavepointRestore {
    /// Restores from the savepoint folder at `path`.
    pub fn from(path: impl Into<PathBuf>) -> Self {
        SavepointRestore {
            path: path.into(),
            allow_non_restored_state: false,
        }
    }

    /// Ignores state in the savepoint that belongs to no operator of the job (e.g. an operator
    /// that was removed) instead of failing.
    ///
    /// Default: fail, naming the operator.
    pub fn allow_non_restored_state(mut self) -> Self {
        self.allow_non_restored_state = true;
        self
    }
}

/// What happens when a task fails.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RestartStrategy {
    /// Fail the job at the first failure.
    None,
    /// Restart up to `attempts` times, waiting `delay` before each restart.
    FixedDelay {
        /// How many restarts are allowed.
        attempts: u32,
        /// The wait before a restart.
        delay: Duration,
    },
    /// Restart as long as at most `max_failures` failures happen within `interval`.
    FailureRate {
        /// The most failures allowed within the interval.
        max_failures: u32,
        /// The sliding interval failures are counted in.
        interval: Duration,
        /// The wait before a restart.
        delay: Duration,
    },
}

impl RestartStrategy {
    /// Restart up to `attempts` times after `delay`.
    pub fn fixed_delay(attempts: u32, delay: Duration) -> Self {
        RestartStrategy::FixedDelay { attempts, delay }
    }

    /// Decides, given the times of the failures so far (the latest last), whether to restart
    /// and after which delay.
    pub(crate) fn next_delay(&self, failures: &[std::time::Instant]) -> Option<Duration> {
        match *self {
            RestartStrategy::None => None,
            RestartStrategy::FixedDelay { attempts, delay } => {
                (failures.len() as u32 <= attempts).then_some(delay)
            }
            RestartStrategy::FailureRate {
                max_failures,
                interval,
                delay,
            } => {
                let last = *failures.last()?;
                let recent = failures
                    .iter()
                    .filter(|t| last.duration_since(**t) <= interval)
                    .count() as u32;
                (recent <= max_failures).then_some(delay)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Instant;

    #[test]
    fn fixed_delay_counts_attempts() {
        let s = RestartStrategy::fixed_delay(2, Duration::ZERO);
        let now = Instant::now();
        assert!(s.next_delay(&[now]).is_some());
        assert!(s.next_delay(&[now, now]).is_some());
        assert!(s.next_delay(&[now, now, now]).is_none());
        assert!(RestartStrategy::None.next_delay(&[now]).is_none());
    }
}
