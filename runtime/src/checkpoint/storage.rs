//! Where completed checkpoints live: in memory, or in a directory with one folder per
//! checkpoint, per-subtask state files with checksums, and a `_metadata` file written last.

use std::collections::BTreeMap;
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::graph::NodeId;
use crate::keys::hash_key_bytes;
use crate::operator::OperatorState;

/// Why a checkpoint could not be written or read.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CheckpointError {
    /// A file of the checkpoint directory could not be written or read.
    #[error("checkpoint file {path:?}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// What the operating system said.
        #[source]
        source: std::io::Error,
    },
    /// A checkpoint or savepoint was abandoned before it completed.
    #[error("checkpoint {id} was abandoned because {reason}; try again")]
    Aborted {
        /// The checkpoint.
        id: u64,
        /// Why.
        reason: String,
    },
    /// A state file does not match the checksum in `_metadata`, or cannot be decoded.
    #[error("checkpoint file {path:?} is corrupt ({reason}); an older checkpoint will be used")]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
}

/// The in-flight data of one task in an unaligned checkpoint: (input channel, encoded batch)
/// pairs, each channel's batches in the order they were queued.
pub type InFlightData = Vec<(usize, Vec<u8>)>;

/// The state of one operator subtask in a checkpoint.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SubtaskState {
    /// The subtask had finished; it is restored as finished, without state.
    pub finished: bool,
    /// What the operator captured.
    pub state: OperatorState,
    /// For the first operator of a task, in an unaligned checkpoint: the input data the snapshot
    /// owes (what its barriers overtook), as (input channel, encoded batch) in reading order.
    /// Replayed into the operator on restore before any new input.
    pub in_flight: InFlightData,
}

/// A checkpoint every operator subtask acknowledged.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CompletedCheckpoint {
    /// The checkpoint's id.
    pub id: u64,
    /// The state of every operator subtask, by (operator, subtask).
    pub subtasks: BTreeMap<(NodeId, usize), SubtaskState>,
    /// The stable id of every operator (its uid, or one derived from its place in the job), by
    /// which a savepoint maps state to the operators of a changed job.
    pub operator_ids: BTreeMap<NodeId, String>,
}

impl CompletedCheckpoint {
    /// The keyed state of `node` over all its subtasks, for a subtask to pick its key groups
    /// from (so a checkpoint restores at another parallelism too).
    pub(crate) fn keyed_state_of(&self, node: NodeId) -> OperatorState {
        let mut merged = OperatorState::default();
        for ((n, _), subtask) in self.subtasks.range((node, 0)..=(node, usize::MAX)) {
            debug_assert_eq!(*n, node);
            merged
                .keyed
                .extend(subtask.state.keyed.iter().map(|(k, v)| (*k, v.clone())));
        }
        merged
    }

    /// The non-keyed state blobs of every subtask of `node`, in subtask order.
    pub(crate) fn operator_states_of(&self, node: NodeId) -> Vec<&SubtaskState> {
        self.subtasks
            .range((node, 0)..=(node, usize::MAX))
            .map(|(_, s)| s)
            .collect()
    }
}

#[derive(Serialize, Deserialize)]
struct Metadata {
    id: u64,
    files: Vec<FileEntry>,
}

#[derive(Serialize, Deserialize)]
struct FileEntry {
    node: NodeId,
    operator: String,
    subtask: usize,
    finished: bool,
    file: String,
    checksum: u64,
}

/// Keeps the last few completed checkpoints.
pub(crate) enum Storage {
    Memory {
        retained: usize,
        checkpoints: Vec<CompletedCheckpoint>,
    },
    Directory {
        retained: usize,
        root: PathBuf,
    },
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> CheckpointError + '_ {
    move |source| CheckpointError::Io {
        path: path.to_owned(),
        source,
    }
}

fn write_file(path: &Path, bytes: &[u8]) -> Result<(), CheckpointError> {
    let mut file = fs::File::create(path).map_err(io(path))?;
    file.write_all(bytes).map_err(io(path))?;
    file.sync_all().map_err(io(path))
}

impl Storage {
    pub(crate) fn memory(retained: usize) -> Self {
        Storage::Memory {
            retained,
            checkpoints: Vec::new(),
        }
    }

    pub(crate) fn directory(root: PathBuf, retained: usize) -> Self {
        Storage::Directory { retained, root }
    }

