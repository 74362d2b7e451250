//! The window operator: assigns records to windows, keeps their contents per key and window,
//! and fires windows from a time-ordered index when the watermark or processing time passes them.

use std::any::Any;
use std::marker::PhantomData;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use super::assigner::WindowAssigner;
use super::function::WindowContents;
use super::store::{
    Session, Sessions, WindowIndex, WindowSlot, WindowStore, namespace_hash, sessions_hash,
    slot_hash,
};
use super::trigger::{
    EventTimeTrigger, TimeDomain, TimerChange, Trigger, TriggerContext, TriggerResult,
};
use super::{Window, WindowError};
use crate::batch::{Batch, Data, NO_TIMESTAMP, Records};
use crate::error::TaskError;
use crate::keys::{KeyGroup, encode_key, hash_key_bytes, key_group_for_hash};
use crate::operator::keyed::Collector;
use crate::operator::{Operator, OperatorContext, OperatorState, Output};
use crate::state::{KeyedStateBackend, StateValue, ValueState};

/// What a window operator emits when late data is side-output: a window result or a late
/// record. Split into two streams by the window API.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) enum WindowOutput<O, T> {
    Result(O),
    Late(T),
}

/// What a window operator does with late records, and so what it emits.
pub(crate) trait LateData<O, T>: Send + 'static {
    /// The batches the operator emits.
    type Batch: Batch;
    /// Whether late records are emitted (or dropped and counted).
    const SIDE_OUTPUT: bool;
    /// One output batch of window results and late records.
    fn batch(results: Records<O>, late: Records<T>) -> Self::Batch;
}

/// Late records are dropped (and counted); the operator emits window results only.
pub(crate) struct DropLate;

impl<O: Data, T> LateData<O, T> for DropLate {
    type Batch = Records<O>;
    const SIDE_OUTPUT: bool = false;

    fn batch(results: Records<O>, _: Records<T>) -> Records<O> {
        results
    }
}

/// Late records are emitted next to window results.
pub(crate) struct SideOutputLate;

impl<O: Data, T: Data> LateData<O, T> for SideOutputLate {
    type Batch = Records<WindowOutput<O, T>>;
    const SIDE_OUTPUT: bool = true;

    fn batch(results: Records<O>, late: Records<T>) -> Self::Batch {
        let mut batch = results.map(WindowOutput::Result);
        batch.append(late.map(WindowOutput::Late));
        batch
    }
}

/// A window and the window whose namespace holds its state.
type WindowAndState<W> = (W, W);

/// Computes the key of a record; a cloneable, boxed key function.
pub(crate) trait KeySelector<T, K>: Send + 'static {
    fn key_of(&self, value: &T) -> K;
    fn box_clone(&self) -> Box<dyn KeySelector<T, K>>;
}

impl<T, K, F> KeySelector<T, K> for F
where
    F: Fn(&T) -> K + Clone + Send + 'static,
{
    fn key_of(&self, value: &T) -> K {
        self(value)
    }

    fn box_clone(&self) -> Box<dyn KeySelector<T, K>> {
        Box::new(self.clone())
    }
}

/// How a window operator is configured, shared by its subtasks.
pub(crate) struct WindowSpec<T, K, A: WindowAssigner> {
    pub(crate) name: String,
    pub(crate) key_of: Box<dyn KeySelector<T, K>>,
    pub(crate) assigner: A,
    pub(crate) trigger: Arc<dyn Fn() -> Box<dyn Trigger<A::Window>> + Send + Sync>,
    pub(crate) allowed_lateness: i64,
}

impl<T: 'static, K: 'static, A: WindowAssigner> Clone for WindowSpec<T, K, A> {
    fn clone(&self) -> Self {
        WindowSpec {
            name: self.name.clone(),
            key_of: self.key_of.box_clone(),
            assigner: self.assigner.clone(),
            trigger: Arc::clone(&self.trigger),
            allowed_lateness: self.allowed_lateness,
        }
    }
}

/// The key of the record being processed (or the window being fired): its canonical encoding,
/// the hash of that encoding (which picked its key group) and the key group.
struct CurrentKey {
    bytes: Vec<u8>,
    hash: u64,
    key_group: KeyGroup,
}

impl CurrentKey {
    /// Encodes `key` and routes it as the exchange does.
    #[inline]
    fn set<K: Serialize>(&mut self, key: &K, max_parallelism: u16) -> Result<(), TaskError> {
        self.bytes.clear();
        encode_key(key, &mut self.bytes)?;
        self.hash = hash_key_bytes(&self.bytes);
        self.key_group = key_group_for_hash(self.hash, max_parallelism);
        Ok(())
    }

    /// Takes an encoded key of `key_group`, e.g. from the window index.
    fn set_encoded(&mut self, key: &[u8], key_group: KeyGroup) {
        self.bytes.clear();
        self.bytes.extend_from_slice(key);
        self.hash = hash_key_bytes(key);
        self.key_group = key_group;
    }
}

/// Groups a keyed stream into windows and emits one result per key and window when its trigger
/// fires, as Flink's `WindowOperator`.
///
/// Records are processed a batch at a time. Each record's key is encoded and hashed once: the
/// hash picks the key group and also finds the record's window state, which is kept as live
/// values in hash tables per key group (`store`), not looked up through the generic keyed state
/// backend. The default event-time trigger is called directly rather than through the boxed
/// trigger.
///
/// # State
/// Per key and window, keyed by the key's encoding and the window (one table per key group): the
/// window contents (an accumulator, or the records for a process function), the key, and the
/// trigger's wake-up times and state. For merging (session) assigners, per key: the list of its
/// live sessions, updated in place. In memory, an index of `(time, key group, key, window)`
/// ordered by time holds one entry per live window (its cleanup time, which is also when the
/// default triggers fire) plus any other wake-up time a trigger registered; it can be rebuilt
/// from the state. A window's state and index entries are removed once the watermark passes
/// `end - 1 + allowed lateness` (processing-time windows: once the clock passes `end - 1`;
/// global windows: at the end of input). Snapshots write the state per key group in the keyed
/// state format (value states `window-contents`, namespaced by window, and `window-sessions`).
pub(crate) struct WindowOperator<T, K, A: WindowAssigner, C: WindowContents<K, T, A::Window>, L> {
    spec: WindowSpec<T, K, A>,
    trigger: Box<dyn Trigger<A::Window>>,
    /// Whether `trigger` is the [`EventTimeTrigger`], which is then called directly.
    event_time_trigger: bool,
    contents: C,
    /// The names and types under which the state is snapshotted.
    slots: ValueState<WindowSlot<K, C::Acc>>,
    sessions: ValueState<Sessions<A::Window>>,
    store: Option<WindowStore<K, C::Acc, A::Window>>,
    /// A clone of the context it was opened with: its clock, and the job's count of late
    /// records dropped.
    context: Option<OperatorContext>,
    max_parallelism: u16,
    watermark: i64,
    processing_time: i64,
    index: WindowIndex<A::Window>,
    current: CurrentKey,
    /// The last state window whose namespace was hashed, and its hash.
    last_namespace: Option<(A::Window, u64)>,
    namespace: Vec<u8>,
    windows: Vec<A::Window>,
    absorbed: Vec<usize>,
    /// Sessions merged away by a record.
    sources: Vec<Session<A::Window>>,
    changes: Vec<TimerChange>,
    late_records_dropped: u64,
    _late: PhantomData<fn() -> L>,
}

