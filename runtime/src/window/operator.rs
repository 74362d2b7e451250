//! The window operator: assigns records to windows, keeps their contents in keyed state, and
//! fires windows from a time-ordered index when the watermark or processing time passes them.

use std::collections::BTreeSet;
use std::marker::PhantomData;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use super::assigner::WindowAssigner;
use super::function::WindowContents;
use super::trigger::{TimeDomain, TimerChange, Trigger, TriggerContext, TriggerResult};
use super::{Window, WindowError};
use crate::batch::{Batch, Data, NO_TIMESTAMP, Records};
use crate::error::TaskError;
use crate::keys::{KeyGroup, key_group_of};
use crate::operator::keyed::Collector;
use crate::operator::{Operator, OperatorContext, OperatorState, Output};
use crate::state::{KeyedStateBackend, StateValue, ValueState};
use crate::time::Clock;

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

/// The state of one key and window: the key itself (to call the window function with), the
/// contents, the trigger's registered wake-up times and its state.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct WindowSlot<K, A> {
    key: K,
    contents: Option<A>,
    timers: Vec<(TimeDomain, i64)>,
    trigger_state: i64,
}

/// The live sessions of one key (merging assigners), sorted by window. Each session's state
/// stays in the namespace of its state window (the first window it grew from), so extending or
/// merging sessions moves no state but the merged-away sessions' (Flink's `MergingWindowSet`).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Sessions<W> {
    windows: Vec<W>,
    state_windows: Vec<W>,
}

impl<W> Default for Sessions<W> {
    fn default() -> Self {
        Sessions {
            windows: Vec::new(),
            state_windows: Vec::new(),
        }
    }
}

impl<W: Window> Sessions<W> {
    fn insert(&mut self, window: W, state_window: W) {
        let at = self.windows.partition_point(|w| *w < window);
        self.windows.insert(at, window);
        self.state_windows.insert(at, state_window);
    }

    fn remove(&mut self, i: usize) -> (W, W) {
        (self.windows.remove(i), self.state_windows.remove(i))
    }

    fn state_window_of(&self, window: &W) -> Option<&W> {
        let i = self.windows.binary_search(window).ok()?;
        Some(&self.state_windows[i])
    }
}

/// A window and the window whose namespace holds its state.
type WindowAndState<W> = (W, W);

/// An entry of the window index: a time, then the key group, key and window it is for.
type IndexEntry<W> = (i64, KeyGroup, Box<[u8]>, W);

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