    /// Stores a completed checkpoint and drops the ones beyond retention.
    pub(crate) fn store(&mut self, checkpoint: CompletedCheckpoint) -> Result<(), CheckpointError> {
        match self {
            Storage::Memory {
                retained,
                checkpoints,
            } => {
                checkpoints.push(checkpoint);
                let excess = checkpoints.len().saturating_sub(*retained);
                checkpoints.drain(..excess);
                Ok(())
            }
            Storage::Directory { retained, root } => {
                store_at(&root.join(format!("chk-{}", checkpoint.id)), &checkpoint)?;
                let mut ids = Self::complete_ids(root)?;
                ids.sort_unstable();
                let excess = ids.len().saturating_sub(*retained);
                for id in &ids[..excess] {
                    let old = root.join(format!("chk-{id}"));
                    fs::remove_dir_all(&old).map_err(io(&old))?;
                }
                Ok(())
            }
        }
    }

    fn complete_ids(root: &Path) -> Result<Vec<u64>, CheckpointError> {
        let mut ids = Vec::new();
        let entries = match fs::read_dir(root) {
            Ok(entries) => entries,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(ids),
            Err(e) => return Err(io(root)(e)),
        };
        for entry in entries.flatten() {
            let name = entry.file_name();
            let Some(id) = name
                .to_str()
                .and_then(|n| n.strip_prefix("chk-"))
                .and_then(|n| n.parse::<u64>().ok())
            else {
                continue;
            };
            if entry.path().join("_metadata").is_file() {
                ids.push(id);
            }
        }
        Ok(ids)
    }

    fn read(root: &Path, id: u64) -> Result<CompletedCheckpoint, CheckpointError> {
        read_folder(&root.join(format!("chk-{id}")))
    }

    /// The latest completed checkpoint that reads back intact. A corrupt or missing file is
    /// reported as a warning naming it, and the checkpoint before is tried.
    pub(crate) fn latest(&self) -> Option<CompletedCheckpoint> {
        match self {
            Storage::Memory { checkpoints, .. } => checkpoints.last().cloned(),
            Storage::Directory { root, .. } => {
                let mut ids = Self::complete_ids(root).ok()?;
                ids.sort_unstable();
                for id in ids.into_iter().rev() {
                    match Self::read(root, id) {
                        Ok(checkpoint) => return Some(checkpoint),
                        Err(error) => eprintln!("warning: skipping checkpoint {id}: {error}"),
                    }
                }
                None
            }
        }
    }
}

/// The file name ending of a subtask's in-flight data (unaligned checkpoints), listed in
/// `_metadata` beside its state file.
const IN_FLIGHT_SUFFIX: &str = ".inflight";

/// Writes a checkpoint into `dir`: one state file per operator subtask, then `_metadata` last
/// and atomically (write, then rename), so a folder without `_metadata` is never taken for a
/// complete checkpoint.
pub(crate) fn store_at(
    dir: &Path,
    checkpoint: &CompletedCheckpoint,
) -> Result<(), CheckpointError> {
    fs::create_dir_all(dir).map_err(io(dir))?;
    let mut files = Vec::new();
    for ((node, subtask), state) in &checkpoint.subtasks {
        let name = format!("op-{node}-subtask-{subtask}.state");
        let bytes = postcard::to_stdvec(&state.state).map_err(|e| CheckpointError::Corrupt {
            path: dir.join(&name),
            reason: format!("could not encode the state: {e}"),
        })?;
        write_file(&dir.join(&name), &bytes)?;
        if !state.in_flight.is_empty() {
            let in_flight = format!("op-{node}-subtask-{subtask}{IN_FLIGHT_SUFFIX}");
            let encoded =
                postcard::to_stdvec(&state.in_flight).map_err(|e| CheckpointError::Corrupt {
                    path: dir.join(&in_flight),
                    reason: format!("could not encode the in-flight data: {e}"),
                })?;
            write_file(&dir.join(&in_flight), &encoded)?;
            files.push(FileEntry {
                node: *node,
                operator: checkpoint
                    .operator_ids
                    .get(node)
                    .cloned()
                    .unwrap_or_else(|| node.to_string()),
                subtask: *subtask,
                finished: state.finished,
                file: in_flight,
                checksum: hash_key_bytes(&encoded),
            });
        }
        files.push(FileEntry {
            node: *node,
            operator: checkpoint
                .operator_ids
                .get(node)
                .cloned()
                .unwrap_or_else(|| node.to_string()),
            subtask: *subtask,
            finished: state.finished,
            file: name,
            checksum: hash_key_bytes(&bytes),
        });
    }
    let metadata = Metadata {
        id: checkpoint.id,
        files,
    };
    let bytes = postcard::to_stdvec(&metadata).map_err(|e| CheckpointError::Corrupt {
        path: dir.join("_metadata"),
        reason: format!("could not encode the metadata: {e}"),
    })?;
    let tmp = dir.join("_metadata.inprogress");
    write_file(&tmp, &bytes)?;
    let target = dir.join("_metadata");
    fs::rename(&tmp, &target).map_err(io(&target))
}