impl<T, K, A, C, L> WindowOperator<T, K, A, C, L>
where
    L: LateData<C::Out, T>,
    T: Data,
    K: StateValue + Serialize,
    A: WindowAssigner,
    C: WindowContents<K, T, A::Window>,
{
    pub(crate) fn new(spec: WindowSpec<T, K, A>, contents: C) -> Self {
        let trigger = (spec.trigger)();
        WindowOperator {
            spec,
            trigger,
            event_time_trigger: false,
            contents,
            slots: ValueState::new("window-contents"),
            sessions: ValueState::new("window-sessions"),
            store: None,
            context: None,
            max_parallelism: 1,
            watermark: i64::MIN,
            processing_time: i64::MIN,
            index: WindowIndex::new(),
            current: CurrentKey {
                bytes: Vec::new(),
                hash: 0,
                key_group: 0,
            },
            last_namespace: None,
            namespace: Vec::new(),
            windows: Vec::new(),
            absorbed: Vec::new(),
            sources: Vec::new(),
            changes: Vec::new(),
            late_records_dropped: 0,
            _late: PhantomData,
        }
    }

    /// Entries in the window state plus entries in the window index: zero once every window is
    /// gone.
    #[cfg(test)]
    pub(crate) fn state_entries(&self) -> usize {
        self.store.as_ref().map_or(0, WindowStore::len) + self.index.len()
    }

    /// Late records dropped because late data is not side-output.
    #[cfg(test)]
    pub(crate) fn late_records_dropped(&self) -> u64 {
        self.late_records_dropped
    }

    /// Serializes the window state of `key_group` (contents, keys, trigger registrations and
    /// sessions) in the keyed state format; the index is not written, it is rebuilt from this
    /// on restore.
    pub(crate) fn snapshot_key_group(&mut self, key_group: KeyGroup) -> Result<Vec<u8>, TaskError> {
        let store = opened(&mut self.store)?;
        let group = store.group(key_group)?;
        let mut backend = KeyedStateBackend::new(key_group, key_group);
        self.slots.register(&mut backend)?;
        self.sessions.register(&mut backend)?;
        for entry in group.slots() {
            backend.set_current_key(&entry.key, key_group);
            self.namespace.clear();
            entry.window.encode_namespace(&mut self.namespace);
            backend.set_current_namespace(&self.namespace);
            self.slots.update(&mut backend, entry.slot.clone())?;
        }
        backend.set_current_namespace(&[]);
        for entry in group.session_lists() {
            backend.set_current_key(&entry.key, key_group);
            self.sessions.update(&mut backend, entry.sessions.clone())?;
        }
        Ok(backend.snapshot_key_group(key_group)?)
    }

    /// Restores the window state of `key_group` written by
    /// [`snapshot_key_group`](Self::snapshot_key_group) (possibly by a subtask with other key
    /// groups) and enters its windows into the index.
    pub(crate) fn restore_key_group(
        &mut self,
        key_group: KeyGroup,
        bytes: &[u8],
    ) -> Result<(), TaskError> {
        opened(&mut self.store)?.group(key_group)?;
        let mut backend = KeyedStateBackend::new(key_group, key_group);
        backend.restore_key_group(key_group, bytes)?;
        self.slots.register(&mut backend)?;
        self.sessions.register(&mut backend)?;
        let mut entries = Vec::new();
        backend.for_each_entry(self.slots.name(), |_, key, namespace| {
            entries.push((key.to_vec(), namespace.to_vec()));
        })?;
        let mut sessions = Vec::new();
        backend.for_each_entry(self.sessions.name(), |_, key, _| {
            sessions.push(key.to_vec());
        })?;
        // (key, window, state window, timers) of every restored window.
        let mut windows = Vec::new();
        let merging = self.spec.assigner.is_merging();
        for (key, namespace) in entries {
            let state_window = A::Window::decode_namespace(&namespace).ok_or_else(|| {
                format!(
                    "window state of key group {key_group} has a namespace that is not a window: {namespace:?}"
                )
            })?;
            backend.set_current_key(&key, key_group);
            backend.set_current_namespace(&namespace);
            let Some(slot) = self.slots.value(&mut backend)? else {
                continue;
            };
            let key: Arc<[u8]> = key.into();
            if !merging {
                windows.push((Arc::clone(&key), state_window.clone(), slot.timers.clone()));
            }
            let hash = slot_hash(
                hash_key_bytes(&key),
                namespace_hash(&state_window, &mut self.namespace),
            );
            opened(&mut self.store)?
                .group(key_group)?
                .put_slot(hash, key, state_window, slot);
        }
        backend.set_current_namespace(&[]);
        for key in sessions {
            backend.set_current_key(&key, key_group);
            let Some(mut live) = self.sessions.value(&mut backend)? else {
                continue;
            };
            // Index entries are made below at the sessions' windows.
            live.indexed = live.windows.clone();
            let key_hash = hash_key_bytes(&key);
            let group = opened(&mut self.store)?.group(key_group)?;
            for (window, state_window) in live.windows.iter().zip(&live.state_windows) {
                let hash = slot_hash(key_hash, namespace_hash(state_window, &mut self.namespace));
                if let Some(entry) = group.slot(hash, &key, state_window) {
                    windows.push((
                        Arc::clone(&entry.key),
                        window.clone(),
                        entry.slot.timers.clone(),
                    ));
                }
            }
            group.put_sessions(sessions_hash(key_hash), &key, live);
        }
        for (key, window, timers) in windows {
            let cleanup = self.cleanup_time(&window);
            self.index.insert(cleanup, key_group, &key, &window);
            self.changes.extend(
                timers
                    .iter()
                    .map(|&(domain, time)| TimerChange::Added(domain, time)),
            );
            self.index
                .apply_changes(&mut self.changes, cleanup, key_group, &key, &window);
        }
        Ok(())
    }

    /// When a window's state is removed: `(domain, time)`.
    fn cleanup_time(&self, window: &A::Window) -> (TimeDomain, i64) {
        cleanup_time(&self.spec, window)
    }

    /// Flink's `isWindowLate`: the watermark passed the window's cleanup time.
    fn is_window_late(&self, window: &A::Window) -> bool {
        self.spec.assigner.is_event_time()
            && window
                .max_timestamp()
                .saturating_add(self.spec.allowed_lateness)
                <= self.watermark
    }

    /// The table hash of the current key's slot in `state_window`.
    #[inline]
    fn slot_hash(&mut self, state_window: &A::Window) -> u64 {
        let namespace = match &self.last_namespace {
            Some((window, hash)) if window == state_window => *hash,
            _ => {
                let hash = namespace_hash(state_window, &mut self.namespace);
                self.last_namespace = Some((state_window.clone(), hash));
                hash
            }
        };
        slot_hash(self.current.hash, namespace)
    }

    /// Adds `value` to `window` of the current key, whose state is in the namespace of
    /// `state_window`, and asks the trigger.
    fn add_to_window(
        &mut self,
        key: &K,
        window: &A::Window,
        state_window: &A::Window,
        value: T,
        timestamp: i64,
        results: &mut Records<C::Out>,
    ) -> Result<(), TaskError> {
        let hash = self.slot_hash(state_window);
        let cleanup = self.cleanup_time(window);
        let WindowOperator {
            trigger,
            event_time_trigger,
            contents,
            store,
            current,
            index,
            watermark,
            processing_time,
            changes,
            ..
        } = self;
        let group = opened(store)?.group(current.key_group)?;
        let (entry, created) =
            group.slot_or_insert(hash, &current.bytes, state_window, || WindowSlot {
                key: key.clone(),
                contents: None,
                timers: Vec::new(),
                trigger_state: 0,
            });
        let slot = &mut entry.slot;
        match &mut slot.contents {
            Some(acc) => contents.add(acc, value),
            None => slot.contents = Some(contents.create(value)),
        }
        let mut ctx = TriggerContext {
            watermark: *watermark,
            processing_time: *processing_time,
            timers: &mut slot.timers,
            changes,
            state: &mut slot.trigger_state,
        };
        let result = if *event_time_trigger {
            EventTimeTrigger.on_element(timestamp, window, &mut ctx)
        } else {
            trigger.on_element(timestamp, window, &mut ctx)
        };
        apply_result(contents, slot, window, result, results)?;
        if created {
            index.insert(cleanup, current.key_group, &entry.key, window);
        }
        if !changes.is_empty() {
            index.apply_changes(changes, cleanup, current.key_group, &entry.key, window);
        }
        Ok(())
    }

    /// For merging assigners: merges `new` into the current key's sessions; returns the window
    /// the record goes to and its state window, or `None` if it is late.
    fn merge_into_sessions(
        &mut self,
        key: &K,
        new: &A::Window,
    ) -> Result<Option<WindowAndState<A::Window>>, TaskError> {
        let late_limit = self.watermark;
        let hash = sessions_hash(self.current.hash);
        let WindowOperator {
            spec,
            store,
            current,
            absorbed,
            sources,
            ..
        } = self;
        let group = opened(store)?.group(current.key_group)?;
        let Some(entry) = group.sessions(hash, &current.bytes) else {
            let merged = spec.assigner.merge_into(&[], new, absorbed);
            if !absorbed.is_empty() {
                return Err(absorbed_out_of_range(&spec.name));
            }
            if spec.assigner.is_event_time()
                && merged.max_timestamp().saturating_add(spec.allowed_lateness) <= late_limit
            {
                return Ok(None);
            }
            group.put_sessions(hash, &current.bytes, Sessions::one(merged.clone()));
            return Ok(Some((merged.clone(), merged)));
        };
        let sessions = &mut entry.sessions;
        let merged = spec.assigner.merge_into(&sessions.windows, new, absorbed);
        absorbed.sort_unstable();
        absorbed.dedup();
        if absorbed
            .last()
            .is_some_and(|&i| i >= sessions.windows.len())
        {
            return Err(absorbed_out_of_range(&spec.name));
        }
        if absorbed.is_empty() {
            if spec.assigner.is_event_time()
                && merged.max_timestamp().saturating_add(spec.allowed_lateness) <= late_limit
            {
                return Ok(None);
            }
            sessions.insert((merged.clone(), merged.clone(), merged.clone()));
            return Ok(Some((merged.clone(), merged)));
        }
        if let [only] = absorbed[..]
            && sessions.windows[only] == merged
        {
            let state_window = sessions.state_windows[only].clone();
            return Ok(Some((merged, state_window)));
        }
        // The absorbed sessions in order; the first keeps its state window.
        let mut sources = std::mem::take(sources);
        sources.clear();
        for &i in absorbed.iter().rev() {
            sources.push(sessions.remove(i));
        }
        let Some((first_window, state_window, indexed)) = sources.pop() else {
            return Err(absorbed_out_of_range(&spec.name));
        };
        sources.reverse();
        // The merged session keeps the first one's cleanup entry if that is due no later.
        let (entry_cleanup, cleanup) = (cleanup_time(spec, &indexed), cleanup_time(spec, &merged));
        let keep_entry = entry_cleanup.0 == cleanup.0 && entry_cleanup.1 <= cleanup.1;
        let merged_indexed = if keep_entry {
            indexed.clone()
        } else {
            merged.clone()
        };
        sessions.insert((merged.clone(), state_window.clone(), merged_indexed));
        let target = (&first_window, &state_window, &indexed);
        let merged_slots = self.merge_slots(key, &merged, target, keep_entry, &sources);
        self.sources = sources;
        merged_slots?;
        Ok(Some((merged, state_window)))
    }

    /// Session windows merged into `merged`: the state of the first (`target`: its window,
    /// state window and the window of its cleanup entry) stays where it is; the state of the
    /// other `sources` is merged into it. Index entries of the sources go; the trigger's entries
    /// of the target are replaced by those of `merged`, and its cleanup entry stays if
    /// `keep_entry` (it is due no later than `merged`'s), or is moved to `merged`.
    fn merge_slots(
        &mut self,
        key: &K,
        merged: &A::Window,
        target: (&A::Window, &A::Window, &A::Window),
        keep_entry: bool,
        sources: &[Session<A::Window>],
    ) -> Result<(), TaskError> {
        let key_group = self.current.key_group;
        let mut extra: Option<C::Acc> = None;
        let mut extra_state = 0i64;
        for (window, state_window, indexed) in sources {
            let hash = self.slot_hash(state_window);
            let cleanup = self.cleanup_time(window);
            let entry_cleanup = self.cleanup_time(indexed);
            let group = opened(&mut self.store)?.group(key_group)?;
            let Some(entry) = group.remove_slot(hash, &self.current.bytes, state_window) else {
                continue;
            };
            self.index
                .remove_timers(cleanup, key_group, &entry.key, window, &entry.slot.timers);
            self.index
                .remove_cleanup(entry_cleanup, key_group, &entry.key, indexed);
            extra_state = extra_state.saturating_add(entry.slot.trigger_state);
            match (&mut extra, entry.slot.contents) {
                (_, None) => {}
                (None, Some(acc)) => extra = Some(acc),
                (Some(acc), Some(other)) => self.contents.merge(acc, other),
            }
        }
        let (target_window, target_state, target_indexed) = target;
        let hash = self.slot_hash(target_state);
        let old_cleanup = self.cleanup_time(target_window);
        let entry_cleanup = self.cleanup_time(target_indexed);
        let cleanup = self.cleanup_time(merged);
        let WindowOperator {
            trigger,
            event_time_trigger,
            contents,
            store,
            current,
            index,
            watermark,
            processing_time,
            changes,
            ..
        } = self;
        let group = opened(store)?.group(key_group)?;
        let (entry, _) = group.slot_or_insert(hash, &current.bytes, target_state, || WindowSlot {
            key: key.clone(),
            contents: None,
            timers: Vec::new(),
            trigger_state: 0,
        });
        let slot = &mut entry.slot;
        let old_timers = std::mem::take(&mut slot.timers);
        slot.trigger_state = slot.trigger_state.saturating_add(extra_state);
        match (&mut slot.contents, extra) {
            (_, None) => {}
            (None, Some(acc)) => slot.contents = Some(acc),
            (Some(acc), Some(other)) => contents.merge(acc, other),
        }
        let mut ctx = TriggerContext {
            watermark: *watermark,
            processing_time: *processing_time,
            timers: &mut slot.timers,
            changes,
            state: &mut slot.trigger_state,
        };
        if *event_time_trigger {
            Trigger::<A::Window>::on_merge(&mut EventTimeTrigger, merged, &mut ctx);
        } else {
            trigger.on_merge(merged, &mut ctx);
        }
        index.remove_timers(
            old_cleanup,
            key_group,
            &entry.key,
            target_window,
            &old_timers,
        );
        if !keep_entry {
            index.remove_cleanup(entry_cleanup, key_group, &entry.key, target_indexed);
            index.insert(cleanup, key_group, &entry.key, merged);
        }
        index.apply_changes(changes, cleanup, key_group, &entry.key, merged);
        Ok(())
    }

    /// Processes one record.
    #[inline]
    fn process_record(
        &mut self,
        value: T,
        timestamp: i64,
        now: i64,
        results: &mut Records<C::Out>,
        late: &mut Records<T>,
    ) -> Result<(), TaskError> {
        let event_time = self.spec.assigner.is_event_time();
        if event_time && timestamp == NO_TIMESTAMP {
            return Err(WindowError::MissingTimestamp {
                operator: self.spec.name.clone(),
            }
            .into());
        }
        let key = self.spec.key_of.key_of(&value);
        self.current.set(&key, self.max_parallelism)?;

        let mut windows = std::mem::take(&mut self.windows);
        windows.clear();
        self.spec
            .assigner
            .assign_windows(timestamp, now, &mut windows);
        let merging = self.spec.assigner.is_merging();
        let mut skipped = true;
        let mut value = Some(value);
        let count = windows.len();
        for (i, window) in windows.iter().enumerate() {
            let merged;
            let (window, state_window) = if merging {
                match self.merge_into_sessions(&key, window)? {
                    Some(windows) => {
                        merged = windows;
                        (&merged.0, &merged.1)
                    }
                    None => continue,
                }
            } else {
                if self.is_window_late(window) {
                    continue;
                }
                (window, window)
            };
            skipped = false;
            let record = if i + 1 == count {
                value.take()
            } else {
                value.clone()
            };
            if let Some(record) = record {
                self.add_to_window(&key, window, state_window, record, timestamp, results)?;
            }
        }
        self.windows = windows;
        if skipped
            && event_time
            && timestamp.saturating_add(self.spec.allowed_lateness) <= self.watermark
            && let Some(value) = value
        {
            if L::SIDE_OUTPUT {
                late.push_with_timestamp(value, timestamp);
            } else {
                self.late_records_dropped += 1;
            }
        }
        Ok(())
    }

    /// Fires every index entry of `domain` at or before `limit`, in time order.
    fn fire_due(
        &mut self,
        domain: TimeDomain,
        limit: i64,
        results: &mut Records<C::Out>,
    ) -> Result<(), TaskError> {
        while let Some((time, key_group, key, window)) = self.index.pop_due(domain, limit) {
            self.on_timer(domain, time, key_group, &key, &window, results)?;
        }
        Ok(())
    }

    /// A popped index entry: asks the trigger if it registered this time, and removes the
    /// window's state if this is its cleanup time.
    fn on_timer(
        &mut self,
        domain: TimeDomain,
        time: i64,
        key_group: KeyGroup,
        key: &Arc<[u8]>,
        window: &A::Window,
        results: &mut Records<C::Out>,
    ) -> Result<(), TaskError> {
        self.current.set_encoded(key, key_group);
        let merging = self.spec.assigner.is_merging();
        let sessions_hash = sessions_hash(self.current.hash);
        let state_window = if merging {
            let group = opened(&mut self.store)?.group(key_group)?;
            let Some(entry) = group.sessions(sessions_hash, key) else {
                return Ok(());
            };
            let sessions = &mut entry.sessions;
            if let Some(state_window) = sessions.state_window_of(window) {
                state_window.clone()
            } else {
                // The cleanup entry of a session that grew since it was made: move it to the
                // session's window.
                if let Some(i) = sessions.indexed.iter().position(|w| w == window)
                    && let Some(current) = sessions.windows.get(i)
                {
                    sessions.indexed[i] = current.clone();
                    let cleanup = cleanup_time(&self.spec, current);
                    self.index.insert(cleanup, key_group, key, current);
                }
                return Ok(());
            }
        } else {
            window.clone()
        };
        let hash = self.slot_hash(&state_window);
        let cleanup_time = self.cleanup_time(window);
        let cleanup = cleanup_time == (domain, time);
        let WindowOperator {
            trigger,
            event_time_trigger,
            contents,
            store,
            index,
            watermark,
            processing_time,
            changes,
            ..
        } = self;
        let group = opened(store)?.group(key_group)?;
        let Some(entry) = group.slot(hash, key, &state_window) else {
            return Ok(());
        };
        let slot = &mut entry.slot;
        if let Some(i) = slot.timers.iter().position(|t| *t == (domain, time)) {
            slot.timers.swap_remove(i);
            let mut ctx = TriggerContext {
                watermark: *watermark,
                processing_time: *processing_time,
                timers: &mut slot.timers,
                changes,
                state: &mut slot.trigger_state,
            };
            let result = match domain {
                TimeDomain::EventTime if *event_time_trigger => {
                    EventTimeTrigger.on_event_time(time, window, &mut ctx)
                }
                TimeDomain::EventTime => trigger.on_event_time(time, window, &mut ctx),
                TimeDomain::ProcessingTime => trigger.on_processing_time(time, window, &mut ctx),
            };
            apply_result(contents, slot, window, result, results)?;
        }
        if cleanup {
            changes.clear();
            index.remove_window(cleanup_time, key_group, key, window, &slot.timers);
            group.remove_slot(hash, key, &state_window);
            if merging && let Some(entry) = group.sessions(sessions_hash, key) {
                if let Ok(i) = entry.sessions.windows.binary_search(window) {
                    let (_, _, indexed) = entry.sessions.remove(i);
                    let entry_cleanup = self::cleanup_time(&self.spec, &indexed);
                    index.remove_cleanup(entry_cleanup, key_group, key, &indexed);
                }
                if entry.sessions.windows.is_empty() {
                    group.remove_sessions(sessions_hash, key);
                }
            }
        } else {
            index.apply_changes(changes, cleanup_time, key_group, key, window);
        }
        Ok(())
    }

    fn emit(
        results: Records<C::Out>,
        late: Records<T>,
        out: &mut dyn Output<L::Batch>,
    ) -> Result<(), TaskError> {
        if results.is_empty() && late.is_empty() {
            return Ok(());
        }
        out.collect(L::batch(results, late))
    }
}