/// Groups a keyed stream into windows and emits one result per key and window when its trigger
/// fires, as Flink's `WindowOperator`.
///
/// # State
/// Per key and window (the window is the state namespace, so it snapshots per key group): the
/// window contents (an accumulator, or the records for a process function), the key, and the
/// trigger's wake-up times and state. For merging (session) assigners, per key: the list of its
/// live sessions. In memory, an index of `(time, key group, key, window)` ordered by time holds
/// one entry per live window (its cleanup time, which is also when the default triggers fire)
/// plus any other wake-up time a trigger registered; it can be rebuilt from the state. A window's
/// state and index entries are removed once the watermark passes `end - 1 + allowed lateness`
/// (processing-time windows: once the clock passes `end - 1`; global windows: at the end of
/// input).
pub(crate) struct WindowOperator<T, K, A: WindowAssigner, C: WindowContents<K, T, A::Window>, L> {
    spec: WindowSpec<T, K, A>,
    trigger: Box<dyn Trigger<A::Window>>,
    contents: C,
    slots: ValueState<WindowSlot<K, C::Acc>>,
    sessions: ValueState<Sessions<A::Window>>,
    backend: Option<KeyedStateBackend>,
    clock: Option<Arc<dyn Clock>>,
    max_parallelism: u16,
    watermark: i64,
    processing_time: i64,
    event_index: BTreeSet<IndexEntry<A::Window>>,
    processing_index: BTreeSet<IndexEntry<A::Window>>,
    key_bytes: Vec<u8>,
    namespace: Vec<u8>,
    windows: Vec<A::Window>,
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
            contents,
            slots: ValueState::new("window-contents"),
            sessions: ValueState::new("window-sessions"),
            backend: None,
            clock: None,
            max_parallelism: 1,
            watermark: i64::MIN,
            processing_time: i64::MIN,
            event_index: BTreeSet::new(),
            processing_index: BTreeSet::new(),
            key_bytes: Vec::new(),
            namespace: Vec::new(),
            windows: Vec::new(),
            changes: Vec::new(),
            late_records_dropped: 0,
            _late: PhantomData,
        }
    }

    /// Entries in keyed state plus entries in the window index: zero once every window is gone.
    #[cfg(test)]
    pub(crate) fn state_entries(&self) -> usize {
        self.backend.as_ref().map_or(0, |b| b.total_entries())
            + self.event_index.len()
            + self.processing_index.len()
    }

    /// Late records dropped because late data is not side-output.
    #[cfg(test)]
    pub(crate) fn late_records_dropped(&self) -> u64 {
        self.late_records_dropped
    }

    /// Serializes the window state of `key_group` (contents, keys, trigger registrations and
    /// sessions); the index is not written, it is rebuilt from this on restore.
    pub(crate) fn snapshot_key_group(&mut self, key_group: KeyGroup) -> Result<Vec<u8>, TaskError> {
        Ok(opened(&mut self.backend)?.snapshot_key_group(key_group)?)
    }

    /// Restores the window state of `key_group` written by
    /// [`snapshot_key_group`](Self::snapshot_key_group) (possibly by a subtask with other key
    /// groups) and enters its windows into the index.
    pub(crate) fn restore_key_group(
        &mut self,
        key_group: KeyGroup,
        bytes: &[u8],
    ) -> Result<(), TaskError> {
        let backend = opened(&mut self.backend)?;
        backend.restore_key_group(key_group, bytes)?;
        let merging = self.spec.assigner.is_merging();
        let state = if merging {
            self.sessions.name()
        } else {
            self.slots.name()
        };
        let mut entries = Vec::new();
        backend.for_each_entry(state, |group, key, namespace| {
            if group == key_group {
                entries.push((key.to_vec(), namespace.to_vec()));
            }
        })?;
        // (key, window, state window)
        let mut windows = Vec::new();
        for (key, namespace) in entries {
            if merging {
                let backend = opened(&mut self.backend)?;
                backend.set_current_key(&key, key_group);
                backend.set_current_namespace(&[]);
                let sessions = self.sessions.value(backend)?.unwrap_or_default();
                for (window, state_window) in
                    sessions.windows.into_iter().zip(sessions.state_windows)
                {
                    windows.push((key.clone(), window, state_window));
                }
            } else {
                let window = A::Window::decode_namespace(&namespace).ok_or_else(|| {
                    format!(
                        "window state of key group {key_group} has a namespace that is not a window: {namespace:?}"
                    )
                })?;
                windows.push((key, window.clone(), window));
            }
        }
        for (key, window, state_window) in windows {
            let backend = opened(&mut self.backend)?;
            backend.set_current_key(&key, key_group);
            self.set_namespace(&state_window)?;
            let backend = opened(&mut self.backend)?;
            let Some(slot) = self.slots.value(backend)? else {
                continue;
            };
            self.key_bytes = key;
            self.insert_cleanup(key_group, &window);
            self.changes.extend(
                slot.timers
                    .iter()
                    .map(|&(domain, time)| TimerChange::Added(domain, time)),
            );
            self.apply_timer_changes(key_group, &window);
        }
        Ok(())
    }

    /// When a window's state is removed: `(domain, time)`.
    fn cleanup_time(&self, window: &A::Window) -> (TimeDomain, i64) {
        let max = window.max_timestamp();
        if self.spec.assigner.is_event_time() {
            (
                TimeDomain::EventTime,
                max.saturating_add(self.spec.allowed_lateness),
            )
        } else if max == i64::MAX {
            (TimeDomain::EventTime, i64::MAX)
        } else {
            (TimeDomain::ProcessingTime, max)
        }
    }

    /// Flink's `isWindowLate`: the watermark passed the window's cleanup time.
    fn is_window_late(&self, window: &A::Window) -> bool {
        self.spec.assigner.is_event_time()
            && window
                .max_timestamp()
                .saturating_add(self.spec.allowed_lateness)
                <= self.watermark
    }

    fn index(&mut self, domain: TimeDomain) -> &mut BTreeSet<IndexEntry<A::Window>> {
        match domain {
            TimeDomain::EventTime => &mut self.event_index,
            TimeDomain::ProcessingTime => &mut self.processing_index,
        }
    }

    /// Applies the trigger's registrations and deletions to the index, for the current key.
    /// A registration at the window's cleanup time shares the cleanup entry.
    fn apply_timer_changes(&mut self, key_group: KeyGroup, window: &A::Window) {
        if self.changes.is_empty() {
            return;
        }
        let cleanup = self.cleanup_time(window);
        let changes = std::mem::take(&mut self.changes);
        for change in &changes {
            let (added, domain, time) = match *change {
                TimerChange::Added(d, t) => (true, d, t),
                TimerChange::Removed(d, t) => (false, d, t),
            };
            if (domain, time) == cleanup {
                continue;
            }
            let entry = (
                time,
                key_group,
                Box::<[u8]>::from(self.key_bytes.as_slice()),
                window.clone(),
            );
            if added {
                self.index(domain).insert(entry);
            } else {
                self.index(domain).remove(&entry);
            }
        }
        self.changes = changes;
        self.changes.clear();
    }

    fn insert_cleanup(&mut self, key_group: KeyGroup, window: &A::Window) {
        let (domain, time) = self.cleanup_time(window);
        let entry = (
            time,
            key_group,
            self.key_bytes.as_slice().into(),
            window.clone(),
        );
        self.index(domain).insert(entry);
    }

    /// Removes every index entry of a window whose slot had `timers`.
    fn remove_index_entries(
        &mut self,
        key_group: KeyGroup,
        window: &A::Window,
        timers: &[(TimeDomain, i64)],
    ) {
        let cleanup = self.cleanup_time(window);
        // A registration at the cleanup time shares the cleanup entry.
        for &(domain, time) in timers.iter().filter(|t| **t != cleanup).chain([&cleanup]) {
            let entry = (
                time,
                key_group,
                self.key_bytes.as_slice().into(),
                window.clone(),
            );
            self.index(domain).remove(&entry);
        }
    }

    fn set_namespace(&mut self, window: &A::Window) -> Result<(), TaskError> {
        self.namespace.clear();
        window.encode_namespace(&mut self.namespace);
        let namespace = std::mem::take(&mut self.namespace);
        opened(&mut self.backend)?.set_current_namespace(&namespace);
        self.namespace = namespace;
        Ok(())
    }

    /// Adds `value` to `window` of the current key, whose state is in the namespace of
    /// `state_window`, and asks the trigger.
    #[allow(clippy::too_many_arguments)]
    fn add_to_window(
        &mut self,
        key: &K,
        key_group: KeyGroup,
        window: &A::Window,
        state_window: &A::Window,
        value: T,
        timestamp: i64,
        results: &mut Records<C::Out>,
    ) -> Result<(), TaskError> {
        self.set_namespace(state_window)?;
        let mut created = false;
        let WindowOperator {
            trigger,
            contents,
            slots,
            backend,
            watermark,
            processing_time,
            changes,
            ..
        } = self;
        let backend = opened(backend)?;
        slots.modify(
            backend,
            || {
                created = true;
                WindowSlot {
                    key: key.clone(),
                    contents: None,
                    timers: Vec::new(),
                    trigger_state: 0,
                }
            },
            |slot| {
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
                let result = trigger.on_element(timestamp, window, &mut ctx);
                apply_result(contents, slot, window, result, results)
            },
        )??;
        if created {
            self.insert_cleanup(key_group, window);
        }
        self.apply_timer_changes(key_group, window);
        Ok(())
    }

    /// For merging assigners: merges `new` into the key's sessions; returns the window the
    /// record goes to and its state window, or `None` if it is late.
    fn merge_into_sessions(
        &mut self,
        key: &K,
        key_group: KeyGroup,
        new: &A::Window,
    ) -> Result<Option<WindowAndState<A::Window>>, TaskError> {
        let backend = opened(&mut self.backend)?;
        backend.set_current_namespace(&[]);
        let mut sessions = self.sessions.value(backend)?.unwrap_or_default();
        let (merged, absorbed) = self.spec.assigner.merge(&sessions.windows, new);
        if absorbed.is_empty() {
            if self.is_window_late(&merged) {
                return Ok(None);
            }
            sessions.insert(merged.clone(), merged.clone());
            let backend = opened(&mut self.backend)?;
            self.sessions.update(backend, sessions)?;
            return Ok(Some((merged.clone(), merged)));
        }
        if absorbed.len() == 1 && sessions.windows[absorbed[0]] == merged {
            let state_window = sessions.state_windows[absorbed[0]].clone();
            return Ok(Some((merged, state_window)));
        }
        let mut sources = Vec::with_capacity(absorbed.len());
        for &i in absorbed.iter().rev() {
            sources.push(sessions.remove(i));
        }
        sources.reverse();
        let (first_window, state_window) = sources.remove(0);
        sessions.insert(merged.clone(), state_window.clone());
        let backend = opened(&mut self.backend)?;
        self.sessions.update(backend, sessions)?;
        self.merge_slots(
            key,
            key_group,
            &merged,
            (&first_window, &state_window),
            &sources,
        )?;
        Ok(Some((merged, state_window)))
    }

    /// Session windows merged into `merged`: the state of the first (`target`: its window and
    /// state window) stays where it is; the state of the other `sources` is merged into it.
    /// Index entries of the old windows are replaced by those of `merged`.
    fn merge_slots(
        &mut self,
        key: &K,
        key_group: KeyGroup,
        merged: &A::Window,
        target: (&A::Window, &A::Window),
        sources: &[(A::Window, A::Window)],
    ) -> Result<(), TaskError> {
        let mut extra: Option<C::Acc> = None;
        let mut extra_state = 0i64;
        for (window, state_window) in sources {
            self.set_namespace(state_window)?;
            let backend = opened(&mut self.backend)?;
            let Some(slot) = self.slots.value(backend)? else {
                continue;
            };
            self.slots.clear(backend)?;
            self.remove_index_entries(key_group, window, &slot.timers);
            extra_state = extra_state.saturating_add(slot.trigger_state);
            match (&mut extra, slot.contents) {
                (_, None) => {}
                (None, Some(acc)) => extra = Some(acc),
                (Some(acc), Some(other)) => self.contents.merge(acc, other),
            }
        }
        let (target_window, target_state) = target;
        self.set_namespace(target_state)?;
        let mut old_timers = Vec::new();
        let WindowOperator {
            trigger,
            contents,
            slots,
            backend,
            watermark,
            processing_time,
            changes,
            ..
        } = self;
        slots.modify(
            opened(backend)?,
            || WindowSlot {
                key: key.clone(),
                contents: None,
                timers: Vec::new(),
                trigger_state: 0,
            },
            |slot| {
                old_timers = std::mem::take(&mut slot.timers);
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
                trigger.on_merge(merged, &mut ctx);
            },
        )?;
        self.remove_index_entries(key_group, target_window, &old_timers);
        self.insert_cleanup(key_group, merged);
        self.apply_timer_changes(key_group, merged);
        Ok(())
    }

    /// Processes one record.
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
        let key_group = key_group_of(&key, self.max_parallelism, &mut self.key_bytes)?;
        let key_bytes = std::mem::take(&mut self.key_bytes);
        opened(&mut self.backend)?.set_current_key(&key_bytes, key_group);
        self.key_bytes = key_bytes;

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
            let (window, state_window) = if merging {
                match self.merge_into_sessions(&key, key_group, window)? {
                    Some(windows) => windows,
                    None => continue,
                }
            } else {
                if self.is_window_late(window) {
                    continue;
                }
                (window.clone(), window.clone())
            };
            skipped = false;
            let record = if i + 1 == count {
                value.take()
            } else {
                value.clone()
            };
            if let Some(record) = record {
                self.add_to_window(
                    &key,
                    key_group,
                    &window,
                    &state_window,
                    record,
                    timestamp,
                    results,
                )?;
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
        loop {
            let index = self.index(domain);
            match index.first() {
                Some(first) if first.0 <= limit => {}
                _ => return Ok(()),
            }
            let Some((time, key_group, key, window)) = index.pop_first() else {
                return Ok(());
            };
            self.on_timer(domain, time, key_group, &key, &window, results)?;
        }
    }

    /// A popped index entry: asks the trigger if it registered this time, and removes the
    /// window's state if this is its cleanup time.
    fn on_timer(
        &mut self,
        domain: TimeDomain,
        time: i64,
        key_group: KeyGroup,
        key: &[u8],
        window: &A::Window,
        results: &mut Records<C::Out>,
    ) -> Result<(), TaskError> {
        self.key_bytes.clear();
        self.key_bytes.extend_from_slice(key);
        let backend = opened(&mut self.backend)?;
        backend.set_current_key(key, key_group);
        let merging = self.spec.assigner.is_merging();
        let mut sessions = None;
        if merging {
            backend.set_current_namespace(&[]);
            let live = self.sessions.value(backend)?.unwrap_or_default();
            let Some(state_window) = live.state_window_of(window).cloned() else {
                return Ok(());
            };
            self.set_namespace(&state_window)?;
            sessions = Some(live);
        } else {
            self.set_namespace(window)?;
        }
        let backend = opened(&mut self.backend)?;
        let Some(mut slot) = self.slots.value(backend)? else {
            return Ok(());
        };
        let cleanup = self.cleanup_time(window) == (domain, time);
        if let Some(i) = slot.timers.iter().position(|t| *t == (domain, time)) {
            slot.timers.swap_remove(i);
            let mut ctx = TriggerContext {
                watermark: self.watermark,
                processing_time: self.processing_time,
                timers: &mut slot.timers,
                changes: &mut self.changes,
                state: &mut slot.trigger_state,
            };
            let result = match domain {
                TimeDomain::EventTime => self.trigger.on_event_time(time, window, &mut ctx),
                TimeDomain::ProcessingTime => {
                    self.trigger.on_processing_time(time, window, &mut ctx)
                }
            };
            apply_result(&mut self.contents, &mut slot, window, result, results)?;
        }
        if cleanup {
            self.changes.clear();
            self.remove_index_entries(key_group, window, &slot.timers);
            let backend = opened(&mut self.backend)?;
            self.slots.clear(backend)?;
            if let Some(mut live) = sessions {
                backend.set_current_namespace(&[]);
                if let Ok(i) = live.windows.binary_search(window) {
                    live.remove(i);
                }
                if live.windows.is_empty() {
                    self.sessions.clear(backend)?;
                } else {
                    self.sessions.update(backend, live)?;
                }
            }
        } else {
            self.apply_timer_changes(key_group, window);
            let backend = opened(&mut self.backend)?;
            self.slots.update(backend, slot)?;
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

/// The backend of an opened operator.
fn opened(backend: &mut Option<KeyedStateBackend>) -> Result<&mut KeyedStateBackend, TaskError> {
    backend
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
        self.max_parallelism = ctx.max_parallelism();
        let mut backend = KeyedStateBackend::new(range.start(), range.end().saturating_sub(1));
        self.slots.register(&mut backend)?;
        self.sessions.register(&mut backend)?;
        self.backend = Some(backend);
        self.processing_time = ctx.processing_time();
        self.clock = Some(Arc::clone(ctx.clock()));
        Ok(())
    }

    fn process_batch(
        &mut self,
        batch: Records<T>,
        out: &mut dyn Output<Self::Out>,
    ) -> Result<(), TaskError> {
        let now = match &self.clock {
            Some(clock) => clock.now_ms(),
            None => return Err("a window operator processed a record before it was opened".into()),
        };
        self.processing_time = self.processing_time.max(now);
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
        for key_group in opened(&mut self.backend)?.key_group_range() {
            state
                .keyed
                .insert(key_group, self.snapshot_key_group(key_group)?);
        }
        Ok(state)
    }

    fn restore_state(&mut self, state: &OperatorState) -> Result<(), TaskError> {
        let owned = opened(&mut self.backend)?.key_group_range();
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
        CountTrigger, EventTimeSessionWindows, GlobalWindows, SlidingEventTimeWindows,
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