/// Reads a checkpoint or savepoint folder written by [`store_at`], checking every checksum.
pub(crate) fn read_folder(dir: &Path) -> Result<CompletedCheckpoint, CheckpointError> {
    let meta_path = dir.join("_metadata");
    let bytes = fs::read(&meta_path).map_err(io(&meta_path))?;
    let metadata: Metadata =
        postcard::from_bytes(&bytes).map_err(|e| CheckpointError::Corrupt {
            path: meta_path.clone(),
            reason: e.to_string(),
        })?;
    let mut subtasks = BTreeMap::new();
    let mut operator_ids = BTreeMap::new();
    for entry in metadata.files {
        let path = dir.join(&entry.file);
        let bytes = fs::read(&path).map_err(io(&path))?;
        if hash_key_bytes(&bytes) != entry.checksum {
            return Err(CheckpointError::Corrupt {
                path,
                reason: "the checksum does not match".to_owned(),
            });
        }
        let corrupt = |e: postcard::Error| CheckpointError::Corrupt {
            path: path.clone(),
            reason: e.to_string(),
        };
        let subtask = subtasks
            .entry((entry.node, entry.subtask))
            .or_insert_with(|| SubtaskState {
                finished: entry.finished,
                ..SubtaskState::default()
            });
        if entry.file.ends_with(IN_FLIGHT_SUFFIX) {
            subtask.in_flight = postcard::from_bytes(&bytes).map_err(corrupt)?;
        } else {
            subtask.state = postcard::from_bytes(&bytes).map_err(corrupt)?;
        }
        operator_ids.insert(entry.node, entry.operator.clone());
    }
    Ok(CompletedCheckpoint {
        id: metadata.id,
        subtasks,
        operator_ids,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn checkpoint(id: u64) -> CompletedCheckpoint {
        let mut state = OperatorState::default();
        state.keyed.insert(3, vec![1, 2, 3]);
        state.operator = vec![id as u8];
        let mut subtasks = BTreeMap::new();
        subtasks.insert(
            (0, 0),
            SubtaskState {
                finished: false,
                state,
                in_flight: vec![(1, vec![9, 8]), (0, vec![7])],
            },
        );
        subtasks.insert(
            (1, 0),
            SubtaskState {
                finished: true,
                state: OperatorState::default(),
                in_flight: Vec::new(),
            },
        );
        CompletedCheckpoint {
            id,
            subtasks,
            operator_ids: BTreeMap::from([(0, "source".to_owned()), (1, "sink".to_owned())]),
        }
    }

    fn temp_dir(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!(
            "rivulet-storage-{name}-{}-{:?}",
            std::process::id(),
            std::thread::current().id()
        ));
        let _ = fs::remove_dir_all(&dir);
        dir
    }

    #[test]
    fn directory_storage_round_trips_and_retains() {
        let root = temp_dir("retain");
        let mut storage = Storage::directory(root.clone(), 2);
        for id in 1..=3 {
            storage.store(checkpoint(id)).unwrap();
        }
        assert_eq!(storage.latest(), Some(checkpoint(3)));
        let mut ids = Storage::complete_ids(&root).unwrap();
        ids.sort_unstable();
        assert_eq!(ids, vec![2, 3]);
        fs::remove_dir_all(&root).unwrap();
    }

    #[test]
    fn a_corrupt_file_falls_back_to_the_previous_checkpoint() {
        let root = temp_dir("corrupt");
        let mut storage = Storage::directory(root.clone(), 3);
        storage.store(checkpoint(1)).unwrap();
        storage.store(checkpoint(2)).unwrap();
        let file = root.join("chk-2").join("op-0-subtask-0.state");
        let mut bytes = fs::read(&file).unwrap();
        bytes[0] ^= 0xff;
        fs::write(&file, bytes).unwrap();
        assert_eq!(storage.latest(), Some(checkpoint(1)));
        // A checkpoint without `_metadata` is not complete and is never used.
        fs::create_dir_all(root.join("chk-9")).unwrap();
        assert_eq!(storage.latest(), Some(checkpoint(1)));
        fs::remove_dir_all(&root).unwrap();
    }

    #[test]
    fn memory_storage_keeps_the_latest() {
        let mut storage = Storage::memory(1);
        storage.store(checkpoint(1)).unwrap();
        storage.store(checkpoint(2)).unwrap();
        assert_eq!(storage.latest().map(|c| c.id), Some(2));
    }
}