/// When a window's state is removed: `(domain, time)`.
fn cleanup_time<T, K, A: WindowAssigner>(
    spec: &WindowSpec<T, K, A>,
    window: &A::Window,
) -> (TimeDomain, i64) {
    let max = window.max_timestamp();
    if spec.assigner.is_event_time() {
        (
            TimeDomain::EventTime,
            max.saturating_add(spec.allowed_lateness),
        )
    } else if max == i64::MAX {
        (TimeDomain::EventTime, i64::MAX)
    } else {
        (TimeDomain::ProcessingTime, max)
    }
}

/// The error of a merging assigner that absorbs a session the key does not have.
fn absorbed_out_of_range(operator: &str) -> TaskError {
    format!(
        "the window assigner of window operator {operator:?} merged away a session that does not exist; its merge must return indices into the sessions it is given"
    )
    .into()
}

/// The state of an opened operator.
fn opened<S>(store: &mut Option<S>) -> Result<&mut S, TaskError> {
    store
        .as_mut()
        .ok_or_else(|| "a window operator processed a record before it was opened".into())
}

/// Fires and/or purges a window's contents as the trigger said.
fn apply_result<K, T, W, C: WindowContents<K, T, W>>(
    contents: &mut C,
    slot: &mut WindowSlot<K, C::Acc>,
    window: &W,
    result: TriggerResult,
    results: &mut Records<C::Out>,
) -> Result<(), TaskError>
where
    W: Window,
{
    if result.is_fire()
        && let Some(acc) = slot.contents.as_mut()
    {
        let mut collector = Collector::new(results, Some(window.max_timestamp()));
        contents.emit(&slot.key, window, acc, result.is_purge(), &mut collector)?;
    }
    if result.is_purge() {
        slot.contents = None;
    }
    Ok(())
}

impl<T, K, A, C, L> Operator for WindowOperator<T, K, A, C, L>
where
    L: LateData<C::Out, T>,
    T: Data,
    K: StateValue + Serialize,
    A: WindowAssigner,
    C: WindowContents<K, T, A::Window>,
{
    type In = Records<T>;
    type Out = L::Batch;

    fn open(&mut self, ctx: &OperatorContext) -> Result<(), TaskError> {
        let range = ctx.key_group_range();
        if ctx.max_parallelism() == 0 {
            return Err(format!(
                "window operator {:?} was opened with a maximum parallelism of 0; it must be at least 1",
                self.spec.name
            )
            .into());
        }
        self.max_parallelism = ctx.max_parallelism();
        self.store = Some(WindowStore::new(range.start(), range.end()));
        self.processing_time = ctx.processing_time();
        self.context = Some(ctx.clone());
        self.event_time_trigger = (&*self.trigger as &dyn Any).is::<EventTimeTrigger>();
        Ok(())
    }

    fn process_batch(
        &mut self,
        batch: Records<T>,
        out: &mut dyn Output<Self::Out>,
    ) -> Result<(), TaskError> {
        let now = match &self.context {
            Some(ctx) => ctx.clock().now_ms(),
            None => return Err("a window operator processed a record before it was opened".into()),
        };
        self.processing_time = self.processing_time.max(now);
        let dropped_before = self.late_records_dropped;
        let mut results = Records::new();
        let mut late = Records::new();
        let (values, timestamps) = batch.into_parts();
        if timestamps.is_empty() {
            for value in values {
                self.process_record(value, NO_TIMESTAMP, now, &mut results, &mut late)?;
            }
        } else {
            for (value, timestamp) in values.into_iter().zip(timestamps) {
                self.process_record(value, timestamp, now, &mut results, &mut late)?;
            }
        }
        let dropped = self.late_records_dropped - dropped_before;
        if dropped > 0
            && let Some(ctx) = &self.context
        {
            ctx.count_late_records(dropped);
        }
        Self::emit(results, late, out)
    }

    fn process_watermark(
        &mut self,
        watermark: i64,
        out: &mut dyn Output<Self::Out>,
    ) -> Result<(), TaskError> {
        self.watermark = self.watermark.max(watermark);
        let mut results = Records::new();
        self.fire_due(TimeDomain::EventTime, self.watermark, &mut results)?;
        Self::emit(results, Records::new(), out)?;
        out.emit_watermark(watermark)
    }

    fn on_processing_time(
        &mut self,
        now_ms: i64,
        out: &mut dyn Output<Self::Out>,
    ) -> Result<(), TaskError> {
        self.processing_time = self.processing_time.max(now_ms);
        let mut results = Records::new();
        self.fire_due(
            TimeDomain::ProcessingTime,
            self.processing_time,
            &mut results,
        )?;
        Self::emit(results, Records::new(), out)
    }

    /// One blob per owned key group: the window state; the index is rebuilt on restore.
    fn snapshot_state(&mut self, _checkpoint_id: u64) -> Result<OperatorState, TaskError> {
        let mut state = OperatorState::default();
        for key_group in opened(&mut self.store)?.key_groups() {
            state
                .keyed
                .insert(key_group, self.snapshot_key_group(key_group)?);
        }
        Ok(state)
    }

    fn restore_state(&mut self, state: &OperatorState) -> Result<(), TaskError> {
        let owned = opened(&mut self.store)?.key_groups();
        for (&key_group, bytes) in &state.keyed {
            if owned.contains(&key_group) {
                self.restore_key_group(key_group, bytes)?;
            }
        }
        Ok(())
    }

    /// At the end of input event time ends (watermark `i64::MAX`), and processing-time windows
    /// fire as in Flink's batch execution, so no window state is left.
    fn finish(&mut self, out: &mut dyn Output<Self::Out>) -> Result<(), TaskError> {
        self.watermark = i64::MAX;
        let mut results = Records::new();
        self.fire_due(TimeDomain::EventTime, i64::MAX, &mut results)?;
        self.fire_due(TimeDomain::ProcessingTime, i64::MAX, &mut results)?;
        Self::emit(results, Records::new(), out)
    }
}

#[cfg(test)]
mod tests {
    use std::marker::PhantomData;
    use std::time::Duration;

    use super::*;
    use crate::time::ManualClock;
    use crate::window::function::{ReduceContents, WindowContents};
    use crate::window::{
        CountTrigger, EventTimeSessionWindows, GlobalWindows, SlidingEventTimeWindows, TimeWindow,
        TumblingProcessingTimeWindows,
    };

    type Event = (u32, u64);

    /// Records what an operator emits.
    #[derive(Default)]
    struct Recorder {
        results: Vec<(Event, i64)>,
        late: Vec<(Event, i64)>,
        watermarks: Vec<i64>,
    }

    impl Output<Records<Event>> for Recorder {
        fn collect(&mut self, batch: Records<Event>) -> Result<(), TaskError> {
            self.results.extend(batch.iter().map(|(r, ts)| (*r, ts)));
            Ok(())
        }

        fn emit_watermark(&mut self, watermark: i64) -> Result<(), TaskError> {
            self.watermarks.push(watermark);
            Ok(())
        }

        fn flush(&mut self) -> Result<(), TaskError> {
            Ok(())
        }

        fn finish(&mut self) -> Result<(), TaskError> {
            Ok(())
        }
    }

    impl Output<Records<WindowOutput<Event, Event>>> for Recorder {
        fn collect(&mut self, batch: Records<WindowOutput<Event, Event>>) -> Result<(), TaskError> {
            for (record, ts) in batch.iter() {
                match record {
                    WindowOutput::Result(r) => self.results.push((*r, ts)),
                    WindowOutput::Late(r) => self.late.push((*r, ts)),
                }
            }
            Ok(())
        }

        fn emit_watermark(&mut self, watermark: i64) -> Result<(), TaskError> {
            self.watermarks.push(watermark);
            Ok(())
        }

        fn flush(&mut self) -> Result<(), TaskError> {
            Ok(())
        }

        fn finish(&mut self) -> Result<(), TaskError> {
            Ok(())
        }
    }

    fn sum() -> ReduceContents<Event, fn(Event, Event) -> Event> {
        ReduceContents {
            reduce: |a, b| (a.0, a.1 + b.1),
            _types: PhantomData,
        }
    }

    fn operator<A, C>(
        assigner: A,
        contents: C,
        lateness: i64,
    ) -> WindowOperator<Event, u32, A, C, SideOutputLate>
    where
        A: WindowAssigner,
        C: WindowContents<u32, Event, A::Window, Out = Event>,
    {
        operator_with(assigner, contents, lateness)
    }

    fn operator_with<A, C, L>(
        assigner: A,
        contents: C,
        lateness: i64,
    ) -> WindowOperator<Event, u32, A, C, L>
    where
        A: WindowAssigner,
        C: WindowContents<u32, Event, A::Window>,
        L: LateData<C::Out, Event>,
    {
        let default = assigner.clone();
        WindowOperator::new(
            WindowSpec {
                name: "test window".to_owned(),
                key_of: Box::new(|e: &Event| e.0),
                assigner,
                trigger: Arc::new(move || default.default_trigger()),
                allowed_lateness: lateness,
            },
            contents,
        )
    }

    fn batch(records: &[(u32, u64, i64)]) -> Records<Event> {
        Records::with_timestamps(
            records.iter().map(|r| (r.0, r.1)).collect(),
            records.iter().map(|r| r.2).collect(),
        )
    }

    #[test]
    fn window_state_is_gone_once_the_watermark_passes_every_window() {
        let mut op = operator(
            SlidingEventTimeWindows::of(Duration::from_millis(10), Duration::from_millis(5)),
            sum(),
            3,
        );
        op.open(&OperatorContext::new("window", 0, 2, 16)).unwrap();
        let mut out = Recorder::default();
        // Keys of every key group this subtask owns are routed here by the exchange; the
        // test uses whichever keys it gets, so look at keys in the owned range only.
        let range = OperatorContext::new("window", 0, 2, 16).key_group_range();
        let mut scratch = Vec::new();
        let keys: Vec<u32> = (0..100)
            .filter(|k| {
                let kg = crate::keys::key_group_of(k, 16, &mut scratch).unwrap();
                range.contains(kg)
            })
            .take(3)
            .collect();
        let records: Vec<(u32, u64, i64)> = (0..30)
            .map(|i| (keys[i % keys.len()], 1, i as i64))
            .collect();
        op.process_batch(batch(&records), &mut out).unwrap();
        assert!(op.state_entries() > 0);
        op.process_watermark(20, &mut out).unwrap();
        assert!(!out.results.is_empty());
        assert!(op.state_entries() > 0, "later windows are still open");
        // Every window ends by 35; cleanup is at end - 1 + 3.
        op.process_watermark(36, &mut out).unwrap();
        assert!(
            op.state_entries() > 0,
            "the last window waits for its lateness"
        );
        op.process_watermark(37, &mut out).unwrap();
        assert_eq!(op.state_entries(), 0);
        assert_eq!(out.watermarks, vec![20, 36, 37]);
        // Each record is in two windows.
        assert_eq!(out.results.iter().map(|(r, _)| r.1).sum::<u64>(), 60);
        // Results carry the window's max timestamp, in time order.
        assert!(out.results.windows(2).all(|w| w[0].1 <= w[1].1));
    }

    #[test]
    fn sessions_merge_and_their_state_is_cleaned_up() {
        let mut op = operator(
            EventTimeSessionWindows::with_gap(Duration::from_millis(10)),
            sum(),
            0,
        );
        op.open(&OperatorContext::new("window", 0, 1, 8)).unwrap();
        let mut out = Recorder::default();
        op.process_batch(batch(&[(1, 1, 0), (1, 2, 20)]), &mut out)
            .unwrap();
        // Two slots, one session list, two index entries.
        assert_eq!(op.state_entries(), 5);
        op.process_batch(batch(&[(1, 4, 10)]), &mut out).unwrap();
        // One slot, one session list, one index entry.
        assert_eq!(op.state_entries(), 3);
        op.process_watermark(28, &mut out).unwrap();
        assert!(out.results.is_empty());
        op.process_watermark(29, &mut out).unwrap();
        assert_eq!(out.results, vec![((1, 7), 29)]);
        assert_eq!(op.state_entries(), 0);
        // A record for the closed session is late.
        op.process_batch(batch(&[(1, 8, 5)]), &mut out).unwrap();
        assert_eq!(out.late, vec![((1, 8), 5)]);
        assert_eq!(op.state_entries(), 0);
    }

    #[test]
    fn late_records_without_a_side_output_are_counted() {
        let mut op: WindowOperator<_, _, _, _, DropLate> = operator_with(
            EventTimeSessionWindows::with_gap(Duration::from_millis(10)),
            sum(),
            0,
        );
        op.open(&OperatorContext::new("window", 0, 1, 8)).unwrap();
        let mut out = Recorder::default();
        op.process_watermark(100, &mut out).unwrap();
        op.process_batch(batch(&[(1, 1, 50)]), &mut out).unwrap();
        assert!(out.late.is_empty());
        assert_eq!(op.late_records_dropped(), 1);
    }

    #[test]
    fn processing_time_windows_fire_from_the_clock_and_finish_fires_the_rest() {
        let clock = ManualClock::new(0);
        let mut op = operator(
            TumblingProcessingTimeWindows::of(Duration::from_millis(100)),
            sum(),
            0,
        );
        let ctx = OperatorContext::new("window", 0, 1, 8).with_clock(Arc::new(clock.clone()));
        op.open(&ctx).unwrap();
        let mut out = Recorder::default();
        let records = Records::from(vec![(1, 1), (2, 2), (1, 3)]);
        op.process_batch(records, &mut out).unwrap();
        clock.set(99);
        op.on_processing_time(98, &mut out).unwrap();
        assert!(out.results.is_empty());
        op.on_processing_time(99, &mut out).unwrap();
        out.results.sort();
        assert_eq!(out.results, vec![((1, 4), 99), ((2, 2), 99)]);
        clock.set(150);
        op.process_batch(Records::from(vec![(1, 5)]), &mut out)
            .unwrap();
        op.finish(&mut out).unwrap();
        assert_eq!(out.results.len(), 3);
        assert_eq!(op.state_entries(), 0);
    }

    #[test]
    fn global_windows_are_dropped_at_the_end_of_input() {
        let mut op = operator(GlobalWindows::create(), sum(), 0);
        op.trigger = Box::new(CountTrigger::of(2));
        op.open(&OperatorContext::new("window", 0, 1, 8)).unwrap();
        let mut out = Recorder::default();
        op.process_batch(Records::from(vec![(1, 1), (1, 2), (1, 3)]), &mut out)
            .unwrap();
        assert_eq!(out.results, vec![((1, 3), i64::MAX)]);
        op.process_watermark(i64::MAX, &mut out).unwrap();
        assert_eq!(op.state_entries(), 0);
    }

    type Results = Vec<(Event, i64)>;

    /// Runs `records` through an operator, snapshots it, restores the snapshot into
    /// `parallelism` new subtasks and ends the input there; returns the results before the
    /// snapshot and after the restore.
    fn results_across_restore<A: WindowAssigner>(
        assigner: A,
        records: &[(u32, u64, i64)],
        watermark: i64,
        parallelism: usize,
        later: &[(u32, u64, i64)],
    ) -> (Results, Results) {
        let mut before = operator(assigner.clone(), sum(), 0);
        let ctx = OperatorContext::new("window", 0, 1, 8);
        before.open(&ctx).unwrap();
        let mut out = Recorder::default();
        before.process_batch(batch(records), &mut out).unwrap();
        before.process_watermark(watermark, &mut out).unwrap();
        let snapshot = before.snapshot_state(1).unwrap();
        assert_eq!(snapshot.keyed.len(), 8);
        let mut after = Recorder::default();
        for subtask in 0..parallelism {
            let ctx = OperatorContext::new("window", subtask, parallelism, 8);
            let mut op = operator(assigner.clone(), sum(), 0);
            op.open(&ctx).unwrap();
            op.restore_state(&snapshot).unwrap();
            let mut scratch = Vec::new();
            let owned: Vec<(u32, u64, i64)> = later
                .iter()
                .filter(|r| {
                    let kg = crate::keys::key_group_of(&r.0, 8, &mut scratch).unwrap();
                    ctx.key_group_range().contains(kg)
                })
                .copied()
                .collect();
            op.process_batch(batch(&owned), &mut after).unwrap();
            op.process_watermark(i64::MAX, &mut after).unwrap();
            assert_eq!(op.state_entries(), 0);
        }
        after.results.sort();
        (out.results, after.results)
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig { cases: 24, ..Default::default() })]

        /// Snapshots are in the keyed-state format: a plain backend reads every live window's
        /// slot back from them, under the window's namespace, with the sum a plain computation
        /// gives.
        #[test]
        fn snapshots_are_readable_as_keyed_state(
            records in proptest::collection::vec((0u32..6, 0u64..100, 0i64..200), 0..120),
        ) {
            let assigner =
                SlidingEventTimeWindows::of(Duration::from_millis(20), Duration::from_millis(10));
            let mut op = operator(assigner, sum(), 0);
            op.open(&OperatorContext::new("window", 0, 1, 8)).unwrap();
            op.process_batch(batch(&records), &mut Recorder::default()).unwrap();
            let snapshot = op.snapshot_state(1).unwrap();

            let mut expected = std::collections::BTreeMap::new();
            for &(key, value, ts) in &records {
                let mut windows = Vec::new();
                assigner.assign_windows(ts, 0, &mut windows);
                for window in windows {
                    *expected.entry((key, window)).or_insert(0) += value;
                }
            }
            let contents = ValueState::<WindowSlot<u32, Option<Event>>>::new("window-contents");
            let mut found = std::collections::BTreeMap::new();
            for (&key_group, bytes) in &snapshot.keyed {
                let mut backend = KeyedStateBackend::new(key_group, key_group);
                backend.restore_key_group(key_group, bytes).unwrap();
                contents.register(&mut backend).unwrap();
                let mut entries = Vec::new();
                backend
                    .for_each_entry("window-contents", |_, key, ns| {
                        entries.push((key.to_vec(), ns.to_vec()));
                    })
                    .unwrap();
                for (key, ns) in entries {
                    backend.set_current_key(&key, key_group);
                    backend.set_current_namespace(&ns);
                    let slot = contents.value(&mut backend).unwrap().unwrap();
                    let mut encoded = Vec::new();
                    encode_key(&slot.key, &mut encoded).unwrap();
                    proptest::prop_assert_eq!(&encoded, &key);
                    let window = TimeWindow::decode_namespace(&ns).unwrap();
                    let (_, total) = slot.contents.flatten().unwrap();
                    found.insert((slot.key, window), total);
                }
            }
            proptest::prop_assert_eq!(found, expected);
        }
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig { cases: 32, ..Default::default() })]

        /// Sessions that grow while the watermark follows the records fire once each, with a
        /// plain computation's sums, in the order of their ends, and leave no state.
        #[test]
        fn growing_sessions_fire_in_time_order_with_the_reference_sums(
            steps in proptest::collection::vec((0u32..4, 1u64..10, 0i64..8), 1..150),
            watermark_every in 1usize..6,
        ) {
            let gap = 10;
            let mut ts = 0;
            let records: Vec<(u32, u64, i64)> = steps
                .iter()
                .map(|&(key, value, step)| {
                    ts += step;
                    (key, value, ts)
                })
                .collect();
            let mut op = operator(
                EventTimeSessionWindows::with_gap(Duration::from_millis(gap as u64)),
                sum(),
                0,
            );
            op.open(&OperatorContext::new("window", 0, 1, 8)).unwrap();
            let mut out = Recorder::default();
            for chunk in records.chunks(watermark_every) {
                op.process_batch(batch(chunk), &mut out).unwrap();
                // A gap behind the records, so no session closes before a record that touches it.
                op.process_watermark(chunk[chunk.len() - 1].2 - gap, &mut out).unwrap();
            }
            let fired_while_running = out.results.len();
            op.process_watermark(i64::MAX, &mut out).unwrap();
            proptest::prop_assert_eq!(op.state_entries(), 0);
            proptest::prop_assert!(
                out.results[..fired_while_running].windows(2).all(|w| w[0].1 <= w[1].1),
                "results in time order: {:?}", out.results
            );
            // Reference: per key, records closer than the gap form one session.
            let mut expected = Vec::new();
            for key in 0..4 {
                let mut session: Option<(i64, i64, u64)> = None;
                for &(_, value, ts) in records.iter().filter(|r| r.0 == key) {
                    session = match session {
                        // Touching windows merge.
                        Some((start, end, total)) if ts <= end => {
                            Some((start, end.max(ts + gap), total + value))
                        }
                        Some((_, end, total)) => {
                            expected.push(((key, total), end - 1));
                            Some((ts, ts + gap, value))
                        }
                        None => Some((ts, ts + gap, value)),
                    };
                }
                if let Some((_, end, total)) = session {
                    expected.push(((key, total), end - 1));
                }
            }
            let mut results = out.results.clone();
            results.sort();
            expected.sort();
            proptest::prop_assert_eq!(results, expected);
        }
    }

    #[test]
    fn the_window_index_is_rebuilt_from_restored_state() {
        let records: Vec<(u32, u64, i64)> = (0..40)
            .map(|i| (i % 7, u64::from(i), i64::from(i) * 5))
            .collect();
        for parallelism in [1, 2, 3] {
            let (before, after) = results_across_restore(
                SlidingEventTimeWindows::of(Duration::from_millis(50), Duration::from_millis(25)),
                &records,
                100,
                parallelism,
                &[],
            );
            let mut all = before.clone();
            all.extend(after.iter().copied());
            let total: u64 = all.iter().map(|(r, _)| r.1).sum();
            assert_eq!(
                total,
                2 * (0..40).sum::<u64>(),
                "every record in two windows"
            );
            assert!(
                after.iter().all(|(_, ts)| *ts > 100),
                "only windows open at the snapshot"
            );

            let (_, sessions) = results_across_restore(
                EventTimeSessionWindows::with_gap(Duration::from_millis(10)),
                &[(1, 1, 0), (1, 2, 20), (2, 4, 5), (3, 16, 0)],
                0,
                parallelism,
                // Merges key 1's sessions restored from the snapshot.
                &[(1, 8, 10)],
            );
            assert_eq!(sessions, vec![((1, 11), 29), ((2, 4), 14), ((3, 16), 9)]);
        }
    }

    #[test]
    fn processing_time_sessions_merge_and_fire_from_the_clock() {
        let clock = ManualClock::new(0);
        let mut op = operator(
            crate::window::ProcessingTimeSessionWindows::with_gap(Duration::from_millis(10)),
            sum(),
            0,
        );
        let ctx = OperatorContext::new("window", 0, 1, 8).with_clock(Arc::new(clock.clone()));
        op.open(&ctx).unwrap();
        let mut out = Recorder::default();
        op.process_batch(Records::from(vec![(1, 1)]), &mut out)
            .unwrap();
        clock.set(5);
        op.process_batch(Records::from(vec![(1, 2)]), &mut out)
            .unwrap();
        op.on_processing_time(13, &mut out).unwrap();
        assert!(out.results.is_empty(), "the session grew to [0, 15)");
        op.on_processing_time(14, &mut out).unwrap();
        assert_eq!(out.results, vec![((1, 3), 14)]);
        assert_eq!(op.state_entries(), 0);
    }

    /// Fires and purges every second record; registers nothing.
    #[derive(Clone)]
    struct EverySecond;

    impl<W: Window> Trigger<W> for EverySecond {
        fn on_element(&mut self, _: i64, _: &W, ctx: &mut TriggerContext<'_>) -> TriggerResult {
            let seen = ctx.state() + 1;
            ctx.set_state(seen % 2);
            if seen == 2 {
                TriggerResult::FireAndPurge
            } else {
                TriggerResult::Continue
            }
        }

        fn on_event_time(&mut self, _: i64, _: &W, _: &mut TriggerContext<'_>) -> TriggerResult {
            TriggerResult::Continue
        }

        fn on_processing_time(
            &mut self,
            _: i64,
            _: &W,
            _: &mut TriggerContext<'_>,
        ) -> TriggerResult {
            TriggerResult::Continue
        }
    }

    #[test]
    fn a_custom_trigger_fires_and_purges() {
        let mut op = operator(
            crate::window::TumblingEventTimeWindows::of(Duration::from_millis(100)),
            sum(),
            0,
        );
        op.trigger = Box::new(EverySecond);
        op.open(&OperatorContext::new("window", 0, 1, 8)).unwrap();
        let mut out = Recorder::default();
        let records: Vec<(u32, u64, i64)> = (1..=5).map(|i| (1, i, i as i64)).collect();
        op.process_batch(batch(&records), &mut out).unwrap();
        assert_eq!(out.results, vec![((1, 3), 99), ((1, 7), 99)]);
        // The fifth record stays; the window's end does not fire it (the trigger ignores time),
        // and the window's state goes at its cleanup time.
        op.process_watermark(99, &mut out).unwrap();
        assert_eq!(out.results.len(), 2);
        assert_eq!(op.state_entries(), 0);
    }

    #[test]
    fn event_time_windows_reject_records_without_timestamps() {
        let mut op = operator(
            EventTimeSessionWindows::with_gap(Duration::from_millis(10)),
            sum(),
            0,
        );
        op.open(&OperatorContext::new("window", 0, 1, 8)).unwrap();
        let err = op
            .process_batch(Records::from(vec![(1, 1)]), &mut Recorder::default())
            .unwrap_err();
        assert!(format!("{err:?}").contains("MissingTimestamp"), "{err:?}");
    }
}
